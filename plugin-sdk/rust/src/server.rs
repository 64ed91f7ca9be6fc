//! The plugin process: handshake environment, socket (or remote mode's TCP with mutual TLS), gRPC
//! and health services, signals, exit codes.

use std::convert::Infallible;
use std::ffi::OsStr;
use std::fmt::Display;
use std::future::Future;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::{MAGIC_COOKIE, REMOTE_LISTENING, env, metadata};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::oneshot;
use tokio_rustls::rustls::RootCertStore;
use tokio_rustls::rustls::pki_types::pem::{self, PemObject as _};
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_stream::wrappers::UnixListenerStream;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Response, Status};
use tonic_health::ServingStatus;

use crate::call::checked_traceparent;
use crate::proto::plugin_server::PluginServer;
use crate::{Plugin, SessionCreate, SessionCreated, ToolCall, proto};

/// What a process started by hand, without hookvisor's environment, prints before exiting 1.
const NOT_BY_HAND: &str = "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand";

/// How long calls still in flight may finish after SIGTERM before the process exits anyway;
/// shorter than the supervisor's default grace period (2000 ms) so a hung handler cannot turn a
/// clean stop into a SIGKILL.
const DRAIN_LIMIT: Duration = Duration::from_millis(1500);

/// The gRPC service name the health service reports besides `""`.
const PLUGIN_SERVICE: &str = "hookvisor.v1.Plugin";

/// How long a remote client may take to finish the TLS handshake; a connection that stalls
/// before it is closed instead of holding a task.
const TLS_HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Why serving stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The socket could not be bound (or a stale socket there could not be removed).
    #[error("cannot bind the plugin socket {}: {error}", path.display())]
    Bind {
        /// The socket path.
        path: PathBuf,
        /// What the OS said.
        error: std::io::Error,
    },
    /// Remote mode's TCP address could not be bound.
    #[error("cannot listen on {address}: {error}")]
    Listen {
        /// The address asked for.
        address: String,
        /// What the OS (or the resolver) said.
        error: std::io::Error,
    },
    /// A certificate, key or CA of remote mode is missing, unreadable or unusable.
    #[error("{what}: {reason}")]
    Tls {
        /// Which one: the environment variable and file, or the PEM given.
        what: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The gRPC server failed.
    #[error("the gRPC server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
    /// Signal handlers or the async runtime could not be set up.
    #[error("cannot start: {0}")]
    Setup(std::io::Error),
}

/// Runs `plugin` as a hookvisor plugin process and returns the exit code for `main`.
///
/// Checks `HOOKVISOR_MAGIC_COOKIE` (missing or wrong: one line on stderr, exit 1), reads
/// `HOOKVISOR_PLUGIN_SOCKET` (must be absolute, else exit 1) and `HOOKVISOR_PLUGIN_NAME`, binds
/// the socket (replacing a stale socket file), serves `hookvisor.v1.Plugin` and
/// `grpc.health.v1.Health` until SIGTERM or SIGINT, then drains, removes the socket and exits 0.
/// Bind or serve errors are reported on stderr with exit 2. Builds its own tokio runtime.
///
/// With `HOOKVISOR_REMOTE_LISTEN` set (remote mode, contract §2.6) it serves the same services
/// on that TCP address instead, with TLS from `HOOKVISOR_TLS_CERT`, `HOOKVISOR_TLS_KEY` and
/// `HOOKVISOR_TLS_CLIENT_CA` (PEM files) and a client certificate required, and prints
/// `hookvisor plugin listening on ADDRESS (TLS, client certificates required)` on stderr once it
/// listens. The cookie must then be unset; the cookie with the address, a TLS variable unset or
/// a file unreadable or not PEM of its kind: one line on stderr, exit 1. No socket file is made.
pub fn run<P: Plugin>(plugin: P) -> ExitCode {
    run_with(|| Ok::<P, Infallible>(plugin))
}

/// Like [`run`], but builds the plugin with `init` after the handshake checks pass.
///
/// Use it for plugins that read configuration (files, environment) at start: started by hand they
/// still print the "started by hookvisor" line, and an `init` error is printed on stderr as one
/// line with exit 1, which the supervisor reports as a start failure with that line.
pub fn run_with<P, E, F>(init: F) -> ExitCode
where
    P: Plugin,
    E: Display,
    F: FnOnce() -> Result<P, E>,
{
    let mode = match Mode::from_env() {
        Ok(mode) => mode,
        Err(line) => {
            eprintln!("{line}");
            return ExitCode::from(1);
        }
    };
    let plugin = match init() {
        Ok(plugin) => plugin,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
    };
    let mut info = plugin.info().to_proto();
    if info.name.is_empty() {
        info.name = std::env::var(env::PLUGIN_NAME).unwrap_or_default();
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}", Error::Setup(e));
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(serve_until_signal(plugin, info, &mode));
    // Handlers still stuck after the drain limit are dropped here.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
    }
}

/// Where the process serves, read from the environment before the plugin is built.
enum Mode {
    /// Started by hookvisor: its Unix socket.
    Local(PathBuf),
    /// Remote mode (contract §2.6): a TCP address, with mutual TLS.
    Remote { address: String, tls: RemoteTls },
}

impl Mode {
    /// The mode the environment asks for; `Err` is the one line to print before exiting 1.
    fn from_env() -> Result<Self, String> {
        if let Some(address) = std::env::var_os(env::REMOTE_LISTEN) {
            if std::env::var_os(env::MAGIC_COOKIE).is_some() {
                return Err(format!(
                    "{} and {} are both set: hookvisor starts a local plugin with the cookie, \
                     an operator starts a remote one without it (contract §2.6); unset one",
                    env::MAGIC_COOKIE,
                    env::REMOTE_LISTEN
                ));
            }
            let file = |name: &str, what: &str| match std::env::var_os(name) {
                Some(path) if !path.is_empty() => Ok(PathBuf::from(path)),
                _ => Err(format!(
                    "{name} is not set; remote mode ({}) needs it: {what} (PEM file)",
                    env::REMOTE_LISTEN
                )),
            };
            let cert = file(env::TLS_CERT, "the server's certificate chain")?;
            let key = file(env::TLS_KEY, "the server's private key")?;
            let client_ca = file(env::TLS_CLIENT_CA, "the CA client certificates chain to")?;
            let tls = RemoteTls::read([
                (env::TLS_CERT, &cert),
                (env::TLS_KEY, &key),
                (env::TLS_CLIENT_CA, &client_ca),
            ])
            .map_err(|e| e.to_string())?;
            let address = address.to_string_lossy().into_owned();
            return Ok(Self::Remote { address, tls });
        }
        if std::env::var_os(env::MAGIC_COOKIE).as_deref() != Some(OsStr::new(MAGIC_COOKIE)) {
            return Err(NOT_BY_HAND.to_owned());
        }
        match std::env::var_os(env::PLUGIN_SOCKET) {
            Some(path) if Path::new(&path).is_absolute() => Ok(Self::Local(PathBuf::from(path))),
            Some(path) => Err(format!(
                "{} must be an absolute path, got {path:?}",
                env::PLUGIN_SOCKET
            )),
            None => Err(format!(
                "{} is not set; hookvisor sets it when it starts a plugin",
                env::PLUGIN_SOCKET
            )),
        }
    }
}

/// Remote mode's TLS (contract §2.6): the server's certificate chain and private key, and the CA
/// a client's certificate must chain to. A client without a certificate, or with one from
/// another CA, fails the handshake; ALPN is `h2`.
#[derive(Clone)]
pub struct RemoteTls {
    identity: Identity,
    client_ca: Certificate,
}

impl std::fmt::Debug for RemoteTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("RemoteTls").finish_non_exhaustive()
    }
}

impl RemoteTls {
    /// From PEM text: the certificate chain (the server's first), its private key, and the
    /// client CA. Each is checked here, so a bad one is an [`Error::Tls`] naming it.
    pub fn from_pem(
        cert_chain: impl AsRef<[u8]>,
        key: impl AsRef<[u8]>,
        client_ca: impl AsRef<[u8]>,
    ) -> Result<Self, Error> {
        Self::checked(
            ("the certificate chain PEM", cert_chain.as_ref()),
            ("the private key PEM", key.as_ref()),
            ("the client CA PEM", client_ca.as_ref()),
        )
    }

    /// From PEM files, as [`RemoteTls::from_pem`]; an unreadable file is an [`Error::Tls`] too.
    pub fn from_files(
        cert_chain: impl AsRef<Path>,
        key: impl AsRef<Path>,
        client_ca: impl AsRef<Path>,
    ) -> Result<Self, Error> {
        Self::read([
            ("the certificate chain", cert_chain.as_ref()),
            ("the private key", key.as_ref()),
            ("the client CA", client_ca.as_ref()),
        ])
    }

    /// Reads the certificate chain, key and client CA files, each named in errors by `what`.
    fn read(files: [(&str, &Path); 3]) -> Result<Self, Error> {
        let [cert, key, ca] = files.map(|(what, path)| {
            let what = format!("{what} file {}", path.display());
            match std::fs::read(path) {
                Ok(pem) => Ok((what, pem)),
                Err(e) => Err(tls_error(what, format!("cannot read it: {e}"))),
            }
        });
        let ((cert_what, cert), (key_what, key), (ca_what, ca)) = (cert?, key?, ca?);
        Self::checked((&cert_what, &cert), (&key_what, &key), (&ca_what, &ca))
    }

    fn checked(
        (cert_what, cert): (&str, &[u8]),
        (key_what, key): (&str, &[u8]),
        (ca_what, ca): (&str, &[u8]),
    ) -> Result<Self, Error> {
        if certificates(cert_what, cert)?.is_empty() {
            return Err(tls_error(cert_what.into(), "no CERTIFICATE in it".into()));
        }
        PrivateKeyDer::from_pem_slice(key).map_err(|e| {
            let reason = match e {
                pem::Error::NoItemsFound => "no PRIVATE KEY in it".to_owned(),
                e => format!("not a PEM private key: {e}"),
            };
            tls_error(key_what.into(), reason)
        })?;
        let (usable, _) =
            RootCertStore::empty().add_parsable_certificates(certificates(ca_what, ca)?);
        if usable == 0 {
            return Err(tls_error(
                ca_what.into(),
                "no usable CA CERTIFICATE in it".into(),
            ));
        }
        let tls = Self {
            identity: Identity::from_pem(cert, key),
            client_ca: Certificate::from_pem(ca),
        };
        // The configuration the server will build: a key that is not the certificate's fails here.
        Server::builder()
            .tls_config(tls.server_config())
            .map_err(|e| {
                tls_error(
                    format!("{cert_what} and {key_what}"),
                    format!("not a usable certificate and key: {}", error_chain(&e)),
                )
            })?;
        Ok(tls)
    }

    fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.client_ca.clone())
            .client_auth_optional(false)
            .timeout(TLS_HANDSHAKE_LIMIT)
    }
}

/// The certificates of a PEM text (none when it has no CERTIFICATE block).
fn certificates(what: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(what.into(), format!("not valid PEM: {e}")))
}

fn tls_error(what: String, reason: String) -> Error {
    Error::Tls { what, reason }
}

/// An error and its sources on one line (tonic's own message is only "transport error").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        line.push_str(": ");
        line.push_str(&e.to_string());
        source = e.source();
    }
    line
}

/// Serves `plugin` on `listener` until `shutdown` completes, then waits for calls in flight.
///
/// This is the gRPC part of [`run`] without the environment, signals and exit codes, so tests can
/// drive a plugin over a real socket. `Describe` answers the plugin's own [`Plugin::info`].
pub async fn serve<P: Plugin>(
    plugin: P,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let info = plugin.info().to_proto();
    serve_described(plugin, info, Listener::Unix(listener), shutdown).await
}

/// Serves `plugin` remotely (contract §2.6): on `listener`, a TCP socket, with mutual TLS, until
/// `shutdown` completes, then waits for calls in flight.
///
/// Remote mode without the environment: [`run`] does the same when `HOOKVISOR_REMOTE_LISTEN` is
/// set, plus signals, the "listening on" line and exit codes. Bind the listener yourself
/// (`TcpListener::bind("0.0.0.0:8443").await?`), so that with port 0 you can read the port back.
pub async fn serve_remote<P: Plugin>(
    plugin: P,
    listener: TcpListener,
    tls: RemoteTls,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let info = plugin.info().to_proto();
    serve_described(plugin, info, Listener::Tcp(listener, tls), shutdown).await
}

/// A bound socket to serve on.
enum Listener {
    Unix(UnixListener),
    Tcp(TcpListener, RemoteTls),
}

async fn serve_described<P: Plugin>(
    plugin: P,
    info: proto::PluginInfo,
    listener: Listener,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_service_status("", ServingStatus::Serving).await;
    health
        .set_service_status(PLUGIN_SERVICE, ServingStatus::Serving)
        .await;
    let shutdown = async move {
        shutdown.await;
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        health
            .set_service_status(PLUGIN_SERVICE, ServingStatus::NotServing)
            .await;
    };
    let adapter = Adapter {
        plugin: Arc::new(plugin),
        info,
    };
    let services = |mut server: Server| {
        server
            .add_service(PluginServer::new(adapter))
            .add_service(health_service)
    };
    match listener {
        Listener::Unix(listener) => {
            services(Server::builder())
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                .await?;
        }
        Listener::Tcp(listener, tls) => {
            let server = Server::builder()
                .tls_config(tls.server_config())
                .map_err(|e| {
                    tls_error(
                        "the certificate and key".into(),
                        format!("not usable: {}", error_chain(&e)),
                    )
                })?;
            let incoming = TcpIncoming::from(listener).with_nodelay(Some(true));
            services(server)
                .serve_with_incoming_shutdown(incoming, shutdown)
                .await?;
        }
    }
    Ok(())
}

async fn serve_until_signal<P: Plugin>(
    plugin: P,
    info: proto::PluginInfo,
    mode: &Mode,
) -> Result<(), Error> {
    let mut terminate = signal(SignalKind::terminate()).map_err(Error::Setup)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(Error::Setup)?;
    let (listener, socket) = match mode {
        Mode::Local(socket) => (Listener::Unix(bind(socket)?), Some(socket.as_path())),
        Mode::Remote { address, tls } => {
            let listen_error = |error| Error::Listen {
                address: address.clone(),
                error,
            };
            if address.is_empty() {
                return Err(Error::Listen {
                    address: "\"\"".into(),
                    error: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("{} is empty; it takes HOST:PORT", env::REMOTE_LISTEN),
                    ),
                });
            }
            let listener = TcpListener::bind(address.as_str())
                .await
                .map_err(listen_error)?;
            let bound = listener.local_addr().map_err(listen_error)?;
            // Tests and operators read the port from this line (`:0` picks one).
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "{REMOTE_LISTENING} {bound} (TLS, client certificates required)"
            );
            (Listener::Tcp(listener, tls.clone()), None)
        }
    };

    let (stop, stopped) = oneshot::channel::<()>();
    let server = serve_described(plugin, info, listener, async {
        let _ = stopped.await;
    });
    tokio::pin!(server);
    let signal_name = tokio::select! {
        result = &mut server => {
            remove_socket(socket);
            return result;
        }
        _ = terminate.recv() => "SIGTERM",
        _ = interrupt.recv() => "SIGINT",
    };
    // On stdout: hookvisor logs a plugin's stdout at info and its stderr at warn, and a stop
    // asked for is no warning. A closed stdout is ignored (`println!` would panic on it).
    {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stdout(),
            "received {signal_name}; finishing calls in flight and exiting"
        );
    }
    let _ = stop.send(());
    let result = match tokio::time::timeout(DRAIN_LIMIT, &mut server).await {
        Ok(result) => result,
        Err(_) => {
            eprintln!(
                "calls still running after {} ms; exiting anyway",
                DRAIN_LIMIT.as_millis()
            );
            Ok(())
        }
    };
    remove_socket(socket);
    result
}

/// Binds `path`, first removing a socket left there by an earlier run (never any other file).
fn bind(path: &Path) -> Result<UnixListener, Error> {
    let bind_error = |error| Error::Bind {
        path: path.to_owned(),
        error,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && meta.file_type().is_socket()
    {
        std::fs::remove_file(path).map_err(bind_error)?;
    }
    UnixListener::bind(path).map_err(bind_error)
}

/// Removes the Unix socket (remote mode has none).
fn remove_socket(path: Option<&Path>) {
    let Some(path) = path else { return };
    if let Err(e) = std::fs::remove_file(path)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        eprintln!("cannot remove the plugin socket {}: {e}", path.display());
    }
}

/// The host call's request id the supervisor sends with every call (`""` when absent).
fn request_id<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(metadata::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// The W3C trace context the supervisor sends while tracing (`""` when absent or malformed).
fn traceparent<T>(request: &Request<T>) -> String {
    request
        .metadata()
        .get(metadata::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
        .map(checked_traceparent)
        .unwrap_or_default()
        .to_owned()
}

/// Turns the generated service's requests into the SDK's views and back.
struct Adapter<P> {
    plugin: Arc<P>,
    info: proto::PluginInfo,
}

#[tonic::async_trait]
impl<P: Plugin> proto::plugin_server::Plugin for Adapter<P> {
    async fn describe(
        &self,
        _request: Request<proto::DescribeRequest>,
    ) -> Result<Response<proto::PluginInfo>, Status> {
        Ok(Response::new(self.info.clone()))
    }

    async fn before_tool_call(
        &self,
        request: Request<proto::BeforeToolCallRequest>,
    ) -> Result<Response<proto::ToolCallDecision>, Status> {
        let (request_id, traceparent) = (request_id(&request), traceparent(&request));
        let mut call = ToolCall::try_from(request.into_inner())?;
        call.request_id = request_id;
        call.traceparent = traceparent;
        self.plugin.before_tool_call(call).await.map(Response::new)
    }

    async fn before_session_create(
        &self,
        request: Request<proto::BeforeSessionCreateRequest>,
    ) -> Result<Response<proto::SessionDecision>, Status> {
        let (request_id, traceparent) = (request_id(&request), traceparent(&request));
        let mut session = SessionCreate::try_from(request.into_inner())?;
        session.request_id = request_id;
        session.traceparent = traceparent;
        self.plugin
            .before_session_create(session)
            .await
            .map(Response::new)
    }

    async fn session_created(
        &self,
        request: Request<proto::SessionCreatedEvent>,
    ) -> Result<Response<proto::Ack>, Status> {
        let (request_id, traceparent) = (request_id(&request), traceparent(&request));
        let mut event = SessionCreated::try_from(request.into_inner())?;
        event.request_id = request_id;
        event.traceparent = traceparent;
        self.plugin.session_created(event).await?;
        Ok(Response::new(proto::Ack {}))
    }
}
