//! `hookvisor bench`: what hookvisor costs on this machine, measured in one run against the floor
//! of its topology (one direct gRPC call to one plugin) and against HashiCorp go-plugin's hop.
//!
//! Every figure comes from processes started here: the `allow-all` example plugin (found next
//! to this binary, like the demo's), `hookvisor serve` (this binary, as a child, with a
//! generated configuration) and, when built, the go-plugin pair of `bench/goplugin`. Nothing is
//! asserted: the benchmark prints figures, ratios of figures from the same run, and the targets
//! they are held to. CPU time is read from `/proc/PID/task/*/schedstat` (nanoseconds).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use hookvisor::files::config::{PluginConfig, PluginSandbox, SupervisorConfig, socket_in};
use hookvisor::plugin::process::Process;
use hookvisor::plugin::sandbox::Sandboxes;
use hookvisor::plugin::spawner::Spawner;
use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::plugin_client::PluginClient;
use hookvisor_proto::v1::{
    BeforeToolCallRequest, DescribeRequest, Outcome, ToolCallContext, ToolCallRequest,
};
use hookvisor_proto::{MAGIC_COOKIE, PROTOCOL_VERSION, env};
use prost::Message;
use serde_json::{Map, Value, json};
use tokio::process::{Child, Command};
use tokio::task::JoinSet;
use tonic::transport::Channel;

use crate::demo::{TempDir, connect_channel, toml_string};

mod go;
mod measure;
pub(crate) mod relay;
mod remote;
mod sdks;
mod supervisor;
mod tracing;
mod upgrade;

use crate::output::out;
use go::GoPlugin;
use measure::*;
use supervisor::*;

/// What to run (the command line of `hookvisor bench`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Fewer calls and shorter windows: a smoke run, not figures to quote.
    #[arg(long)]
    pub quick: bool,
    /// The size of every call's params JSON, in bytes (64 to 262144, the contract's limit).
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(64..=262_144))]
    pub params_bytes: u32,
    /// The plugin counts to run through the supervisor (one trusted policy among them).
    #[arg(long, value_delimiter = ',', default_value = "1,4,8")]
    pub plugins: Vec<usize>,
    /// Where goplugin-host and goplugin-plugin are (default: next to hookvisor).
    #[arg(long)]
    pub goplugin: Option<PathBuf>,
    /// `[supervisor] worker_threads` for the supervisors it starts (default: the default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub worker_threads: Option<u32>,
    /// Only the SDKs against their bare servers (`sdk_*`, `bare_*`): about a minute.
    #[arg(long)]
    pub sdks_only: bool,
    /// Only an upgrade in place against a plain restart, under traffic (`upgrade_*`,
    /// `restart_*`: the longest wait for a verdict, calls refused): about 20 s.
    #[arg(long)]
    pub upgrade: bool,
    /// Only a remote plugin over TCP with mutual TLS against the same plugin spawned locally
    /// (`remote_*`): about 10 s.
    #[arg(long)]
    pub remote: bool,
    /// Only tracing off against tracing on to a local OTLP sink, N = 4 (`tracing_*`: CPU per
    /// verdict, latency): about 15 s.
    #[arg(long)]
    pub tracing: bool,
}

/// How many calls and how long each part runs.
struct Plan {
    warmup: usize,
    sequential: usize,
    window: Duration,
    blocks: usize,
    block: usize,
    crashes: usize,
    spawns: usize,
    /// Calls made one at a time with [`SPACED_GAP`] between them (`spaced_*`).
    spaced: usize,
}

/// The gap before each `spaced_*` call: an agent's tool calls are seconds apart, and every
/// process on the path pays to wake from idle; those figures measure that, the others do not.
const SPACED_GAP: Duration = Duration::from_millis(100);

impl Plan {
    fn of(options: &Options) -> Plan {
        if options.quick {
            Plan {
                warmup: 50,
                sequential: 300,
                window: Duration::from_millis(300),
                blocks: 2,
                block: 100,
                crashes: 2,
                spawns: 2,
                spaced: 10,
            }
        } else {
            Plan {
                warmup: 300,
                sequential: 3000,
                window: Duration::from_secs(2),
                blocks: 10,
                block: 200,
                crashes: 5,
                spawns: 10,
                spaced: 100,
            }
        }
    }
}

/// The figures, by the names the JSON uses.
#[derive(Default)]
struct Figures(BTreeMap<String, Value>);

impl Figures {
    fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.0.insert(key.to_owned(), value.into());
    }

    fn get(&self, key: &str) -> Option<f64> {
        self.0.get(key).and_then(Value::as_f64)
    }

    /// `key` = `a / b`, when both exist.
    fn ratio(&mut self, key: &str, a: &str, b: &str) {
        if let (Some(a), Some(b)) = (self.get(a), self.get(b))
            && b > 0.0
        {
            self.set(key, round2(a / b));
        }
    }
}

/// What the parts of a run measure with: where the binaries are, the `allow-all` plugin, the
/// run's directory, the request, how many calls, the options.
#[derive(Clone, Copy)]
struct Run<'a> {
    bin_dir: &'a Path,
    plugin: &'a Path,
    dir: &'a Path,
    request: &'a ToolCallRequest,
    plan: &'a Plan,
    options: &'a Options,
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// Runs the benchmark and prints its figures.
pub(crate) async fn run(options: Options) -> anyhow::Result<()> {
    let bin_dir = std::env::current_exe()
        .context("cannot find the hookvisor executable")?
        .parent()
        .map(Path::to_path_buf)
        .context("the hookvisor executable has no directory")?;
    let plugin = bin_dir.join("allow-all");
    if !plugin.is_file() {
        bail!(
            "the benchmark needs the allow-all example plugin next to hookvisor ({} is missing); \
             build it with `cargo build --release -p hookvisor-examples` (or run `make bench`)",
            plugin.display()
        );
    }
    let dir = TempDir::new()?;
    let plan = Plan::of(&options);
    let request = tool_call(options.params_bytes as usize);
    let mut figures = Figures::default();
    figures.set("params_bytes", options.params_bytes);
    if let Some(n) = options.worker_threads {
        figures.set("worker_threads", n);
    }
    figures.set("request_bytes", request.encoded_len());
    let progress = |what: &str| {
        if !options.json {
            eprintln!("bench: {what}");
        }
    };

    let run = Run {
        bin_dir: &bin_dir,
        plugin: &plugin,
        dir: dir.path(),
        request: &request,
        plan: &plan,
        options: &options,
    };
    // The parts that run alone, each with its own figures and targets.
    if options.upgrade {
        progress("upgrade: upgrades in place and plain restarts under traffic, alternating");
        upgrade::upgrade(&bin_dir, dir.path(), &request, &options, &mut figures).await?;
        return print(&options, &figures, |_| false);
    }
    if options.tracing {
        progress("tracing: N = 4 with [tracing] off and on (to a local OTLP sink), alternating");
        tracing::tracing(&run, &mut figures).await?;
        return print(&options, &figures, |key| key.starts_with("tracing_"));
    }
    if options.remote {
        progress("remote: a policy over TCP with mutual TLS against the same one spawned");
        remote::remote(&run, &mut figures).await?;
        return print(&options, &figures, |_| false);
    }
    let (languages, missing) = languages(&bin_dir, &plugin);
    if !missing.is_empty() {
        figures.set("languages_missing", missing);
    }
    if !options.sdks_only {
        progress("direct: one plugin called on its own socket");
        direct(&plugin, dir.path(), &request, &plan, &mut figures).await?;
        let names: Vec<&str> = languages.iter().map(|(name, _)| *name).collect();
        progress(&format!(
            "spawn: start-to-ready and one call of a trivial plugin in {}",
            names.join(", ")
        ));
        spawn_ready(&languages, dir.path(), &request, &plan, &mut figures).await?;
    }
    progress("sdks: each SDK's trivial plugin against a bare server on its gRPC library");
    sdks::sdks(
        &bin_dir,
        &languages,
        dir.path(),
        &request,
        &plan,
        &mut figures,
    )
    .await?;
    if options.sdks_only {
        return print(&options, &figures, |key| key.starts_with("sdk_ratio_"));
    }
    progress("sandbox: the Rust plugin's spawn-to-ready and its calls, sandbox on and off");
    sandbox_spawn(&plugin, dir.path(), &plan, &mut figures).await?;
    sandbox_calls(&run, &mut figures).await?;

    let goplugin = GoPlugin::start(options.goplugin.as_deref().unwrap_or(&bin_dir)).await;
    for &n in &options.plugins {
        progress(&format!("via: host → supervisor → {n} plugin(s)"));
        let supervisor = Supervisor::start(
            &bin_dir,
            dir.path(),
            &format!("n{n}"),
            &via_config(&plugin, n),
            &options,
        )
        .await?;
        let go = if n == 1 { goplugin.as_ref().ok() } else { None };
        via(&supervisor, n, &request, &plan, go, &mut figures).await?;
        supervisor.stop().await;
    }
    if let Err(why) = &goplugin {
        figures.set("goplugin_missing", why.clone());
    }
    progress("remote: a policy over TCP with mutual TLS against the same one spawned");
    remote::remote(&run, &mut figures).await?;
    relay::floor(&run, &mut figures).await?;

    progress("failfast: a required plugin that is down");
    let down = Supervisor::start(&bin_dir, dir.path(), "down", &down_config(), &options).await?;
    let samples = sequential(
        &down.client().await?,
        &request,
        plan.sequential,
        Some(Outcome::Block),
    )
    .await?;
    figures.set("failfast_p50_us", micros(percentile(&samples, 0.5)));
    figures.set("failfast_p99_us", micros(percentile(&samples, 0.99)));
    down.stop().await;

    progress("crash: SIGKILL of a plugin during a call, to the block verdict");
    let crash = Supervisor::start(
        &bin_dir,
        dir.path(),
        "crash",
        &crash_config(&plugin),
        &options,
    )
    .await?;
    crash_to_block(&crash, &plan, &mut figures).await?;
    crash.stop().await;

    figures.ratio("ratio_p50_n4", "n4_p50_us", "direct_p50_us");
    figures.ratio(
        "ratio_spaced_n1",
        "spaced_n1_p50_us",
        "spaced_direct_p50_us",
    );
    figures.ratio(
        "ratio_spaced_n4",
        "spaced_n4_p50_us",
        "spaced_direct_p50_us",
    );
    figures.ratio("ratio_p99_n4", "n4_p99_us", "direct_p99_us");
    figures.ratio("ratio_rps_n4", "n4_rps", "direct_rps");
    figures.ratio(
        "cpu_ratio_n4",
        "n4_cpu_us_per_verdict",
        "direct_cpu_us_per_call",
    );
    figures.ratio("ratio_n1_goplugin_p50", "n1_p50_us", "goplugin_p50_us");
    figures.ratio(
        "ratio_sandbox_n1_p50",
        "sandbox_on_n1_p50_us",
        "sandbox_off_n1_p50_us",
    );

    print(&options, &figures, |_| true)
}

/// A `ToolCallRequest` whose params JSON is `bytes` long (at least about 60).
fn tool_call(bytes: usize) -> ToolCallRequest {
    let base = json!({"command": "ls -la /tmp", "pad": ""}).to_string();
    let pad = "x".repeat(bytes.saturating_sub(base.len()));
    ToolCallRequest {
        tool_name: "exec".into(),
        params_json: json!({"command": "ls -la /tmp", "pad": pad}).to_string(),
        context: Some(context()),
        session_metadata: Default::default(),
        dispatch: false,
    }
}

fn context() -> ToolCallContext {
    ToolCallContext {
        agent_id: "main".into(),
        session_key: "agent:main:bench".into(),
        workspace_dir: "/home/agent/project".into(),
        ..Default::default()
    }
}

/// The same call as the supervisor forwards it to a plugin.
fn plugin_call(request: &ToolCallRequest) -> BeforeToolCallRequest {
    BeforeToolCallRequest {
        tool_name: request.tool_name.clone(),
        params_json: request.params_json.clone(),
        context: request.context.clone(),
        session_metadata_json: String::new(),
        deadline_ms: 5000,
    }
}

// ---------------------------------------------------------------------------------------------
// direct and spawn

/// How to start a plugin: its program, arguments and environment.
#[derive(Debug, Clone)]
struct Launch {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Launch {
    fn binary(program: &Path) -> Launch {
        Launch {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
        }
    }
}

/// A trivial plugin ("no opinion" for ordinary tools) in each language the repository has,
/// built: the Rust `allow-all`, and the SDKs' `misbehave` fixtures in Python, TypeScript and Go
/// (`make sdks` builds them). The second list names the languages not found, and why.
fn languages(bin_dir: &Path, rust: &Path) -> (Vec<(&'static str, Launch)>, Vec<String>) {
    let mut found = vec![("rust", Launch::binary(rust))];
    let mut missing = Vec::new();
    // target/<profile>/hookvisor: the repository is two levels up.
    let repo = bin_dir.parent().and_then(Path::parent).unwrap_or(bin_dir);
    let mut add = |name: &'static str, launch: Option<Launch>, needs: &str| match launch {
        Some(launch) => found.push((name, launch)),
        None => missing.push(format!("{name}: {needs} (make sdks)")),
    };
    let python = repo.join(".venv/bin/python");
    let script = repo.join("plugin-sdk/python/tests/fixtures/misbehave.py");
    add(
        "python",
        (python.is_file() && script.is_file()).then(|| Launch {
            program: python,
            args: vec![script.display().to_string()],
            env: Vec::new(),
        }),
        "needs .venv with the Python SDK",
    );
    let node = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("node"))
            .find(|candidate| candidate.is_file())
    });
    let script = repo.join("plugin-sdk/typescript/dist/test/fixtures/misbehave.js");
    add(
        "typescript",
        node.filter(|_| script.is_file()).map(|node| Launch {
            program: node,
            args: vec![script.display().to_string()],
            env: Vec::new(),
        }),
        "needs node and the built TypeScript SDK",
    );
    let go = repo.join("target/go/misbehave");
    add(
        "go",
        go.is_file().then(|| Launch::binary(&go)),
        "needs target/go/misbehave",
    );
    (found, missing)
}

/// One plugin started by hand, as the supervisor would start it.
struct Plugin {
    child: Child,
    pid: i32,
    socket: PathBuf,
}

impl Plugin {
    async fn start(launch: &Launch, socket: &Path) -> anyhow::Result<(Plugin, Duration)> {
        let program = &launch.program;
        let _ = std::fs::remove_file(socket);
        let started = Instant::now();
        let child = Command::new(program)
            .args(&launch.args)
            .env_clear()
            .envs(launch.env.iter().map(|(k, v)| (k, v)))
            .env(env::PLUGIN_SOCKET, socket)
            .env(env::PLUGIN_NAME, "direct")
            .env(env::PROTOCOL_VERSION, PROTOCOL_VERSION.to_string())
            .env(env::MAGIC_COOKIE, MAGIC_COOKIE)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", program.display()))?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let deadline = started + Duration::from_secs(10);
        loop {
            if let Ok(channel) = connect_channel(socket).await {
                let mut client = PluginClient::new(channel);
                let described = client
                    .describe(DescribeRequest {
                        protocol_version: PROTOCOL_VERSION,
                    })
                    .await;
                if described.is_ok() {
                    let ready = started.elapsed();
                    return Ok((
                        Plugin {
                            child,
                            pid,
                            socket: socket.to_path_buf(),
                        },
                        ready,
                    ));
                }
            }
            if Instant::now() > deadline {
                bail!("{} did not become ready within 10 s", program.display());
            }
            tokio::time::sleep(Duration::from_micros(500)).await;
        }
    }

    async fn client(&self) -> anyhow::Result<PluginClient<Channel>> {
        Ok(PluginClient::new(connect_channel(&self.socket).await?))
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
        let _ = std::fs::remove_file(&self.socket);
    }
}

async fn direct(
    program: &Path,
    dir: &Path,
    request: &ToolCallRequest,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let (plugin, _) = Plugin::start(&Launch::binary(program), &dir.join("direct.sock")).await?;
    let call = plugin_call(request);
    let client = plugin.client().await?;
    let one = move |mut client: PluginClient<Channel>| {
        let call = call.clone();
        async move { client.before_tool_call(call).await.map(|_| ()) }
    };
    for _ in 0..plan.warmup {
        one(client.clone()).await?;
    }
    let mut samples = Vec::with_capacity(plan.sequential);
    for _ in 0..plan.sequential {
        let started = Instant::now();
        one(client.clone()).await?;
        samples.push(started.elapsed());
    }
    figures.set("direct_p50_us", micros(percentile(&samples, 0.5)));
    figures.set("direct_p99_us", micros(percentile(&samples, 0.99)));
    let mut spaced = Vec::with_capacity(plan.spaced);
    for _ in 0..plan.spaced {
        tokio::time::sleep(SPACED_GAP).await;
        let started = Instant::now();
        one(client.clone()).await?;
        spaced.push(started.elapsed());
    }
    figures.set("spaced_direct_p50_us", micros(percentile(&spaced, 0.5)));
    figures.set("spaced_direct_p99_us", micros(percentile(&spaced, 0.99)));

    let clients = clients(16, || plugin.client()).await?;
    let cpu_before = cpu_time(plugin.pid);
    let load = throughput(16, plan.window, &clients, one).await;
    let cpu = cpu_time(plugin.pid).saturating_sub(cpu_before);
    figures.set("direct_rps", load.rps().round());
    if load.ok > 0 {
        figures.set(
            "direct_cpu_us_per_call",
            round2(cpu.as_secs_f64() * 1e6 / load.ok as f64),
        );
    }
    plugin.stop().await;
    Ok(())
}

/// For each language: start-to-ready (spawn to `Describe` answered, median of `plan.spawns`),
/// and one sequential call's latency to a trivial plugin, measured the same way for all.
async fn spawn_ready(
    languages: &[(&'static str, Launch)],
    dir: &Path,
    request: &ToolCallRequest,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let (mut ready_ms, mut p50, mut p99) = (Map::new(), Map::new(), Map::new());
    for (name, launch) in languages {
        let mut times = Vec::new();
        for _ in 0..plan.spawns {
            let (plugin, ready) = Plugin::start(launch, &dir.join("spawn.sock")).await?;
            times.push(ready);
            plugin.stop().await;
        }
        ready_ms.insert(
            (*name).into(),
            json!(round2(percentile(&times, 0.5).as_secs_f64() * 1e3)),
        );
        let (plugin, _) = Plugin::start(launch, &dir.join("call.sock")).await?;
        let mut client = plugin.client().await?;
        let call = plugin_call(request);
        for _ in 0..plan.warmup {
            client.before_tool_call(call.clone()).await?;
        }
        let mut samples = Vec::with_capacity(plan.sequential);
        for _ in 0..plan.sequential {
            let started = Instant::now();
            client.before_tool_call(call.clone()).await?;
            samples.push(started.elapsed());
        }
        p50.insert((*name).into(), json!(micros(percentile(&samples, 0.5))));
        p99.insert((*name).into(), json!(micros(percentile(&samples, 0.99))));
        plugin.stop().await;
    }
    figures.set("spawn_ready_ms", Value::Object(ready_ms));
    figures.set("call_p50_us", Value::Object(p50));
    figures.set("call_p99_us", Value::Object(p99));
    Ok(())
}

/// Spawn-to-ready of the Rust plugin through hookvisor's own spawner and reaper, the sandbox on
/// and off in turn (placing its directories and uid included), median of `plan.spawns` each.
/// Runs while the benchmark has no other child: the spawner's sweep kills any child of this
/// process that is not a reaper, and ends only after the spawner is dropped.
async fn sandbox_spawn(
    program: &Path,
    dir: &Path,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let spawner = Spawner::start(tokio::runtime::Handle::current())?;
    let supervisor = SupervisorConfig {
        runtime_dir: dir.join("sandbox.run"),
        state_dir: dir.join("sandbox.state"),
        ..SupervisorConfig::default()
    };
    hookvisor::files::layout::prepare_runtime_dir(&supervisor.runtime_dir)?;
    let sandboxes = Sandboxes::of(&supervisor, dir);
    let mut times: [Vec<Duration>; 2] = Default::default();
    for _ in 0..plan.spawns {
        for (i, enabled) in [true, false].into_iter().enumerate() {
            let config = PluginConfig {
                sandbox: PluginSandbox {
                    enabled,
                    ..PluginSandbox::default()
                },
                ..PluginConfig::new(if enabled { "on" } else { "off" }, program.to_path_buf())
            };
            let started = Instant::now();
            let placement = sandboxes.place(&config)?;
            let socket = socket_in(&placement.socket_dir, 1);
            let mut tasks = JoinSet::new();
            let process = Process::spawn(&spawner, &config, &socket, dir, &placement, &mut tasks)
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let ready = process.handshake(&socket, Duration::from_secs(10)).await;
            times[i].push(started.elapsed());
            process.stop(Duration::ZERO).await;
            tasks.shutdown().await;
            let _ = std::fs::remove_file(&socket);
            ready.map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    drop(spawner);
    // The sweep notices the spawner is gone within its interval (1 s).
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let ms = |samples: &[Duration]| json!(round2(percentile(samples, 0.5).as_secs_f64() * 1e3));
    figures.set(
        "sandbox_spawn_ready_ms",
        json!({"on": ms(&times[0]), "off": ms(&times[1])}),
    );
    Ok(())
}

/// The call path with one policy plugin, sandboxed and not: two supervisors, in blocks that
/// alternate so that outside load hits both alike.
async fn sandbox_calls(run: &Run<'_>, figures: &mut Figures) -> anyhow::Result<()> {
    let Run {
        bin_dir,
        plugin: program,
        dir,
        request,
        plan,
        options,
    } = *run;
    let on = via_config(program, 1);
    let off = format!("{on}[plugin.sandbox]\nenabled = false\n");
    let on = Supervisor::start(bin_dir, dir, "sandbox-on", &on, options).await?;
    let off = Supervisor::start(bin_dir, dir, "sandbox-off", &off, options).await?;
    let clients = [on.client().await?, off.client().await?];
    let mut samples: [Vec<Duration>; 2] = Default::default();
    for client in &clients {
        sequential(client, request, plan.warmup, Some(Outcome::Allow)).await?;
    }
    for _ in 0..plan.blocks {
        for (i, client) in clients.iter().enumerate() {
            samples[i].extend(sequential(client, request, plan.block, Some(Outcome::Allow)).await?);
        }
    }
    for (i, label) in ["on", "off"].into_iter().enumerate() {
        figures.set(
            &format!("sandbox_{label}_n1_p50_us"),
            micros(percentile(&samples[i], 0.5)),
        );
        figures.set(
            &format!("sandbox_{label}_n1_p99_us"),
            micros(percentile(&samples[i], 0.99)),
        );
    }
    on.stop().await;
    off.stop().await;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the table

/// Targets of the performance issue: (figure, comparison, bound).
const TARGETS: [(&str, &str, f64); 19] = [
    ("ratio_p50_n4", "≤", 4.5),
    ("ratio_p99_n4", "≤", 4.0),
    ("ratio_rps_n4", "≥", 0.25),
    ("cpu_ratio_n4", "≤", 5.0),
    ("failfast_p99_us", "≤", 200.0),
    ("crash_to_block_ms", "≤", 5.0),
    ("spawn_ready_ms.rust", "≤", 50.0),
    ("rss_mib_n8", "≤", 32.0),
    ("ratio_n1_goplugin_p50", "≤", 1.5),
    ("ratio_spaced_n1", "≤", 1.4),
    ("sdk_ratio_rust_p50", "≤", 1.15),
    ("sdk_ratio_rust_p99", "≤", 1.15),
    ("sdk_ratio_go_p50", "≤", 1.15),
    ("sdk_ratio_go_p99", "≤", 1.15),
    ("sdk_ratio_python_p50", "≤", 1.15),
    ("sdk_ratio_python_p99", "≤", 1.15),
    ("sdk_ratio_typescript_p50", "≤", 1.15),
    ("sdk_ratio_typescript_p99", "≤", 1.15),
    ("tracing_cpu_us_per_verdict_added", "≤", 10.0),
];

/// The figures, as one JSON object or a table, and then the targets `shown` picks with
/// whether each is met (a full run shows them all).
fn print(options: &Options, figures: &Figures, shown: impl Fn(&str) -> bool) -> anyhow::Result<()> {
    if options.json {
        out!("{}", serde_json::to_string(&figures.0)?);
        return Ok(());
    }
    out!("{:<36} {:>12}", "figure", "value");
    for (key, value) in &figures.0 {
        out!("{key:<36} {:>12}", value.to_string());
    }
    let targets: Vec<_> = TARGETS
        .iter()
        .chain(relay::TARGETS)
        .filter(|t| shown(t.0))
        .collect();
    if targets.is_empty() {
        return Ok(());
    }
    out!("");
    out!("{:<36} {:>12}  {:<10} met", "target", "value", "bound");
    for &&(key, op, bound) in &targets {
        let value = match key.split_once('.') {
            Some((object, field)) => figures
                .0
                .get(object)
                .and_then(|o| o.get(field))
                .and_then(Value::as_f64),
            None => figures.get(key),
        };
        let (shown, met) = match value {
            Some(v) => {
                let met = if op == "≤" { v <= bound } else { v >= bound };
                (v.to_string(), if met { "yes" } else { "NO" })
            }
            None => ("-".to_owned(), "not measured"),
        };
        out!("{key:<36} {shown:>12}  {op} {bound:<8} {met}");
    }
    Ok(())
}
