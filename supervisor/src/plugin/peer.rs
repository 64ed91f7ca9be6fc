//! The connection to a plugin's socket and the check of who serves it (`SO_PEERCRED`): below
//! both [`super::link`] (calls) and [`super::process`] (the process), so neither needs the other
//! for it.

use std::io;
use std::path::{Path, PathBuf};

use hyper_util::rt::TokioIo;
use nix::unistd::Pid;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint};

/// The largest message either way between the supervisor and a plugin (§7).
pub use hookvisor_proto::limits::MAX_PLUGIN_MESSAGE_BYTES as MAX_MESSAGE_BYTES;

/// A connection to the plugin's socket whose every (re)connect passes the peer check.
pub async fn channel(socket: &Path, peer: Peer) -> Result<Channel, tonic::transport::Error> {
    let path: PathBuf = socket.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(tower::service_fn(move |_| {
            let path = path.clone();
            async move { connect_checked(&path, peer).await.map(TokioIo::new) }
        }))
        .await
}

/// Who must be listening on a plugin's socket: the plugin process or a process in its session,
/// and, when the plugin has a uid of its own, running as that uid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The plugin process (a session leader).
    pub pid: Pid,
    /// The plugin's own uid, when it has one.
    pub uid: Option<u32>,
}

/// Connects to `socket` and checks with `SO_PEERCRED` that the listening process is `child` or
/// a process in `child`'s own session (so launchers such as `npx tsx` or `go run` pass), and
/// that it runs as the plugin's own uid when it has one. The session, not the process group, is
/// the identity: another plugin can join the child's process group with `setpgid(2)` from
/// within its own session, but it can never join the child's session (each plugin is a session
/// leader, `spawner`). Checked on every (re)connect.
pub(crate) async fn connect_checked(socket: &Path, expected: Peer) -> io::Result<UnixStream> {
    let stream = UnixStream::connect(socket).await?;
    let child = expected.pid;
    let cred = stream.peer_cred()?;
    let peer = cred
        .pid()
        .map(Pid::from_raw)
        .ok_or_else(|| io::Error::other("the socket's peer has no pid"))?;
    if let Some(uid) = expected.uid
        && cred.uid() != uid
    {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            PeerMismatch(format!(
                "peer mismatch: {} is served by pid {peer} as uid {}, not by the plugin's own \
                 uid {uid}",
                socket.display(),
                cred.uid()
            )),
        ));
    }
    if peer == child {
        return Ok(stream);
    }
    match nix::unistd::getsid(Some(peer)) {
        Ok(session) if session == child => Ok(stream),
        session => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            PeerMismatch(format!(
                "peer mismatch: {} is served by pid {peer} (session {}), which is neither \
                 the plugin (pid {child}) nor in its session",
                socket.display(),
                session.map_or_else(|e| format!("unknown: {e}"), |g| g.to_string()),
            )),
        )),
    }
}

/// The error of [`connect_checked`] when another process serves the plugin's socket: on a
/// reconnect it is an impostor, not a broken connection, so the call is not sent again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct PeerMismatch(pub(crate) String);
