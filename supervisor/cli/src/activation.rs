//! Socket activation: the host socket systemd (or `systemd-socket-activate`) passes in. It is
//! taken only when it is certainly this process's and usable: `LISTEN_PID` is our pid,
//! `LISTEN_FDS` is 1, and descriptor 3 is a listening Unix stream socket bound to a path.
//! Anything else refuses the start (exit 64, before anything runs): serving on something else,
//! leaving a second socket open, or quietly binding the configured path while the operator
//! believes systemd's socket is in use would all be worse than not starting.

use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};

use listenfd::ListenFd;

/// The first descriptor passed in (`SD_LISTEN_FDS_START`, sd_listen_fds(3)).
const FIRST_FD: u32 = 3;

/// A listening socket passed in, and the path it is bound to.
pub(crate) struct Activated {
    /// The socket.
    pub(crate) listener: UnixListener,
    /// Its path (from `getsockname`), absolute.
    pub(crate) path: PathBuf,
}

/// The host socket passed in when `LISTEN_FDS` is set; one line saying why, for anything
/// hookvisor will not serve on. Run before any thread starts: taking the socket clears
/// `LISTEN_FDS` and `LISTEN_PID` from the environment.
pub(crate) fn host_socket() -> Result<Option<Activated>, String> {
    let Some(fds) = std::env::var_os("LISTEN_FDS") else {
        return Ok(None);
    };
    let fds = fds.to_string_lossy().into_owned();
    let pid = std::process::id();
    match std::env::var_os("LISTEN_PID") {
        None => {
            return Err(format!(
                "LISTEN_FDS={fds} is set but LISTEN_PID is not, so nothing says the sockets \
                 were passed to this process (pid {pid}); refusing to start (systemd sets \
                 both; without socket activation, unset LISTEN_FDS)"
            ));
        }
        Some(named) if named.to_str().and_then(|p| p.parse::<u32>().ok()) != Some(pid) => {
            return Err(format!(
                "LISTEN_PID={} is not this process (pid {pid}): the sockets in \
                 LISTEN_FDS={fds} were passed to another process; refusing to start",
                named.to_string_lossy()
            ));
        }
        Some(_) => {}
    }
    let count: u32 = fds
        .parse()
        .map_err(|_| format!("LISTEN_FDS={fds} is not a number of sockets; refusing to start"))?;
    if count != 1 {
        return Err(format!(
            "LISTEN_FDS={count}: {count} sockets were passed in, and hookvisor serves exactly \
             one host socket; refusing to start rather than leave any of them unserved (give \
             the socket unit a single ListenStream=)"
        ));
    }
    // listenfd would take the sockets from there; systemd always starts them at 3.
    if let Some(first) = std::env::var_os("LISTEN_FDS_FIRST_FD")
        && first.to_str() != Some("3")
    {
        return Err(format!(
            "LISTEN_FDS_FIRST_FD={} is set, which is not systemd's protocol (the sockets start \
             at descriptor {FIRST_FD}); refusing to start",
            first.to_string_lossy()
        ));
    }
    let mut passed = ListenFd::from_env();
    let listener = match passed.take_unix_listener(0) {
        Ok(Some(listener)) => listener,
        Ok(None) => {
            return Err(format!(
                "LISTEN_FDS=1, but no socket was found at descriptor {FIRST_FD}; refusing to start"
            ));
        }
        Err(e) => {
            return Err(format!(
                "LISTEN_FDS: descriptor {FIRST_FD} is {}, not a listening Unix stream socket; \
                 refusing to start",
                what_is(&mut passed, &e)
            ));
        }
    };
    match nix::sys::socket::getsockopt(&listener, nix::sys::socket::sockopt::AcceptConn) {
        Ok(true) => {}
        Ok(false) => {
            return Err(format!(
                "LISTEN_FDS: descriptor {FIRST_FD} is a Unix stream socket that is not listening \
                 (SO_ACCEPTCONN is 0): a connection, not the socket systemd listens on; refusing \
                 to start"
            ));
        }
        Err(e) => {
            return Err(format!(
                "LISTEN_FDS: cannot read SO_ACCEPTCONN of descriptor {FIRST_FD}: {e}; refusing \
                 to start"
            ));
        }
    }
    let address = listener.local_addr().map_err(|e| {
        format!("LISTEN_FDS: cannot read the address of descriptor {FIRST_FD}: {e}")
    })?;
    let Some(path) = address.as_pathname() else {
        use std::os::linux::net::SocketAddrExt;
        let name = match address.as_abstract_name() {
            Some(name) => format!(
                "the abstract Unix socket @{}",
                String::from_utf8_lossy(name)
            ),
            None => "an unnamed Unix socket".to_owned(),
        };
        return Err(format!(
            "LISTEN_FDS: descriptor {FIRST_FD} is {name}, which has no file permissions: any \
             process on this machine could call it; refusing to start (listen on a path, e.g. \
             ListenStream=/run/hookvisor.sock)"
        ));
    };
    let path = std::path::absolute(path)
        .map_err(|e| format!("LISTEN_FDS: the socket passed in, {}: {e}", path.display()))?;
    Ok(Some(Activated { listener, path }))
}

/// What the descriptor listenfd refused (`error`) is: a kind of file (from `/proc/self/fd`), or
/// the kind of socket.
fn what_is(passed: &mut ListenFd, error: &std::io::Error) -> String {
    let link = PathBuf::from(format!("/proc/self/fd/{FIRST_FD}"));
    match std::fs::metadata(&link) {
        Ok(meta) if meta.file_type().is_socket() => {}
        Ok(meta) => {
            let kind = meta.file_type();
            let kind = if kind.is_file() {
                "a regular file"
            } else if kind.is_dir() {
                "a directory"
            } else if kind.is_fifo() {
                "a pipe"
            } else if kind.is_char_device() {
                "a character device"
            } else if kind.is_block_device() {
                "a block device"
            } else {
                "not a socket"
            };
            return match std::fs::read_link(&link) {
                Ok(target) => format!("{kind} ({})", target.display()),
                Err(_) => kind.to_owned(),
            };
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound && Path::new("/proc/self/fd").is_dir() =>
        {
            return "not open".to_owned();
        }
        Err(_) => return error.to_string(),
    }
    // A socket of another kind: each attempt takes it only when it is that kind.
    if matches!(passed.take_tcp_listener(0), Ok(Some(_))) {
        "a TCP socket".to_owned()
    } else if matches!(passed.take_udp_socket(0), Ok(Some(_))) {
        "a UDP socket".to_owned()
    } else if matches!(passed.take_unix_datagram(0), Ok(Some(_))) {
        "a Unix datagram socket".to_owned()
    } else {
        "a socket that is neither a Unix stream socket nor TCP nor UDP".to_owned()
    }
}
