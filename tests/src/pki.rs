//! A test PKI made at test time (never committed): a CA, a server and a client certificate,
//! and a second, unrelated CA with a server of its own, for remote plugins (contract §2.6).

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use sha2::{Digest, Sha256};

use crate::harness::{TestDir, toml_string};

/// A test PKI in a directory: `ca.pem`, `server.pem`/`server.key` (names `localhost`,
/// `policy.test` and 127.0.0.1), `client.pem`/`client.key`, and `other-ca.pem` with
/// `other-server.pem`/`other-server.key` (the same names, another CA).
pub struct Pki {
    dir: TestDir,
    /// SHA-256 of the server key's SubjectPublicKeyInfo.
    pub server_spki: [u8; 32],
}

impl Default for Pki {
    fn default() -> Pki {
        Pki::new()
    }
}

impl Pki {
    /// A PKI in a new directory.
    pub fn new() -> Pki {
        let dir = TestDir::new();
        let server_spki = write(dir.path());
        Pki { dir, server_spki }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The remote-mode environment of a server with `cert`/`key` (file stems) accepting clients
    /// of `client_ca`.
    pub fn server_env(&self, server: &str, client_ca: &str) -> Vec<(String, String)> {
        let path = |name: String| self.path(&name).display().to_string();
        vec![
            (
                "HOOKVISOR_REMOTE_LISTEN".to_owned(),
                "127.0.0.1:0".to_owned(),
            ),
            (
                "HOOKVISOR_TLS_CERT".to_owned(),
                path(format!("{server}.pem")),
            ),
            (
                "HOOKVISOR_TLS_KEY".to_owned(),
                path(format!("{server}.key")),
            ),
            (
                "HOOKVISOR_TLS_CLIENT_CA".to_owned(),
                path(format!("{client_ca}.pem")),
            ),
        ]
    }

    /// A `[[plugin]]` table reaching `address` with the test client certificate; `extra` lines
    /// go in `[plugin.tls]`.
    pub fn plugin(&self, name: &str, address: &str, keys: &[&str], tls: &[&str]) -> String {
        let path = |name: &str| toml_string(&self.path(name).display().to_string());
        let mut out = format!(
            "\n[[plugin]]\nname = \"{name}\"\nendpoint = \"https://{address}\"\n{}\n[plugin.tls]\nca = {}\ncert = {}\nkey = {}\n",
            keys.join("\n"),
            path("ca.pem"),
            path("client.pem"),
            path("client.key"),
        );
        for line in tls {
            out.push_str(line);
            out.push('\n');
        }
        out
    }
}

fn ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let key = KeyPair::generate().expect("CA key");
    CertifiedIssuer::self_signed(params, key).expect("self-signed CA")
}

fn ca_named(dir: &Path, stem: &str, name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let issuer = ca(name);
    std::fs::write(dir.join(format!("{stem}.pem")), issuer.pem()).expect("CA file");
    issuer
}

/// A certificate and key signed by `issuer`, written as `STEM.pem` and `STEM.key`.
fn leaf(
    dir: &Path,
    stem: &str,
    issuer: &CertifiedIssuer<'static, KeyPair>,
    usage: ExtendedKeyUsagePurpose,
    server: bool,
) -> KeyPair {
    let names = if server {
        vec!["localhost".to_owned(), "policy.test".to_owned()]
    } else {
        vec!["hookvisor-client".to_owned()]
    };
    let mut params = CertificateParams::new(names).expect("leaf params");
    if server {
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    params.distinguished_name.push(DnType::CommonName, stem);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().expect("leaf key");
    let cert = params.signed_by(&key, issuer).expect("signing a leaf");
    std::fs::write(dir.join(format!("{stem}.pem")), cert.pem()).expect("cert file");
    std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem()).expect("key file");
    key
}

/// Writes the PKI's files into `dir` (see [`Pki`]); the server key's SPKI SHA-256.
pub fn write(dir: &Path) -> [u8; 32] {
    let ca = ca("hookvisor test CA");
    let other = ca_named(dir, "other-ca", "another CA");
    let server_key = leaf(
        dir,
        "server",
        &ca,
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    leaf(
        dir,
        "client",
        &ca,
        ExtendedKeyUsagePurpose::ClientAuth,
        false,
    );
    leaf(
        dir,
        "other-server",
        &other,
        ExtendedKeyUsagePurpose::ServerAuth,
        true,
    );
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("ca.pem");
    Sha256::digest(server_key.subject_public_key_info()).into()
}
