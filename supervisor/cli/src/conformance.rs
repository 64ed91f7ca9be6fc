//! `hookvisor conformance`: runs a plugin command the way `hookvisor serve` would (cleared
//! environment, its own session behind a reaper, the same handshake and peer check, the same
//! checks of every answer) and checks the contract from outside, one line per check.
//!
//! The checks, in order (a check that needs a ready plugin is reported as failed when the plugin
//! never became ready):
//! - `cookie`: without `HOOKVISOR_MAGIC_COOKIE` the command exits with status 1 (§2.2);
//! - `ready`: it serves on its socket and answers `Describe` within the start timeout (§2.4);
//! - `describe`: protocol 1 and registrations `serve` would accept (policy only with `--trusted`);
//! - `health`: `grpc.health.v1.Health/Check` answers SERVING;
//! - for each registered hook, a battery of inputs (empty params, unicode, deep, wide and long
//!   params at the §8 limits, no context, full context and metadata), each answered in time with
//!   an OK status and an answer the supervisor accepts;
//! - `cancel`: calls cancelled at their deadline leave it running, healthy and answering;
//! - `sigterm`: it exits within the grace period after SIGTERM to its process group (§2.5);
//! - with `--cases FILE`, the author's own cases (`crate::cases`), after `cancel`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use hookvisor::decide::merge::{Failed, SessionAnswer, ToolAnswer};
use hookvisor::decide::routing;
use hookvisor::decide::stages::{session_answer, tool_answer};
use hookvisor::files::config::{PluginConfig, PluginSandbox, SupervisorConfig, socket_in};
use hookvisor::plugin::link;
use hookvisor::plugin::process::{self, Connected, Exit, Process, StartError};
use hookvisor::plugin::sandbox::{Placement, Sandboxes};
use hookvisor::plugin::spawner::Spawner;
use hookvisor_proto::limits::{MAX_DEPTH, MAX_KEYS, MAX_SERIALIZED_BYTES, MAX_STRING_BYTES};
use hookvisor_proto::v1::{
    Ack, BeforeSessionCreateRequest, BeforeToolCallRequest, Hook, HookRegistration, PluginInfo,
    Requester, SessionCreatedEvent, SessionDecision, Stage, ToolCallContext, ToolCallDecision,
};
use hookvisor_proto::{PROTOCOL_VERSION, env};
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::output::{escaped, out};

/// `hookvisor conformance [OPTIONS] -- COMMAND [ARGS]...`
#[derive(Debug, Args)]
pub(crate) struct Options {
    /// A variable for the plugin's environment, as `env` in its `[[plugin]]` table (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    env: Vec<(String, String)>,
    /// A variable passed through from this environment, as `inherit_env` (repeatable).
    #[arg(long = "inherit-env", value_name = "KEY")]
    inherit_env: Vec<String>,
    /// Run it as a trusted plugin: the policy stage is accepted.
    #[arg(long)]
    trusted: bool,
    /// The plugin's configured name (`HOOKVISOR_PLUGIN_NAME`, its metadata namespace).
    #[arg(long, default_value = "conformance", value_parser = parse_name)]
    name: String,
    /// Time it has to become ready, as `start_timeout_ms`.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..=600_000))]
    start_timeout_ms: u32,
    /// Time it has to exit after SIGTERM, as `stop_grace_ms`.
    #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(0..=600_000))]
    stop_grace_ms: u32,
    /// The deadline of each call; default: what the registration asks, else 5000 ms (§6).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=600_000))]
    timeout_ms: Option<u32>,
    /// A path the plugin may read, as `[plugin.sandbox] read` (repeatable): its installation.
    #[arg(long = "read", value_name = "PATH")]
    read: Vec<PathBuf>,
    /// A path the plugin may write, as `[plugin.sandbox] write` (repeatable).
    #[arg(long = "write", value_name = "PATH")]
    write: Vec<PathBuf>,
    /// Let it open network sockets, as `[plugin.sandbox] network = true`.
    #[arg(long)]
    network: bool,
    /// Run it without the sandbox, as `[plugin.sandbox] enabled = false`.
    #[arg(long)]
    no_sandbox: bool,
    /// The uids it may be given, as `[supervisor] plugin_uids` (when run as root).
    #[arg(long, value_name = "FIRST-LAST", value_parser = parse_uids)]
    plugin_uids: Option<(u32, u32)>,
    /// The author's own cases, run after the checks: JSON lines, each a request and the outcome,
    /// params or reason expected (docs/plugins.md, "Your own cases").
    #[arg(long, value_name = "FILE")]
    cases: Option<PathBuf>,
    /// The plugin's command and its arguments (a relative command is resolved against the
    /// current directory, which is also the plugin's working directory).
    #[arg(last = true, required = true, value_name = "COMMAND")]
    command: Vec<String>,
}

fn parse_env(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

fn parse_uids(text: &str) -> Result<(u32, u32), String> {
    text.split_once('-')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .filter(|(a, b)| 1000 <= *a && a <= b)
        .ok_or_else(|| format!("expected FIRST-LAST uids (at least 1000), got {text:?}"))
}

fn parse_name(text: &str) -> Result<String, String> {
    let valid = (1..=63).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if valid {
        Ok(text.to_owned())
    } else {
        Err("a plugin name is 1..63 characters of [a-z0-9-]".to_owned())
    }
}

/// The results so far, printed as they come. Details and reasons are escaped: they quote the
/// plugin (its name, version, tools, block reasons, error messages, stderr).
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
}

impl Report {
    fn pass(&mut self, check: &str, detail: impl AsRef<str>) {
        self.passed += 1;
        out!("pass  {check}: {}", escaped(detail.as_ref()));
    }

    fn fail(&mut self, check: &str, reason: impl AsRef<str>) {
        self.failed += 1;
        out!("FAIL  {check}: {}", escaped(reason.as_ref()));
    }

    fn record(&mut self, check: &str, result: Result<String, String>) -> bool {
        match result {
            Ok(detail) => {
                self.pass(check, detail);
                true
            }
            Err(reason) => {
                self.fail(check, reason);
                false
            }
        }
    }
}

/// Runs every check; the exit status is 0 only when all of them pass.
pub(crate) async fn run(options: Options) -> anyhow::Result<ExitCode> {
    let [program, args @ ..] = options.command.as_slice() else {
        anyhow::bail!("no plugin command given (after `--`)");
    };
    // A mistake in the cases file is reported before the plugin starts.
    let cases = match &options.cases {
        Some(path) => Some(crate::cases::load(path).map_err(|e| anyhow::anyhow!(e))?),
        None => None,
    };
    let workdir = std::env::current_dir()?;
    let command = workdir.join(program);
    let runtime = TempDir::new()?;
    let mut supervisor = SupervisorConfig {
        runtime_dir: runtime.path.join("run"),
        state_dir: runtime.path.join("state"),
        ..SupervisorConfig::default()
    };
    if let Some(uids) = options.plugin_uids {
        supervisor.plugin_uids = uids;
    }
    hookvisor::files::layout::prepare_runtime_dir(&supervisor.runtime_dir)?;
    let sandbox = PluginSandbox {
        enabled: !options.no_sandbox,
        read: absolute_all(&workdir, &options.read)?,
        write: absolute_all(&workdir, &options.write)?,
        network: options.network,
        ..PluginSandbox::default()
    };
    let config = PluginConfig {
        args: args.to_vec(),
        trusted: options.trusted,
        timeout_ms: options.timeout_ms,
        env: options.env.iter().cloned().collect::<BTreeMap<_, _>>(),
        inherit_env: options.inherit_env.clone(),
        sandbox,
        ..PluginConfig::new(&options.name, command)
    };
    let placement = Sandboxes::of(&supervisor, &workdir).place(&config)?;
    let spawner = Spawner::start(tokio::runtime::Handle::current())?;
    let mut tasks = JoinSet::new();
    let mut report = Report::default();
    let command_line = args
        .iter()
        .fold(config.command.display().to_string(), |mut s, a| {
            let _ = write!(s, " {a}");
            s
        });
    out!("hookvisor conformance: {}", escaped(&command_line));

    let cookie = check_cookie(&spawner, &config, &placement, &workdir, &options).await;
    report.record("cookie", cookie);

    let socket = socket_in(&placement.socket_dir, 1);
    let start_timeout = Duration::from_millis(options.start_timeout_ms.into());
    let started = Instant::now();
    let process = Process::spawn(&spawner, &config, &socket, &workdir, &placement, &mut tasks);
    let process = match process.await {
        Ok(process) => process,
        Err(e) => {
            report.fail("ready", e.to_string());
            return Ok(finish(report));
        }
    };
    let connected = match process.handshake(&socket, start_timeout).await {
        Ok(connected) => {
            report.pass(
                "ready",
                format!(
                    "served its socket and answered Describe in {} ms",
                    started.elapsed().as_millis()
                ),
            );
            connected
        }
        Err(StartError::Protocol(version)) => {
            report.pass("ready", "served its socket and answered Describe");
            report.fail(
                "describe",
                format!("answered protocol_version {version}, not {PROTOCOL_VERSION}"),
            );
            stop_and_check(&process, &options, &mut report).await;
            return Ok(finish(report));
        }
        Err(e) => {
            let tail = process.stderr_tail().await;
            let tail = if tail.is_empty() {
                String::new()
            } else {
                format!("; its last stderr lines: {}", tail.replace('\n', " | "))
            };
            report.fail("ready", format!("{e}{tail}"));
            stop_and_check(&process, &options, &mut report).await;
            return Ok(finish(report));
        }
    };

    let registrations = match describe_check(&config, &connected.info) {
        Ok((detail, registrations)) => {
            report.pass("describe", detail);
            registrations
        }
        Err(reason) => {
            report.fail("describe", reason);
            Vec::new()
        }
    };
    report.record("health", health(connected.channel.clone()).await);

    let target = Target {
        process: &process,
        connected: &connected,
        timeout: options.timeout_ms,
    };
    for registration in &registrations {
        battery(&target, registration, &mut report).await;
    }
    if let Some(first) = registrations.first() {
        let cancel = cancel_check(&target, first).await;
        report.record("cancel", cancel);
    } else {
        report.fail("cancel", "no registration to call");
    }
    if let Some(cases) = &cases {
        let (passed, failed) = crate::cases::run(
            cases,
            &registrations,
            |registration, request| target.tool_call(request, target.deadline(registration)),
            |registration, request| target.session_create(request, target.deadline(registration)),
        )
        .await;
        report.passed += passed;
        report.failed += failed;
    }
    stop_and_check(&process, &options, &mut report).await;
    tasks.shutdown().await;
    Ok(finish(report))
}

fn finish(report: Report) -> ExitCode {
    out!(
        "conformance: {} passed, {} failed",
        report.passed,
        report.failed
    );
    if report.failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// Starts the command without the magic cookie: it must exit with status 1, on its own, within
/// the start timeout, and must not serve its socket.
async fn check_cookie(
    spawner: &Spawner,
    config: &PluginConfig,
    placement: &Placement,
    workdir: &Path,
    options: &Options,
) -> Result<String, String> {
    let socket = socket_in(&placement.socket_dir, 0);
    let spawned = spawner
        .spawn(&config.command, |command| {
            process::configure(command, config, &socket, workdir, placement);
            command.env_remove(env::MAGIC_COOKIE).stdout(Stdio::null());
        })
        .await
        .map_err(|e| format!("cannot start {}: {e}", config.command.display()))?;
    let mut reaper = spawned.reaper;
    let stderr = reaper.stderr.take();
    let limit = Duration::from_millis(options.start_timeout_ms.into());
    let waited = tokio::time::timeout(limit, reaper.wait()).await;
    let said = match stderr {
        Some(mut stderr) if waited.is_ok() => {
            use tokio::io::AsyncReadExt;
            let mut text = Vec::new();
            let mut limited = (&mut stderr).take(4096);
            let read = limited.read_to_end(&mut text);
            let _ = tokio::time::timeout(Duration::from_millis(200), read).await;
            String::from_utf8_lossy(&text).trim().to_owned()
        }
        _ => String::new(),
    };
    let served = std::fs::symlink_metadata(&socket).is_ok();
    let _ = std::fs::remove_file(&socket);
    match waited {
        Err(_) => {
            // Dropping the reaper kills it, and with it the plugin's subtree.
            let _ = reaper.start_kill();
            Err(format!(
                "still running {} ms after it was started without HOOKVISOR_MAGIC_COOKIE{}",
                limit.as_millis(),
                if served {
                    " (and it served its socket)"
                } else {
                    ""
                }
            ))
        }
        Ok(Err(e)) => Err(format!("cannot wait for it: {e}")),
        Ok(Ok(status)) => match Exit::from(status) {
            Exit::Code(1) if !served => Ok(format!(
                "exited with status 1 without HOOKVISOR_MAGIC_COOKIE{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", first_line(&said))
                }
            )),
            Exit::Code(1) => Err("exited with status 1, but only after serving its socket".into()),
            other => Err(format!(
                "without HOOKVISOR_MAGIC_COOKIE it {other}, not with status 1{}",
                if said.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", first_line(&said))
                }
            )),
        },
    }
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    hookvisor::decide::limits::cap_text(line, 200).into_owned()
}

/// Protocol 1 and registrations `serve` accepts (§3), with no unknown hook.
fn describe_check(
    config: &PluginConfig,
    info: &PluginInfo,
) -> Result<(String, Vec<HookRegistration>), String> {
    if let Some(unknown) = info
        .hooks
        .iter()
        .find(|r| !matches!(Hook::try_from(r.hook), Ok(h) if h != Hook::Unspecified))
    {
        return Err(format!("registered an unknown hook ({})", unknown.hook));
    }
    if let Some(bad) = info
        .hooks
        .iter()
        .find(|r| Stage::try_from(r.stage).is_err())
    {
        return Err(format!("registered an unknown stage ({})", bad.stage));
    }
    let accepted = routing::accept(config, &info.hooks).map_err(|e| {
        if config.trusted {
            e
        } else {
            format!("{e} (pass --trusted to run it as a trusted plugin)")
        }
    })?;
    if accepted.is_empty() {
        return Err("registered no hook".into());
    }
    let list: Vec<String> = accepted.iter().map(describe_registration).collect();
    let name = if info.name.is_empty() {
        "(no name)"
    } else {
        &info.name
    };
    Ok((
        format!(
            "{name} {}, protocol 1: {}",
            if info.version.is_empty() {
                "(no version)"
            } else {
                &info.version
            },
            list.join(", ")
        ),
        accepted.to_vec(),
    ))
}

fn describe_registration(r: &HookRegistration) -> String {
    let hook = hook_name(r.hook);
    let stage = if r.stage == Stage::Policy as i32 {
        "policy"
    } else {
        "hook"
    };
    let tools = if r.tools.is_empty() {
        String::new()
    } else {
        format!(" for {}", r.tools.join(","))
    };
    format!("{hook} ({stage}{tools})")
}

fn hook_name(hook: i32) -> &'static str {
    Hook::try_from(hook).map_or("unknown", hookvisor::observe::audit::hook_name)
}

async fn health(channel: Channel) -> Result<String, String> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    let answer = tokio::time::timeout(
        Duration::from_secs(1),
        HealthClient::new(channel).check(request),
    )
    .await;
    match answer {
        Err(_) => Err("grpc.health.v1.Health/Check did not answer within 1000 ms".into()),
        Ok(Err(status)) => Err(format!(
            "grpc.health.v1.Health/Check failed with gRPC status {:?}: {}",
            status.code(),
            first_line(status.message())
        )),
        Ok(Ok(response)) => match response.get_ref().status() {
            ServingStatus::Serving => Ok("SERVING".into()),
            other => Err(format!("reported {}", other.as_str_name())),
        },
    }
}

/// The plugin under test, ready.
struct Target<'a> {
    process: &'a Process,
    connected: &'a Connected,
    timeout: Option<u32>,
}

impl Target<'_> {
    /// The deadline for a call of `registration`, as §6 would work it out without a host.
    fn deadline(&self, registration: &HookRegistration) -> Duration {
        let ms = self.timeout.unwrap_or(match registration.timeout_ms {
            0 => 5000,
            own => own.min(600_000),
        });
        Duration::from_millis(ms.into())
    }

    /// One call of `path` as the supervisor makes it: on the handshake's connection first, on
    /// a fresh one (peer-checked) for an attempt after a broken connection.
    async fn call<Req: prost::Message, Resp: prost::Message + Default>(
        &self,
        path: &'static str,
        request: Req,
        deadline: Duration,
    ) -> Result<Resp, Failed> {
        let (request, calls) = (&request, &self.connected.link);
        process::call(
            Some(self.process.exit_watch()),
            deadline,
            process::Timer::Own,
            |left, attempt| calls.attempt(attempt, path, request, left, None),
        )
        .await
    }

    async fn tool_call(
        &self,
        request: BeforeToolCallRequest,
        deadline: Duration,
    ) -> Result<ToolAnswer, Failed> {
        let decision = self.call(link::BEFORE_TOOL_CALL, request, deadline).await?;
        tool_answer(decision)
    }

    async fn session_create(
        &self,
        request: BeforeSessionCreateRequest,
        deadline: Duration,
    ) -> Result<SessionAnswer, Failed> {
        let decision = self
            .call(link::BEFORE_SESSION_CREATE, request, deadline)
            .await?;
        session_answer(decision)
    }

    async fn session_created(
        &self,
        event: SessionCreatedEvent,
        deadline: Duration,
    ) -> Result<(), Failed> {
        self.call::<_, Ack>(link::SESSION_CREATED, event, deadline)
            .await
            .map(|_| ())
    }
}

/// One line of the battery: what the answer was, or how the plugin failed.
fn answered<A>(
    result: Result<A, Failed>,
    elapsed: Duration,
    say: impl Fn(A) -> String,
) -> Result<String, String> {
    match result {
        Ok(answer) => Ok(format!("{} in {} ms", say(answer), elapsed.as_millis())),
        Err(failed) => Err(failed.detail),
    }
}

fn tool_outcome(answer: ToolAnswer) -> String {
    match (&answer.block, &answer.approval, &answer.params) {
        (Some(reason), _, _) => format!("block ({})", first_line(reason)),
        (None, Some(approval), _) => format!("require approval ({})", approval.title),
        (None, None, Some(_)) => "allow with rewritten params".into(),
        (None, None, None) => "allow".into(),
    }
}

fn session_outcome(answer: SessionAnswer) -> String {
    match (&answer.block, &answer.patch) {
        (Some(reason), _) => format!("block ({})", first_line(reason)),
        (None, Some(_)) => "allow with a metadata patch".into(),
        (None, None) => "allow".into(),
    }
}

/// The inputs every registered hook answers (§8 limits included), each within its deadline.
async fn battery(target: &Target<'_>, registration: &HookRegistration, report: &mut Report) {
    let hook = hook_name(registration.hook);
    let deadline = target.deadline(registration);
    match Hook::try_from(registration.hook) {
        Ok(Hook::BeforeToolCall) => {
            for (case, request) in tool_cases(registration, deadline) {
                let started = Instant::now();
                let result = target.tool_call(request, deadline).await;
                let line = answered(result, started.elapsed(), tool_outcome);
                report.record(&format!("{hook}: {case}"), line);
            }
        }
        Ok(Hook::BeforeSessionCreate) => {
            for (case, request) in session_cases(deadline) {
                let started = Instant::now();
                let result = target.session_create(request, deadline).await;
                let line = answered(result, started.elapsed(), session_outcome);
                report.record(&format!("{hook}: {case}"), line);
            }
        }
        Ok(Hook::SessionCreated) => {
            for (case, event) in created_cases() {
                let started = Instant::now();
                let result = target.session_created(event, deadline).await;
                let line = answered(result, started.elapsed(), |()| "acknowledged".into());
                report.record(&format!("{hook}: {case}"), line);
            }
        }
        _ => {}
    }
}

const UNICODE_TOOL: &str = "écrire-ファイル-🔧";

/// A tool this registration takes: its first listed tool, else `fallback`.
fn tool_for<'a>(registration: &'a HookRegistration, fallback: &'a str) -> &'a str {
    registration.tools.first().map_or(fallback, String::as_str)
}

fn full_context() -> ToolCallContext {
    ToolCallContext {
        agent_id: "agent-ü".into(),
        session_key: "agent:conformance:main".into(),
        session_id: "0b8e4f0e-5b6c-4c57-9d1a-2f1d6a1b7c3e".into(),
        run_id: "run-1".into(),
        tool_call_id: "call-1".into(),
        workspace_dir: "/tmp/hookvisor-conformance/workspace".into(),
        container_workdir: "/workspace".into(),
        channel_id: "telegram".into(),
        requester: Some(Requester {
            channel: "telegram".into(),
            account_id: "bot-1".into(),
            sender_id: "user-ß-1".into(),
            sender_is_owner: true,
        }),
    }
}

/// Objects nested to the depth limit (the root counts as one level).
fn deep_params() -> Value {
    let mut value = json!("bottom");
    for level in (0..MAX_DEPTH).rev() {
        let mut object = Map::new();
        object.insert(format!("level{level}"), value);
        value = Value::Object(object);
    }
    value
}

/// As many keys as an object may have, filling most of the size limit.
fn wide_params() -> Value {
    let per_key = MAX_SERIALIZED_BYTES / MAX_KEYS - 32;
    let object: Map<String, Value> = (0..MAX_KEYS)
        .map(|i| (format!("key{i:03}"), json!("w".repeat(per_key))))
        .collect();
    Value::Object(object)
}

/// One string as long as a string may be.
fn long_params() -> Value {
    json!({ "command": "x".repeat(MAX_STRING_BYTES), "path": "notes.txt" })
}

fn tool_cases(
    registration: &HookRegistration,
    deadline: Duration,
) -> Vec<(&'static str, BeforeToolCallRequest)> {
    let tool = tool_for(registration, "conformance-tool");
    let unicode_tool = tool_for(registration, UNICODE_TOOL);
    let request = |tool: &str, params: Value, context: Option<ToolCallContext>, meta: &str| {
        BeforeToolCallRequest {
            tool_name: tool.to_owned(),
            params_json: hookvisor::decide::limits::canonical(&params),
            context,
            session_metadata_json: meta.to_owned(),
            deadline_ms: u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX),
        }
    };
    vec![
        (
            "empty params, no context",
            request(tool, json!({}), None, ""),
        ),
        (
            "unicode tool name and values",
            request(
                unicode_tool,
                json!({
                    "path": "données/日本語/😀.txt",
                    "command": "echo 'héllo wörld ✓' \u{202e}txt.exe",
                    "nul": "a\u{0}b",
                }),
                Some(full_context()),
                "",
            ),
        ),
        (
            "params nested to the depth limit",
            request(tool, deep_params(), Some(full_context()), ""),
        ),
        (
            "params with the most keys, near the size limit",
            request(tool, wide_params(), Some(full_context()), ""),
        ),
        (
            "a string param of the longest length",
            request(tool, long_params(), Some(full_context()), ""),
        ),
        (
            "full context and session metadata",
            request(
                tool,
                json!({"command": "ls -la", "path": "src/main.rs", "n": 1.5, "ok": true, "none": null}),
                Some(full_context()),
                r#"{"calls":3,"labels":["a","b"]}"#,
            ),
        ),
    ]
}

fn session_cases(deadline: Duration) -> Vec<(&'static str, BeforeSessionCreateRequest)> {
    let deadline_ms = u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX);
    vec![
        (
            "empty request",
            BeforeSessionCreateRequest {
                deadline_ms,
                ..Default::default()
            },
        ),
        (
            "unicode fields and metadata",
            BeforeSessionCreateRequest {
                session_key: "agent:ü:main".into(),
                agent_id: "agent-ü".into(),
                label: "ラベル 🔧".into(),
                model: "model-1".into(),
                parent_session_key: "agent:ü:parent".into(),
                workspace_dir: "/tmp/hookvisor-conformance/workspace".into(),
                requester: full_context().requester,
                session_metadata_json: r#"{"labels":["x"],"n":1}"#.into(),
                deadline_ms,
            },
        ),
    ]
}

fn created_cases() -> Vec<(&'static str, SessionCreatedEvent)> {
    vec![
        ("empty event", SessionCreatedEvent::default()),
        (
            "unicode fields and metadata",
            SessionCreatedEvent {
                session_key: "agent:ü:main".into(),
                session_id: "0b8e4f0e".into(),
                agent_id: "agent-ü".into(),
                session_metadata_json: r#"{"labels":["x"]}"#.into(),
            },
        ),
    ]
}

/// Calls cancelled at their deadline (the way the supervisor cancels them) must leave the plugin
/// running, healthy and answering.
async fn cancel_check(
    target: &Target<'_>,
    registration: &HookRegistration,
) -> Result<String, String> {
    const CANCEL_AFTER_MS: [u64; 5] = [1, 2, 5, 10, 20];
    let deadline = target.deadline(registration);
    for ms in CANCEL_AFTER_MS {
        let short = Duration::from_millis(ms);
        let calls = &target.connected.link;
        let cancelled = async {
            match Hook::try_from(registration.hook) {
                Ok(Hook::BeforeToolCall) => {
                    let (_, mut request) = tool_cases(registration, short).swap_remove(0);
                    request.deadline_ms = ms as u32;
                    calls
                        .unary::<_, ToolCallDecision>(link::BEFORE_TOOL_CALL, &request, short, None)
                        .await
                        .map(|_| ())
                }
                Ok(Hook::BeforeSessionCreate) => {
                    let request = BeforeSessionCreateRequest {
                        deadline_ms: ms as u32,
                        ..Default::default()
                    };
                    calls
                        .unary::<_, SessionDecision>(
                            link::BEFORE_SESSION_CREATE,
                            &request,
                            short,
                            None,
                        )
                        .await
                        .map(|_| ())
                }
                _ => calls
                    .unary::<_, Ack>(
                        link::SESSION_CREATED,
                        &SessionCreatedEvent::default(),
                        short,
                        None,
                    )
                    .await
                    .map(|_| ()),
            }
        };
        // Dropped at the deadline: HTTP/2 RST_STREAM(CANCEL), as the supervisor does.
        let _ = tokio::time::timeout(short, cancelled).await;
    }
    // Then an ordinary call must still be answered, and health still SERVING.
    let started = Instant::now();
    let answered = match Hook::try_from(registration.hook) {
        Ok(Hook::BeforeToolCall) => {
            let (_, request) = tool_cases(registration, deadline).swap_remove(0);
            target.tool_call(request, deadline).await.map(|_| ())
        }
        Ok(Hook::BeforeSessionCreate) => {
            let (_, request) = session_cases(deadline).swap_remove(0);
            target.session_create(request, deadline).await.map(|_| ())
        }
        _ => {
            target
                .session_created(SessionCreatedEvent::default(), deadline)
                .await
        }
    };
    if let Err(failed) = answered {
        return Err(format!(
            "after {} cancelled calls, the next call {}",
            CANCEL_AFTER_MS.len(),
            failed.detail
        ));
    }
    let elapsed = started.elapsed();
    health(target.connected.channel.clone())
        .await
        .map_err(|e| format!("after {} cancelled calls: {e}", CANCEL_AFTER_MS.len()))?;
    if let Some(exit) = target.process.exited() {
        return Err(format!("the process {exit} after cancelled calls"));
    }
    Ok(format!(
        "{} calls cancelled at 1..20 ms; the next answered in {} ms and health is SERVING",
        CANCEL_AFTER_MS.len(),
        elapsed.as_millis()
    ))
}

/// SIGTERM to the process group; it must exit within the grace period (then SIGKILL).
async fn stop_and_check(process: &Process, options: &Options, report: &mut Report) {
    let grace = Duration::from_millis(options.stop_grace_ms.into());
    if let Some(exit) = process.exited() {
        report.fail("sigterm", format!("the process had already ended ({exit})"));
        return;
    }
    let started = Instant::now();
    let _ = nix::sys::signal::killpg(process.pid(), nix::sys::signal::Signal::SIGTERM);
    match tokio::time::timeout(grace, process.wait_exit()).await {
        Ok(exit) => report.pass(
            "sigterm",
            format!("{exit} {} ms after SIGTERM", started.elapsed().as_millis()),
        ),
        Err(_) => {
            let exit = process.stop(Duration::ZERO).await;
            report.fail(
                "sigterm",
                format!(
                    "still running {} ms after SIGTERM (the grace period); killed: {exit}",
                    grace.as_millis()
                ),
            );
        }
    }
}

/// A private directory for the plugin's socket (mode 0700, like the runtime directory), removed
/// when the run ends.
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    /// A new directory, 0711: a plugin under a uid of its own reaches its directories in it.
    fn new() -> anyhow::Result<TempDir> {
        use std::os::unix::fs::PermissionsExt;
        let template = std::env::temp_dir().join("hookvisor-conformance.XXXXXX");
        let path = nix::unistd::mkdtemp(&template)?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711))?;
        Ok(TempDir { path })
    }
}

/// `paths`, relative ones joined onto `base`; each must exist.
fn absolute_all(base: &Path, paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    paths
        .iter()
        .map(|path| {
            let path = base.join(path);
            std::fs::metadata(&path)
                .map(|_| path.clone())
                .map_err(|e| anyhow::anyhow!("--read/--write {}: {e}", path.display()))
        })
        .collect()
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_battery_stays_within_the_limits() {
        let registration = HookRegistration::default();
        for (case, request) in tool_cases(&registration, Duration::from_secs(1)) {
            let parsed = hookvisor::decide::limits::parse_object(&request.params_json);
            assert!(parsed.is_ok(), "{case}: {parsed:?}");
        }
        // At the limits, not merely under them: one more level or key is refused.
        let mut deeper = Map::new();
        deeper.insert("more".into(), deep_params());
        let deeper = hookvisor::decide::limits::canonical(&Value::Object(deeper));
        assert!(hookvisor::decide::limits::parse_object(&deeper).is_err());
        let Value::Object(mut wide) = wide_params() else {
            panic!("wide params are an object");
        };
        wide.insert("one-more".into(), json!(1));
        let wider = hookvisor::decide::limits::canonical(&Value::Object(wide));
        assert!(hookvisor::decide::limits::parse_object(&wider).is_err());
    }
}
