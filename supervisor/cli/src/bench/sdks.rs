//! What each SDK costs over the gRPC library it is built on: per language, the SDK's trivial
//! plugin (the ones [`languages`] finds) against a bare server written directly on that library
//! and answering the same call ("no opinion"), called by the same client in alternating blocks
//! so that outside load hits both alike.
//!
//! The bare servers: `bare-tonic` (examples crate, next to this binary; `current` and `multi`,
//! tokio's one-thread and multi-thread runtimes), `target/go/bare-grpc-go`
//! (`bench/bare/go/build.sh target/go`; `default` and `workers`, grpc-go's goroutine per stream
//! and its stream workers), `bench/bare/python/bare.py thread|aio` (grpcio's thread-pool server
//! and `grpc.aio`) and `bench/bare/node/bare.js` (grpc-js), the last two run by the same
//! interpreter as the SDK's plugin. Where there are two modes, both are measured and the faster
//! p50 is `bare_<L>_*` (`bare_<L>_mode` says which).

#[allow(clippy::wildcard_imports)]
use super::*;

/// One server of a language's comparison: the SDK's plugin or a bare server (with its mode).
struct Server {
    /// `sdk_<L>` or `bare_<L>` or `bare_<L>_<mode>`: the keys' prefix.
    key: String,
    launch: Launch,
}

/// The bare servers of `language`, one per serving mode of its library (Rust, Go and
/// Python have two), given the SDK plugin's launch (Python and TypeScript run theirs with the same
/// interpreter); `Err` says what is missing.
fn bare_servers(
    language: &str,
    sdk: &Launch,
    bin_dir: &Path,
    repo: &Path,
) -> Result<Vec<Server>, String> {
    let exists = |path: PathBuf, build: &str| {
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "{language}: {} is missing ({build})",
                path.display()
            ))
        }
    };
    // `program [script] MODE` for each mode, keys `bare_<L>_<MODE>`; the mode "" is no argument
    // and the key `bare_<L>`.
    let modes = |program: PathBuf, script: Option<PathBuf>, modes: &[&str]| -> Vec<Server> {
        modes
            .iter()
            .map(|mode| Server {
                key: match *mode {
                    "" => format!("bare_{language}"),
                    mode => format!("bare_{language}_{mode}"),
                },
                launch: Launch {
                    program: program.clone(),
                    args: script
                        .iter()
                        .map(|script| script.display().to_string())
                        .chain((!mode.is_empty()).then(|| (*mode).to_owned()))
                        .collect(),
                    env: Vec::new(),
                },
            })
            .collect()
    };
    Ok(match language {
        "rust" => modes(
            exists(
                bin_dir.join("bare-tonic"),
                "cargo build --release -p hookvisor-examples",
            )?,
            None,
            &["current", "multi"],
        ),
        "go" => modes(
            exists(
                repo.join("target/go/bare-grpc-go"),
                "bench/bare/go/build.sh target/go",
            )?,
            None,
            &["default", "workers"],
        ),
        "python" => modes(
            sdk.program.clone(),
            Some(exists(
                repo.join("bench/bare/python/bare.py"),
                "part of the repository: is this checkout whole?",
            )?),
            &["thread", "aio"],
        ),
        "typescript" => modes(
            sdk.program.clone(),
            Some(exists(
                repo.join("bench/bare/node/bare.js"),
                "part of the repository: is this checkout whole?",
            )?),
            &[""],
        ),
        other => return Err(format!("{other}: no bare server known")),
    })
}

/// For each language found: `sdk_<L>_p50_us`/`_p99_us`, `bare_<L>_p50_us`/`_p99_us` and
/// `sdk_ratio_<L>_p50`/`_p99` (SDK / bare), and each server's CPU time per call
/// (`*_cpu_us_per_call`, all its threads: less noisy than latency on a busy machine);
/// `sdks_missing` names the comparisons skipped.
pub(super) async fn sdks(
    bin_dir: &Path,
    languages: &[(&'static str, Launch)],
    dir: &Path,
    request: &ToolCallRequest,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    // target/<profile>/hookvisor: the repository is two levels up.
    let repo = bin_dir.parent().and_then(Path::parent).unwrap_or(bin_dir);
    let mut missing = Vec::new();
    for (language, sdk) in languages {
        let bare = match bare_servers(language, sdk, bin_dir, repo) {
            Ok(bare) => bare,
            Err(why) => {
                missing.push(why);
                continue;
            }
        };
        let servers: Vec<Server> = std::iter::once(Server {
            key: format!("sdk_{language}"),
            launch: sdk.clone(),
        })
        .chain(bare)
        .collect();
        compare(&servers, dir, request, plan, figures)
            .await
            .with_context(|| format!("comparing the {language} SDK with its bare server"))?;
        // Where there are two bare servers, the faster at p50 is the one the SDK is held to.
        let fastest = servers[1..]
            .iter()
            .filter_map(|s| Some((figures.get(&format!("{}_p50_us", s.key))?, &s.key)))
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, key)| key.clone());
        let bare = format!("bare_{language}");
        if let Some(fastest) = fastest.filter(|key| *key != bare) {
            for figure in ["p50_us", "p99_us", "cpu_us_per_call"] {
                if let Some(value) = figures.get(&format!("{fastest}_{figure}")) {
                    figures.set(&format!("{bare}_{figure}"), value);
                }
            }
            let mode = fastest.trim_start_matches(&format!("{bare}_")).to_owned();
            figures.set(&format!("{bare}_mode"), mode);
        }
        for p in ["p50", "p99"] {
            figures.ratio(
                &format!("sdk_ratio_{language}_{p}"),
                &format!("sdk_{language}_{p}_us"),
                &format!("{bare}_{p}_us"),
            );
        }
    }
    if !missing.is_empty() {
        figures.set("sdks_missing", missing);
    }
    Ok(())
}

/// Calls per block: short blocks, so that a burst of outside load (another build on this small
/// machine) lands on every server of a comparison alike, in the p99 too.
const BLOCK: usize = 20;

/// Starts every server, warms each up, then calls them in blocks of [`BLOCK`] calls, one
/// server after the other (the first server of each round rotating), until each has had
/// `plan.sequential` calls; every answer must be "no opinion".
async fn compare(
    servers: &[Server],
    dir: &Path,
    request: &ToolCallRequest,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let mut started = Vec::with_capacity(servers.len());
    for (i, server) in servers.iter().enumerate() {
        let socket = dir.join(format!("sdk{i}.sock"));
        let plugin = match Plugin::start(&server.launch, &socket).await {
            Ok((plugin, _)) => plugin,
            Err(e) => {
                for (plugin, _) in started {
                    Plugin::stop(plugin).await;
                }
                return Err(e.context(server.key.clone()));
            }
        };
        let client = plugin.client().await;
        started.push((plugin, client));
    }
    let result = measure(servers, &started, request, plan).await;
    for (plugin, _) in started {
        plugin.stop().await;
    }
    for (server, (samples, cpu)) in servers.iter().zip(result?) {
        figures.set(
            &format!("{}_p50_us", server.key),
            micros(percentile(&samples, 0.5)),
        );
        figures.set(
            &format!("{}_p99_us", server.key),
            micros(percentile(&samples, 0.99)),
        );
        if !samples.is_empty() {
            figures.set(
                &format!("{}_cpu_us_per_call", server.key),
                round2(cpu.as_secs_f64() * 1e6 / samples.len() as f64),
            );
        }
    }
    Ok(())
}

async fn measure(
    servers: &[Server],
    started: &[(Plugin, anyhow::Result<PluginClient<Channel>>)],
    request: &ToolCallRequest,
    plan: &Plan,
) -> anyhow::Result<Vec<(Vec<Duration>, Duration)>> {
    let mut clients = Vec::with_capacity(started.len());
    for (server, (_, client)) in servers.iter().zip(started) {
        match client {
            Ok(client) => clients.push(client.clone()),
            Err(e) => bail!("cannot connect to {}: {e}", server.key),
        }
    }
    let call = plugin_call(request);
    for (server, client) in servers.iter().zip(&mut clients) {
        calls(client, &call, plan.warmup, &server.key).await?;
    }
    let rounds = plan.sequential.div_ceil(BLOCK);
    let mut samples = vec![(Vec::with_capacity(rounds * BLOCK), Duration::ZERO); servers.len()];
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (round + k) % servers.len();
            let pid = started[i].0.pid;
            let before = cpu_time(pid);
            let block = calls(&mut clients[i], &call, BLOCK, &servers[i].key).await?;
            samples[i].1 += cpu_time(pid).saturating_sub(before);
            samples[i].0.extend(block);
        }
    }
    Ok(samples)
}

/// `n` sequential calls; each answer must be "no opinion" (an empty decision).
async fn calls(
    client: &mut PluginClient<Channel>,
    call: &BeforeToolCallRequest,
    n: usize,
    key: &str,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let decision = client.before_tool_call(call.clone()).await?.into_inner();
        samples.push(started.elapsed());
        if decision != Default::default() {
            bail!("{key} answered {decision:?}, not \"no opinion\"");
        }
    }
    Ok(samples)
}
