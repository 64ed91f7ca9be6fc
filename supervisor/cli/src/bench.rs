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
use hookvisor::config::{PluginConfig, PluginSandbox, SupervisorConfig, socket_in};
use hookvisor::plugin::process::Process;
use hookvisor::sandbox::Sandboxes;
use hookvisor::spawner::Spawner;
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
use crate::output::out;

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
}

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

    progress("direct: one plugin called on its own socket");
    direct(&plugin, dir.path(), &request, &plan, &mut figures).await?;
    let (languages, missing) = languages(&bin_dir, &plugin);
    let names: Vec<&str> = languages.iter().map(|(name, _)| *name).collect();
    progress(&format!(
        "spawn: start-to-ready and one call of a trivial plugin in {}",
        names.join(", ")
    ));
    spawn_ready(&languages, dir.path(), &request, &plan, &mut figures).await?;
    if !missing.is_empty() {
        figures.set("languages_missing", missing);
    }
    progress("sandbox: the Rust plugin's spawn-to-ready and its calls, sandbox on and off");
    sandbox_spawn(&plugin, dir.path(), &plan, &mut figures).await?;
    sandbox_calls(
        &bin_dir,
        &plugin,
        dir.path(),
        &request,
        &plan,
        &options,
        &mut figures,
    )
    .await?;

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

    if options.json {
        out!("{}", serde_json::to_string(&figures.0)?);
    } else {
        print_table(&figures);
    }
    Ok(())
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
    hookvisor::layout::prepare_runtime_dir(&supervisor.runtime_dir)?;
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
async fn sandbox_calls(
    bin_dir: &Path,
    program: &Path,
    dir: &Path,
    request: &ToolCallRequest,
    plan: &Plan,
    options: &Options,
    figures: &mut Figures,
) -> anyhow::Result<()> {
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
// the supervisor

/// `hookvisor serve` started as a child with a generated configuration.
struct Supervisor {
    child: Child,
    pid: i32,
    socket: PathBuf,
    log: PathBuf,
}

impl Supervisor {
    async fn start(
        bin_dir: &Path,
        dir: &Path,
        name: &str,
        plugins: &str,
        options: &Options,
    ) -> anyhow::Result<Supervisor> {
        let socket = dir.join(format!("{name}.sock"));
        let runtime_dir = dir.join(format!("{name}.run"));
        let state_dir = dir.join(format!("{name}.state"));
        let config = dir.join(format!("{name}.toml"));
        let log = dir.join(format!("{name}.log"));
        let threads = options
            .worker_threads
            .map(|n| format!("worker_threads = {n}\n"))
            .unwrap_or_default();
        let text = format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\nstate_dir = {}\n{threads}\n{plugins}",
            toml_string(&socket),
            toml_string(&runtime_dir),
            toml_string(&state_dir)
        );
        std::fs::write(&config, text).context("writing the bench configuration")?;
        let child = Command::new(bin_dir.join("hookvisor"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("HOOKVISOR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start hookvisor serve")?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let supervisor = Supervisor {
            child,
            pid,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while supervisor.client().await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "hookvisor serve did not start serving within 30 s: {}",
                    std::fs::read_to_string(&supervisor.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(supervisor)
    }

    async fn client(&self) -> anyhow::Result<HooksClient<Channel>> {
        Ok(HooksClient::new(connect_channel(&self.socket).await?))
    }

    async fn stop(mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }

    /// The pid of the plugin process of the instance running now: the child of the supervisor's
    /// child (its reaper).
    fn plugin_pid(&self) -> Option<i32> {
        children(self.pid).into_iter().flat_map(children).next()
    }
}

fn plugin_table(program: &Path, name: &str, stage: &str, extra: &str) -> String {
    let trusted = if stage == "policy" {
        "trusted = true\n"
    } else {
        ""
    };
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = {}\n{trusted}{extra}env = {{ HOOKVISOR_ALLOW_ALL_STAGE = \"{stage}\" }}\n\n",
        toml_string(program)
    )
}

/// One trusted policy and `n - 1` hooks.
fn via_config(program: &Path, n: usize) -> String {
    let mut text = plugin_table(program, "policy", "policy", "");
    for i in 1..n {
        text.push_str(&plugin_table(program, &format!("hook-{i}"), "hook", ""));
    }
    text
}

/// A required (trusted) plugin that never starts, and is not tried again while the benchmark
/// runs: "known to be down", so the figure is the fail-fast path itself, not restarts beside it.
/// (The lines before the first `[[plugin]]` belong to `[supervisor]`.)
fn down_config() -> String {
    let program = ["/bin/false", "/usr/bin/false"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/bin/false");
    format!(
        "restart_delay_ms = 600000\nrestart_delay_max_ms = 600000\n\n\
         [[plugin]]\nname = \"down\"\ncommand = \"{program}\"\ntrusted = true\n"
    )
}

/// A policy that answers the tool `slow` after a minute.
fn crash_config(program: &Path) -> String {
    format!(
        "[[plugin]]\nname = \"crashes\"\ncommand = {}\ntrusted = true\ntimeout_ms = 120000\n\
         env = {{ HOOKVISOR_ALLOW_ALL_STAGE = \"policy\", HOOKVISOR_ALLOW_ALL_SLOW_MS = \"60000\" }}\n",
        toml_string(program)
    )
}

async fn via(
    supervisor: &Supervisor,
    n: usize,
    request: &ToolCallRequest,
    plan: &Plan,
    goplugin: Option<&GoPlugin>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = supervisor.client().await?;
    sequential(&client, request, plan.warmup, Some(Outcome::Allow)).await?;
    let key = |what: &str| format!("n{n}_{what}");

    // Sequential latency; for N = 1 in blocks that alternate with go-plugin's, so that outside
    // load hits both alike.
    let mut samples = Vec::new();
    match goplugin {
        Some(go) => {
            let mut go_samples = Vec::new();
            go.run(plan.warmup, request.encoded_len())?;
            for _ in 0..plan.blocks {
                samples
                    .extend(sequential(&client, request, plan.block, Some(Outcome::Allow)).await?);
                go_samples.extend(go.run(plan.block, request.encoded_len())?);
            }
            figures.set("goplugin_p50_us", micros(percentile(&go_samples, 0.5)));
            figures.set("goplugin_p99_us", micros(percentile(&go_samples, 0.99)));
        }
        None => {
            samples = sequential(&client, request, plan.sequential, Some(Outcome::Allow)).await?
        }
    }
    figures.set(&key("p50_us"), micros(percentile(&samples, 0.5)));
    figures.set(&key("p99_us"), micros(percentile(&samples, 0.99)));
    figures.set(&key("p999_us"), micros(percentile(&samples, 0.999)));

    let owned = request.clone();
    let one = move |mut client: HooksClient<Channel>| {
        let request = owned.clone();
        async move {
            let verdict = client.before_tool_call(request).await?.into_inner();
            if verdict.outcome() == Outcome::Allow {
                Ok(())
            } else {
                Err(tonic::Status::internal(format!(
                    "not allowed: {}",
                    verdict.block_reason
                )))
            }
        }
    };
    for concurrency in [16usize, 64] {
        // At most 16 calls per connection (the per-connection limit is 64 by default).
        let clients = clients(concurrency.div_ceil(16), || supervisor.client()).await?;
        let rss = RssSampler::start(supervisor.pid);
        let cpu_before = cpu_time(supervisor.pid);
        let load = throughput(concurrency, plan.window, &clients, one.clone()).await;
        let cpu = cpu_time(supervisor.pid).saturating_sub(cpu_before);
        let peak = rss.stop().await;
        let suffix = if concurrency == 16 {
            String::new()
        } else {
            format!("_c{concurrency}")
        };
        figures.set(&key(&format!("rps{suffix}")), load.rps().round());
        if load.errors > 0 {
            figures.set(&key(&format!("errors{suffix}")), load.errors);
        }
        if concurrency == 16 && load.ok > 0 {
            figures.set(
                &key("cpu_us_per_verdict"),
                round2(cpu.as_secs_f64() * 1e6 / load.ok as f64),
            );
        }
        if n == 8 && concurrency == 64 {
            figures.set("rss_mib_n8", round2(peak as f64 / 1024.0));
        }
    }
    Ok(())
}

async fn crash_to_block(
    supervisor: &Supervisor,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = supervisor.client().await?;
    let fast = tool_call(64);
    let mut slow = fast.clone();
    slow.tool_name = "slow".into();
    let mut times = Vec::new();
    for _ in 0..plan.crashes {
        // Ready: a fast call is allowed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let verdict = client
                .clone()
                .before_tool_call(fast.clone())
                .await?
                .into_inner();
            if verdict.outcome() == Outcome::Allow {
                break;
            }
            if Instant::now() > deadline {
                bail!("the crash plugin never became ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(pid) = supervisor.plugin_pid() else {
            bail!("cannot find the crash plugin's process");
        };
        let mut in_flight = client.clone();
        let slow = slow.clone();
        let call = tokio::spawn(async move {
            let verdict = in_flight.before_tool_call(slow).await;
            (Instant::now(), verdict)
        });
        // Setup, not synchronisation: give the call time to reach the plugin.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let (answered, verdict) = call.await?;
        let verdict = verdict?.into_inner();
        if verdict.outcome() != Outcome::Block {
            bail!("a call to a killed plugin was not blocked: {verdict:?}");
        }
        times.push(answered.saturating_duration_since(killed));
    }
    figures.set(
        "crash_to_block_ms",
        round2(percentile(&times, 0.5).as_secs_f64() * 1e3),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// measuring

/// `n` calls one after another; each verdict must be `expect` (when given).
async fn sequential(
    client: &HooksClient<Channel>,
    request: &ToolCallRequest,
    n: usize,
    expect: Option<Outcome>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    let mut client = client.clone();
    for _ in 0..n {
        let started = Instant::now();
        let verdict = client.before_tool_call(request.clone()).await?.into_inner();
        samples.push(started.elapsed());
        if let Some(expect) = expect
            && verdict.outcome() != expect
        {
            bail!("expected {expect:?}, got {verdict:?}");
        }
    }
    Ok(samples)
}

async fn clients<C, F, Fut>(n: usize, connect: F) -> anyhow::Result<Vec<C>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<C>>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect().await?);
    }
    Ok(out)
}

struct Load {
    ok: u64,
    errors: u64,
    elapsed: Duration,
}

impl Load {
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `concurrency` tasks calling `one` in a loop for `window`, spread over `clients`.
async fn throughput<C, F, Fut>(concurrency: usize, window: Duration, clients: &[C], one: F) -> Load
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (stop, ok, errors, one) = (stop.clone(), ok.clone(), errors.clone(), one.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match one(client.clone()).await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    Load {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn micros(d: Duration) -> f64 {
    round2(d.as_secs_f64() * 1e6)
}

/// The CPU time of every thread of `pid` so far.
fn cpu_time(pid: i32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Samples a process's resident memory every 50 ms; `stop` gives the peak in KiB.
struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    fn start(pid: i32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak.max(rss_kib(pid))
        });
        RssSampler { stop, task }
    }

    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}

// ---------------------------------------------------------------------------------------------
// go-plugin

/// The go-plugin host of `bench/goplugin`, driven over its stdin: `run N SIZE` answers with the
/// latencies of N sequential calls through go-plugin.
struct GoPlugin {
    child: std::sync::Mutex<(std::process::Child, BufReader<std::process::ChildStdout>)>,
}

impl GoPlugin {
    async fn start(dir: &Path) -> Result<GoPlugin, String> {
        let host = dir.join("goplugin-host");
        let plugin = dir.join("goplugin-plugin");
        if !host.is_file() || !plugin.is_file() {
            return Err(format!(
                "not built: run `bench/goplugin/build.sh {}` (needs Go and the Go module proxy)",
                dir.display()
            ));
        }
        let mut child = std::process::Command::new(&host)
            .arg("-plugin")
            .arg(&plugin)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", host.display()))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let go = GoPlugin {
            child: std::sync::Mutex::new((child, BufReader::new(stdout))),
        };
        let answer = go.ask("ping")?;
        if answer.get("ok") != Some(&Value::Bool(true)) {
            return Err(format!("goplugin-host answered {answer}"));
        }
        Ok(go)
    }

    fn ask(&self, command: &str) -> Result<Value, String> {
        let mut guard = self.child.lock().map_err(|_| "poisoned")?;
        let (child, stdout) = &mut *guard;
        let stdin = child.stdin.as_mut().ok_or("no stdin")?;
        writeln!(stdin, "{command}").map_err(|e| e.to_string())?;
        stdin.flush().map_err(|e| e.to_string())?;
        let mut line = String::new();
        stdout.read_line(&mut line).map_err(|e| e.to_string())?;
        serde_json::from_str(&line).map_err(|e| format!("goplugin-host said {line:?}: {e}"))
    }

    /// `n` sequential go-plugin calls with a `size`-byte payload.
    fn run(&self, n: usize, size: usize) -> anyhow::Result<Vec<Duration>> {
        let answer = self
            .ask(&format!("run {n} {size}"))
            .map_err(anyhow::Error::msg)?;
        let Some(ns) = answer.get("ns").and_then(Value::as_array) else {
            bail!("goplugin-host answered {answer}");
        };
        Ok(ns
            .iter()
            .filter_map(Value::as_u64)
            .map(Duration::from_nanos)
            .collect())
    }
}

impl Drop for GoPlugin {
    fn drop(&mut self) {
        if let Ok(mut guard) = self.child.lock() {
            let (child, _) = &mut *guard;
            if let Some(stdin) = child.stdin.as_mut() {
                let _ = writeln!(stdin, "quit");
            }
            drop(child.stdin.take());
            let _ = child.wait();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// the table

/// Targets of the performance issue: (figure, comparison, bound).
const TARGETS: [(&str, &str, f64); 9] = [
    ("ratio_p50_n4", "≤", 4.5),
    ("ratio_p99_n4", "≤", 4.0),
    ("ratio_rps_n4", "≥", 0.25),
    ("cpu_ratio_n4", "≤", 5.0),
    ("failfast_p99_us", "≤", 200.0),
    ("crash_to_block_ms", "≤", 5.0),
    ("spawn_ready_ms.rust", "≤", 50.0),
    ("rss_mib_n8", "≤", 32.0),
    ("ratio_n1_goplugin_p50", "≤", 1.5),
];

fn print_table(figures: &Figures) {
    out!("{:<28} {:>12}", "figure", "value");
    for (key, value) in &figures.0 {
        out!("{key:<28} {:>12}", value.to_string());
    }
    out!("");
    out!("{:<28} {:>12}  {:<10} met", "target", "value", "bound");
    for (key, op, bound) in TARGETS {
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
        out!("{key:<28} {shown:>12}  {op} {bound:<8} {met}");
    }
}
