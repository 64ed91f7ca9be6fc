//! `hookvisor bench`'s remote plugin (contract §2.6): the same `allow-all` trusted policy
//! reached over TCP with mutual TLS (the Rust SDK's remote mode, on loopback) against it spawned
//! on a Unix socket, each behind its own `hookvisor serve`, in alternating blocks of the same run.
//! The certificates (a CA, a server, a client) are made for the run and removed with it.
//!
//! Keys: `remote_p50_us`, `remote_p99_us`, `remote_local_p50_us`, `remote_local_p99_us`,
//! `remote_added_p50_us` (remote less local), `ratio_remote_p50`.

#[allow(clippy::wildcard_imports)]
use super::*;

use tokio::io::AsyncBufReadExt;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

/// How long the remote plugin may take to say where it listens.
const LISTEN_DEADLINE: Duration = Duration::from_secs(30);

/// Writes `ca.pem`, `server.pem`/`server.key` (for `localhost` and 127.0.0.1) and
/// `client.pem`/`client.key` into `dir`.
fn certificates(dir: &Path) -> anyhow::Result<()> {
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "hookvisor bench CA");
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate()?)?;
    std::fs::write(dir.join("ca.pem"), ca.pem())?;
    for (stem, usage) in [
        ("server", ExtendedKeyUsagePurpose::ServerAuth),
        ("client", ExtendedKeyUsagePurpose::ClientAuth),
    ] {
        let mut params = CertificateParams::new(vec!["localhost".to_owned()])?;
        params
            .subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca)?;
        std::fs::write(dir.join(format!("{stem}.pem")), cert.pem())?;
        std::fs::write(dir.join(format!("{stem}.key")), key.serialize_pem())?;
    }
    Ok(())
}

/// `allow-all` as a trusted policy in its SDK's remote mode, and the address it listens on.
async fn start_remote(plugin: &Path, pki: &Path) -> anyhow::Result<(Child, String)> {
    let mut child = Command::new(plugin)
        .env_clear()
        .env(env::REMOTE_LISTEN, "127.0.0.1:0")
        .env(env::TLS_CERT, pki.join("server.pem"))
        .env(env::TLS_KEY, pki.join("server.key"))
        .env(env::TLS_CLIENT_CA, pki.join("ca.pem"))
        .env("HOOKVISOR_ALLOW_ALL_STAGE", "policy")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start allow-all in remote mode")?;
    let stderr = child.stderr.take().context("no stderr pipe")?;
    let mut lines = tokio::io::BufReader::new(stderr).lines();
    let find = async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.split(hookvisor_proto::REMOTE_LISTENING).nth(1) {
                let address = rest.split_whitespace().next().unwrap_or("").to_owned();
                return Ok(address);
            }
        }
        bail!("allow-all exited before it listened")
    };
    let address = tokio::time::timeout(LISTEN_DEADLINE, find)
        .await
        .context("allow-all did not listen in remote mode in time")??;
    // The rest of its stderr is drained, so a chatty plugin never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    Ok((child, address))
}

/// Measures the remote plugin against the local one (see the module's documentation).
pub(super) async fn remote(run: &Run<'_>, figures: &mut Figures) -> anyhow::Result<()> {
    let Run {
        bin_dir,
        plugin,
        dir,
        request,
        plan,
        options,
    } = *run;
    let pki = dir.join("remote-pki");
    std::fs::create_dir_all(&pki)?;
    certificates(&pki)?;
    let (mut server, address) = start_remote(plugin, &pki).await?;
    let remote_table = format!(
        "[[plugin]]\nname = \"policy\"\nendpoint = \"https://{address}\"\ntrusted = true\n\
         [plugin.tls]\nca = {}\ncert = {}\nkey = {}\nserver_name = \"localhost\"\n",
        toml_string(&pki.join("ca.pem")),
        toml_string(&pki.join("client.pem")),
        toml_string(&pki.join("client.key")),
    );
    let remote = Supervisor::start(bin_dir, dir, "remote", &remote_table, options).await?;
    let local = Supervisor::start(
        bin_dir,
        dir,
        "remote-local",
        &via_config(plugin, 1),
        options,
    )
    .await?;
    let (remote_client, local_client) = (remote.client().await?, local.client().await?);
    sequential(&remote_client, request, plan.warmup, Some(Outcome::Allow)).await?;
    sequential(&local_client, request, plan.warmup, Some(Outcome::Allow)).await?;
    let (mut over_tls, mut on_socket) = (Vec::new(), Vec::new());
    for _ in 0..plan.blocks {
        on_socket
            .extend(sequential(&local_client, request, plan.block, Some(Outcome::Allow)).await?);
        over_tls
            .extend(sequential(&remote_client, request, plan.block, Some(Outcome::Allow)).await?);
    }
    remote.stop().await;
    local.stop().await;
    let _ = server.kill().await;
    for (key, samples) in [("remote", &over_tls), ("remote_local", &on_socket)] {
        figures.set(&format!("{key}_p50_us"), micros(percentile(samples, 0.5)));
        figures.set(&format!("{key}_p99_us"), micros(percentile(samples, 0.99)));
    }
    if let (Some(a), Some(b)) = (
        figures.get("remote_p50_us"),
        figures.get("remote_local_p50_us"),
    ) {
        figures.set("remote_added_p50_us", round2(a - b));
    }
    figures.ratio("ratio_remote_p50", "remote_p50_us", "remote_local_p50_us");
    Ok(())
}
