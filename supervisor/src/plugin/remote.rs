//! Reaching a remote plugin (contract §2.6): TCP, TLS 1.2 or 1.3 with ALPN `h2`, a client
//! certificate, the server's chain checked against the configured CA alone (never the system's
//! roots), its name, and, when pinned, the SHA-256 of its certificate's SubjectPublicKeyInfo.
//!
//! The files are read when an instance is dialed (at start, after a failure, at an operator's
//! restart), so a renewed certificate is taken without a reload; a connection made again
//! within one instance reuses what was read. Every failure to connect is an [`Unreachable`]
//! that names the endpoint and the cause, which `process::classify` reports as
//! `FAILURE_UNAVAILABLE` (never sent again within the call: a refused connection does not
//! come back in the milliseconds of a deadline).

use std::io::{self, Read};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::PROTOCOL_VERSION;
use hookvisor_proto::v1::DescribeRequest;
use hyper_util::rt::TokioIo;
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::client::WebPkiServerVerifier;
use tokio_rustls::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls::{
    self, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tonic::transport::{Channel, Endpoint};

use super::link::Link;
use super::process::{Connected, StartError};
use crate::decide::limits;
use crate::files::config::RemoteConfig;

/// The largest CA, certificate or key file read (a PEM chain is a few KiB; this bounds a
/// mistaken `/dev/zero` or log file).
const MAX_PEM_BYTES: u64 = 1024 * 1024;

/// A remote plugin's endpoint and TLS client, ready to dial.
pub struct Remote {
    endpoint: String,
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    connector: TlsConnector,
}

impl std::fmt::Debug for Remote {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Remote")
            .field("endpoint", &self.endpoint)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A connection to a remote plugin that could not be made (TCP, TLS or the server's identity),
/// with what went wrong.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Unreachable(pub String);

impl Remote {
    /// Reads the CA, certificate and key and makes the TLS client; the error names the key,
    /// the file and what is wrong with it.
    pub fn load(config: &RemoteConfig) -> Result<Remote, String> {
        // ring, as tonic's `tls-ring` uses: no C toolchain beyond what ring builds. rustls
        // 0.23.48 deprecates it for lacking post-quantum key exchange (aws-lc-rs has it);
        // the classical X25519 it offers is what every gRPC TLS stack here speaks.
        #[allow(deprecated)]
        let provider = Arc::new(ring::default_provider());
        let mut roots = RootCertStore::empty();
        for cert in certificates(&config.ca, "ca")? {
            roots.add(cert).map_err(|e| {
                format!(
                    "[plugin.tls] ca {}: not a CA certificate: {e}",
                    config.ca.display()
                )
            })?;
        }
        let chain = certificates(&config.cert, "cert")?;
        let key = private_key(&config.key)?;
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| format!("[plugin.tls] ca {}: {e}", config.ca.display()))?;
        let verifier = Arc::new(Verifier {
            webpki,
            spki_sha256: config.spki_sha256,
        });
        let mut tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_auth_cert(chain, key)
            .map_err(|e| {
                format!(
                    "[plugin.tls] cert {} and key {}: {e}",
                    config.cert.display(),
                    config.key.display()
                )
            })?;
        tls.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = ServerName::try_from(config.server_name.clone())
            .map_err(|e| format!("[plugin.tls] server_name {:?}: {e}", config.server_name))?;
        Ok(Remote {
            endpoint: config.endpoint.clone(),
            host: config.host.clone(),
            port: config.port,
            authority: config.authority(),
            server_name,
            connector: TlsConnector::from(Arc::new(tls)),
        })
    }

    /// The endpoint as configured.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// One TCP connection with TLS done and `h2` agreed.
    pub async fn connect(&self) -> io::Result<TlsStream<TcpStream>> {
        let unreachable = |what: String| {
            io::Error::other(Unreachable(format!(
                "cannot reach {}: {what}",
                self.endpoint
            )))
        };
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| unreachable(e.to_string()))?;
        let _ = tcp.set_nodelay(true);
        let tls = self
            .connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| unreachable(format!("TLS: {}", tls_cause(&e))))?;
        match tls.get_ref().1.alpn_protocol() {
            Some(b"h2") => Ok(tls),
            other => Err(unreachable(format!(
                "the server did not agree to HTTP/2 over TLS (ALPN {:?})",
                other.map(String::from_utf8_lossy)
            ))),
        }
    }

    /// The URI of a call of `path` (a `link` constant, written for Unix sockets): scheme
    /// `https` and the endpoint's authority.
    pub fn uri(&self, path: &'static str) -> Result<http::Uri, tonic::Status> {
        let method = path.strip_prefix("http://localhost").unwrap_or(path);
        http::Uri::builder()
            .scheme("https")
            .authority(self.authority.as_str())
            .path_and_query(method)
            .build()
            .map_err(|e| tonic::Status::internal(e.to_string()))
    }

    /// A tonic channel over [`Remote::connect`] (for `Describe` and the health checks).
    pub async fn channel(self: &Arc<Self>) -> Result<Channel, tonic::transport::Error> {
        let remote = self.clone();
        // Requests name the endpoint (`https`, its authority), as an L7 proxy routes by them;
        // the connection itself is always `Remote::connect`'s.
        let origin = http::Uri::builder()
            .scheme("https")
            .authority(self.authority.as_str())
            .path_and_query("/")
            .build();
        let endpoint = Endpoint::from_static("http://remote");
        let endpoint = match origin {
            Ok(origin) => endpoint.origin(origin),
            Err(_) => endpoint,
        };
        endpoint
            .connect_with_connector(tower::service_fn(move |_| {
                let remote = remote.clone();
                async move { remote.connect().await.map(TokioIo::new) }
            }))
            .await
    }

    /// The handshake of a remote plugin: TLS (in the connection), then `Describe` answering
    /// protocol 1, within `timeout`; then the call connection.
    pub async fn handshake(self: &Arc<Self>, timeout: Duration) -> Result<Connected, StartError> {
        let deadline = Instant::now() + timeout;
        let timed_out = || {
            StartError::Connect(format!(
                "{} did not complete TLS and Describe within {} ms",
                self.endpoint,
                timeout.as_millis()
            ))
        };
        let channel = match tokio::time::timeout_at(deadline, self.channel()).await {
            Ok(Ok(channel)) => channel,
            Ok(Err(e)) => {
                // tonic's own words ("transport error") add nothing to the cause's.
                let cause = std::error::Error::source(&e).map_or_else(|| e.to_string(), chain);
                return Err(StartError::Connect(cause));
            }
            Err(_) => return Err(timed_out()),
        };
        let mut client = super::process::plugin_client(channel.clone());
        let request = DescribeRequest {
            protocol_version: PROTOCOL_VERSION,
        };
        let info = match tokio::time::timeout_at(deadline, client.describe(request)).await {
            Ok(Ok(info)) => info.into_inner(),
            // A status made on this side (the connection failed: a server that refuses the
            // client certificate closes it after TLS 1.3's handshake, at the first request).
            Ok(Err(status)) => match std::error::Error::source(&status) {
                Some(source) => {
                    return Err(StartError::Connect(format!(
                        "{}: the connection failed during Describe (does the server accept \
                         the client certificate?): {}",
                        self.endpoint,
                        limits::cap_text(&chain(source), 512)
                    )));
                }
                None => {
                    return Err(StartError::Describe(format!(
                        "Describe failed with gRPC status {:?}: {}",
                        status.code(),
                        limits::cap_text(status.message(), 512)
                    )));
                }
            },
            Err(_) => return Err(StartError::DescribeTimeout(timeout)),
        };
        if info.protocol_version != PROTOCOL_VERSION {
            return Err(StartError::Protocol(info.protocol_version));
        }
        let link = match tokio::time::timeout_at(deadline, Link::connect_remote(self.clone())).await
        {
            Ok(Ok(link)) => link,
            Ok(Err(e)) => return Err(StartError::Connect(e.to_string())),
            Err(_) => return Err(timed_out()),
        };
        Ok(Connected {
            link,
            channel,
            info,
        })
    }
}

/// An error and its sources in one line (tonic's transport errors say only "transport error"
/// at the top).
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let more = cause.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        source = cause.source();
    }
    text
}

/// What a TLS failure came from, in words (rustls's own error, under the I/O error).
fn tls_cause(error: &io::Error) -> String {
    match error
        .get_ref()
        .and_then(|e| e.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::InvalidCertificate(why)) => {
            format!("the server's certificate was refused: {why:?}")
        }
        Some(rustls::Error::AlertReceived(alert)) => {
            format!("the server refused the handshake (alert {alert:?})")
        }
        Some(other) => other.to_string(),
        None => error.to_string(),
    }
}

/// A file of at most [`MAX_PEM_BYTES`].
fn read_pem(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    let file = std::fs::File::open(path)
        .map_err(|e| format!("[plugin.tls] {key} {}: {e}", path.display()))?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("[plugin.tls] {key} {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_PEM_BYTES {
        return Err(format!(
            "[plugin.tls] {key} {}: larger than {MAX_PEM_BYTES} bytes",
            path.display()
        ));
    }
    Ok(bytes)
}

/// The certificates of a PEM file (at least one).
fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read_pem(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("[plugin.tls] {key} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "[plugin.tls] {key} {}: no PEM certificate in it",
            path.display()
        ));
    }
    Ok(certs)
}

fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let bytes = read_pem(path, "key")?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!(
            "[plugin.tls] key {}: no private key in it ({e})",
            path.display()
        )
    })
}

/// Checks every file a remote plugin names (for `check-config`): what [`Remote::load`] does
/// at a dial.
pub fn check(config: &RemoteConfig) -> Result<(), String> {
    Remote::load(config).map(|_| ())
}

/// The server's chain and name by webpki against the configured CA, then the SPKI pin.
#[derive(Debug)]
struct Verifier {
    webpki: Arc<WebPkiServerVerifier>,
    spki_sha256: Option<[u8; 32]>,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.webpki.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        if let Some(pin) = self.spki_sha256 {
            let cert = webpki::EndEntityCert::try_from(end_entity)
                .map_err(|e| rustls::Error::General(format!("the server's certificate: {e}")))?;
            let spki = cert.subject_public_key_info();
            let digest: [u8; 32] = Sha256::digest(spki.as_ref()).into();
            if digest != pin {
                return Err(rustls::Error::General(format!(
                    "the server's public key (SPKI SHA-256 {}) is not the pinned spki_sha256",
                    hex(&digest)
                )));
            }
        }
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
