//! A remote plugin's keys (contract §2.6): `endpoint` and its `[plugin.tls]` table.
//!
//! Checked here, with the key and its line: an `https://HOST[:PORT]` endpoint and nothing else
//! (no plain `http://`: a remote plugin is reached over TLS or not at all; no path, query or
//! user), a `[plugin.tls]` table with `ca`, `cert` and `key` (mutual TLS is not optional), a
//! valid `server_name`, a 64-digit `spki_sha256`, and none of the keys that only make sense for
//! a process (`command`, `args`, `sha256`, `env`, `inherit_env`, `[plugin.sandbox]`). Whether
//! the files hold a usable CA, certificate and key is checked at each dial (so a renewed
//! certificate is taken without a reload) and by `check-config` (`crate::plugin::remote`).

use std::path::PathBuf;

use serde::Deserialize;
use toml::Spanned;

use super::{ConfigError, Document};

/// The port of an endpoint that names none (HTTPS's).
const DEFAULT_PORT: u16 = 443;

/// `[plugin.tls]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    ca: Spanned<String>,
    cert: Spanned<String>,
    key: Spanned<String>,
    server_name: Option<Spanned<String>>,
    spki_sha256: Option<Spanned<String>>,
}

/// Where a remote plugin is and how it is authenticated, both ways.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteConfig {
    /// The endpoint as written (`https://policy.internal:8443`), for messages.
    pub endpoint: String,
    /// The host to connect to (a name, or an address without brackets).
    pub host: String,
    /// The TCP port.
    pub port: u16,
    /// The CA the server's chain must end in (PEM); the system's roots are never used.
    pub ca: PathBuf,
    /// The client certificate chain the supervisor presents (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
    /// The name the server's certificate must hold (default: the endpoint's host).
    pub server_name: String,
    /// The SHA-256 of the server certificate's SubjectPublicKeyInfo, when pinned.
    pub spki_sha256: Option<[u8; 32]>,
}

impl RemoteConfig {
    /// `host:port` as the HTTP/2 `:authority` of every call (brackets around an IPv6 address).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// The keys of a `[[plugin]]` that only a process has, present in the table (for the refusal).
pub(super) struct ProcessKeys<'a> {
    pub command: Option<&'a Spanned<String>>,
    pub args: Option<&'a Spanned<String>>,
    pub sha256: Option<&'a Spanned<String>>,
    pub env: Option<&'a Spanned<String>>,
    pub inherit_env: Option<&'a Spanned<String>>,
    pub sandbox: bool,
}

impl Document<'_> {
    /// `endpoint` and `[plugin.tls]`, given the process keys that may not come with them.
    pub(super) fn remote(
        &self,
        endpoint: &Spanned<String>,
        tls: Option<RawTls>,
        process: ProcessKeys<'_>,
    ) -> Result<RemoteConfig, ConfigError> {
        let excluded = [
            ("command", process.command),
            ("args", process.args),
            ("sha256", process.sha256),
            ("env", process.env),
            ("inherit_env", process.inherit_env),
        ];
        if let Some((key, value)) = excluded.iter().find_map(|(k, v)| v.map(|v| (k, v))) {
            return Err(self.key_error(
                value,
                key,
                "a plugin with an `endpoint` is reached over the network, not started: \
                 remove this key or the `endpoint`",
            ));
        }
        if process.sandbox {
            return Err(self.key_error(
                endpoint,
                "endpoint",
                "a remote plugin runs on its own machine, so [plugin.sandbox] has nothing to \
                 confine here: remove the table or the `endpoint`",
            ));
        }
        let (host, port) = self.endpoint(endpoint)?;
        let Some(tls) = tls else {
            return Err(self.key_error(
                endpoint,
                "endpoint",
                "a remote plugin needs a [plugin.tls] table with `ca`, `cert` and `key` \
                 (mutual TLS)",
            ));
        };
        let server_name = match &tls.server_name {
            Some(name) => {
                let text = name.get_ref();
                if tokio_rustls::rustls::pki_types::ServerName::try_from(text.as_str()).is_err() {
                    return Err(self.key_error(
                        name,
                        "server_name",
                        format!("{text:?} is not a DNS name or an IP address"),
                    ));
                }
                text.clone()
            }
            None => host.clone(),
        };
        Ok(RemoteConfig {
            endpoint: endpoint.get_ref().clone(),
            host,
            port,
            ca: self.path(&tls.ca, "ca")?,
            cert: self.path(&tls.cert, "cert")?,
            key: self.path(&tls.key, "key")?,
            server_name,
            spki_sha256: self.sha256(tls.spki_sha256.as_ref(), "spki_sha256")?,
        })
    }

    /// `https://HOST[:PORT][/]`: the host (brackets removed) and port.
    fn endpoint(&self, value: &Spanned<String>) -> Result<(String, u16), ConfigError> {
        let text = value.get_ref();
        let bad = |why: &str| {
            self.key_error(
                value,
                "endpoint",
                format!("{text:?} {why}; expected \"https://HOST:PORT\""),
            )
        };
        if text.starts_with("http://") {
            return Err(bad(
                "is plain HTTP: a remote plugin is reached over TLS only (https://)",
            ));
        }
        let Some(rest) = text.strip_prefix("https://") else {
            return Err(bad("is not an https:// address"));
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.is_empty() || authority.contains(['/', '?', '#', '@']) {
            return Err(bad(
                "has a path, query, fragment or user, or no host (only a host and a port are \
                 taken)",
            ));
        }
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => {
                let Some((host, after)) = v6.split_once(']') else {
                    return Err(bad("has an unclosed '['"));
                };
                if host.parse::<std::net::Ipv6Addr>().is_err() {
                    return Err(bad("has no valid IPv6 address in brackets"));
                }
                match after {
                    "" => (host, None),
                    _ => match after.strip_prefix(':') {
                        Some(port) => (host, Some(port)),
                        None => return Err(bad("has text after the ']'")),
                    },
                }
            }
            None => match authority.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (authority, None),
            },
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(port) => match port.parse::<u16>() {
                Ok(p) if p > 0 => p,
                _ => return Err(bad("has no valid port (1..=65535)")),
            },
        };
        let valid_name = !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':'));
        if !valid_name {
            return Err(bad("has no valid host"));
        }
        Ok((host.to_owned(), port))
    }
}
