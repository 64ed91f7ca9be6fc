//! What the integration tests share: finding the binaries, starting `hookvisor serve` on a fresh
//! configuration and socket, talking to it, and reading what recorder fixtures saw.
//!
//! Every supervisor gets its own short directory under the system temp dir (Unix socket paths
//! must stay under 108 bytes) holding `hookvisor.toml`, `host.sock`, the runtime dir `run/` and
//! the captured `stdout.log` / `stderr.log`. Dropping the [`Supervisor`] kills what is left and
//! removes the directory.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{
    Failure, Outcome, PluginResult, Requester, SessionCreateRequest, Stage, ToolCallContext,
    ToolCallRequest, ToolCallVerdict,
};
use hyper_util::rt::TokioIo;
use nix::errno::Errno;
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::net::UnixStream;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tower::service_fn;

/// How long a supervisor may take to start serving.
pub const START_DEADLINE: Duration = Duration::from_secs(20);

/// The workspace directory every request's context carries.
pub const WORKSPACE_DIR: &str = "/srv/agent/workspace";

/// Environment given to every supervisor process; plugins must not see it unless allowlisted.
pub const LEAK_VAR: (&str, &str) = ("HOOKVISOR_TEST_LEAK", "leaked");
/// Environment given to every supervisor process, for `inherit_env` tests.
pub const INHERIT_VAR: (&str, &str) = ("HOOKVISOR_TEST_INHERIT", "inherited");

/// The cargo profile directory (`target/debug`) holding `hookvisor` and the fixtures: the parent
/// of the `deps` (or `examples`) directory the executable runs from.
pub fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe
        .parent()
        .expect("test executable directory")
        .to_path_buf();
    // Tests run from `deps`, examples (measurements) from `examples`.
    if dir.ends_with("deps") || dir.ends_with("examples") {
        dir.pop();
    }
    dir
}

/// A binary of the workspace, which must have been built.
pub fn binary(name: &str) -> PathBuf {
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{} does not exist: run `cargo build --workspace --all-targets` first",
        path.display()
    );
    path
}

/// The `hookvisor` binary.
pub fn hookvisor() -> PathBuf {
    binary("hookvisor")
}

/// A fixture plugin binary, e.g. `fixture("fixture-hang")`.
pub fn fixture(name: &str) -> PathBuf {
    binary(name)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// A fresh directory under the system temp dir, removed on drop. Paths are short on purpose.
#[derive(Debug)]
pub struct TestDir(PathBuf);

impl TestDir {
    /// Creates `<tmp>/hv<pid>-<n>`.
    pub fn new() -> TestDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("hv{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|err| panic!("creating {}: {err}", path.display()));
        TestDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// A path inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Default for TestDir {
    fn default() -> Self {
        TestDir::new()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `[supervisor]` keys that give a supervisor a sandbox of its own: its `state_dir` inside `dir`
/// and a `plugin_uids` range no other supervisor of any running test has, so that plugins of
/// tests running at once never share a uid (nor so its process count, `max_processes`).
pub fn sandbox_keys(dir: &Path) -> String {
    let (first, last) = uid_range();
    format!(
        "state_dir = {}\nplugin_uids = \"{first}-{last}\"\n",
        toml_string(&dir.join("state").display().to_string())
    )
}

/// Uids each supervisor a test starts may give its plugins.
const UIDS_PER_SUPERVISOR: u32 = 20;
/// Uids each test process takes for its supervisors.
const UIDS_PER_PROCESS: u32 = 10_000;
/// The first uid tests use: far from any real user.
const FIRST_TEST_UID: u32 = 1_000_000;

/// A range of [`UIDS_PER_SUPERVISOR`] uids, from this process's block, that no supervisor
/// started recently by this process has.
pub fn uid_range() -> (u32, u32) {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % (UIDS_PER_PROCESS / UIDS_PER_SUPERVISOR);
    let first = process_uid_block() + n * UIDS_PER_SUPERVISOR;
    (first, first + UIDS_PER_SUPERVISOR - 1)
}

/// This process's block of uids: slot N of a directory of markers in the temp dir, taken with
/// `mkdir` (atomic), each marker naming its owner's pid; a marker whose owner is gone is taken
/// over.
fn process_uid_block() -> u32 {
    static BLOCK: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *BLOCK.get_or_init(|| {
        let root = std::env::temp_dir().join("hookvisor-test-uids");
        std::fs::create_dir_all(&root).expect("creating the uid markers' directory");
        for slot in 0..1000u32 {
            let marker = root.join(slot.to_string());
            let owner = marker.join("pid");
            if std::fs::create_dir(&marker).is_err() {
                let alive = std::fs::read_to_string(&owner)
                    .ok()
                    .and_then(|pid| pid.trim().parse::<i32>().ok())
                    .is_none_or(|pid| kill(Pid::from_raw(pid), None) != Err(Errno::ESRCH));
                if alive {
                    continue;
                }
                let _ = std::fs::remove_dir_all(&marker);
                if std::fs::create_dir(&marker).is_err() {
                    continue;
                }
            }
            std::fs::write(&owner, std::process::id().to_string()).expect("writing a uid marker");
            return FIRST_TEST_UID + slot * UIDS_PER_PROCESS;
        }
        panic!("no free block of test uids under {}", root.display())
    })
}

/// A TOML basic string with `text` in it.
pub fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Builds one `[[plugin]]` table running a fixture.
#[derive(Debug, Clone)]
pub struct PluginToml {
    name: String,
    command: PathBuf,
    keys: Vec<String>,
    env: Vec<(String, String)>,
    /// `[plugin.sandbox]` lines, and the paths of its `write` list.
    sandbox: Vec<String>,
    write: Vec<PathBuf>,
}

impl PluginToml {
    /// A plugin called `name` running the fixture binary `fixture_name`.
    pub fn new(name: &str, fixture_name: &str) -> PluginToml {
        PluginToml {
            name: name.to_owned(),
            command: fixture(fixture_name),
            keys: Vec::new(),
            env: Vec::new(),
            sandbox: Vec::new(),
            write: Vec::new(),
        }
    }

    /// A plugin called `name` running `program` (a plugin in another language, say; give its
    /// `args` through [`PluginToml::key`]).
    pub fn program(name: &str, program: &Path) -> PluginToml {
        PluginToml {
            name: name.to_owned(),
            command: program.to_path_buf(),
            keys: Vec::new(),
            env: Vec::new(),
            sandbox: Vec::new(),
            write: Vec::new(),
        }
    }

    /// Runs `program` instead of the fixture (with `args` given through [`PluginToml::key`]).
    pub fn command(mut self, program: &str) -> PluginToml {
        self.command = PathBuf::from(program);
        self
    }

    /// Adds a raw `key = value` line to the table.
    pub fn key(mut self, line: &str) -> PluginToml {
        self.keys.push(line.to_owned());
        self
    }

    /// `trusted = true`.
    pub fn trusted(self) -> PluginToml {
        self.key("trusted = true")
    }

    /// `trusted = true` and a policy-stage registration (`FIXTURE_STAGE=policy`).
    pub fn policy(self) -> PluginToml {
        self.trusted().env("FIXTURE_STAGE", "policy")
    }

    /// `timeout_ms = N`.
    pub fn timeout_ms(self, ms: u32) -> PluginToml {
        self.key(&format!("timeout_ms = {ms}"))
    }

    /// `priority = N`.
    pub fn priority(self, priority: i32) -> PluginToml {
        self.key(&format!("priority = {priority}"))
    }

    /// Sets an entry of the plugin's `env`.
    pub fn env(mut self, key: &str, value: &str) -> PluginToml {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// `FIXTURE_ACTION` for the recorder.
    pub fn action(self, action: &str) -> PluginToml {
        self.env("FIXTURE_ACTION", action)
    }

    /// `FIXTURE_HOOKS`.
    pub fn hooks(self, hooks: &str) -> PluginToml {
        self.env("FIXTURE_HOOKS", hooks)
    }

    /// `FIXTURE_RECORD` pointing at a [`Recording`], whose directory its sandbox may write.
    pub fn record(mut self, recording: &Recording) -> PluginToml {
        let path = recording.path().display().to_string();
        self.write.push(recording.dir.path().to_path_buf());
        self.env("FIXTURE_RECORD", &path)
    }

    /// Adds a raw `key = value` line to the plugin's `[plugin.sandbox]` table.
    pub fn sandbox(mut self, line: &str) -> PluginToml {
        self.sandbox.push(line.to_owned());
        self
    }

    /// `[plugin.sandbox] enabled = false`: for tests of what lies behind the sandbox (the peer
    /// check, the reaper), whose attacks the sandbox would stop first.
    pub fn unsandboxed(self) -> PluginToml {
        self.sandbox("enabled = false")
    }

    /// The table's text.
    pub fn toml(&self) -> String {
        let mut out = String::from("\n[[plugin]]\n");
        let _ = writeln!(out, "name = {}", toml_string(&self.name));
        let _ = writeln!(
            out,
            "command = {}",
            toml_string(&self.command.display().to_string())
        );
        for key in &self.keys {
            let _ = writeln!(out, "{key}");
        }
        if !self.env.is_empty() {
            let pairs: Vec<String> = self
                .env
                .iter()
                .map(|(k, v)| format!("{k} = {}", toml_string(v)))
                .collect();
            let _ = writeln!(out, "env = {{ {} }}", pairs.join(", "));
        }
        if !self.sandbox.is_empty() || !self.write.is_empty() {
            out.push_str("[plugin.sandbox]\n");
            for line in &self.sandbox {
                let _ = writeln!(out, "{line}");
            }
            if !self.write.is_empty() {
                let paths: Vec<String> = self
                    .write
                    .iter()
                    .map(|p| toml_string(&p.display().to_string()))
                    .collect();
                let _ = writeln!(out, "write = [{}]", paths.join(", "));
            }
        }
        out
    }
}

/// The text of several plugin tables.
pub fn plugins(list: &[PluginToml]) -> String {
    list.iter().map(PluginToml::toml).collect()
}

/// How to start a [`Supervisor`].
#[derive(Debug, Clone)]
pub struct Builder {
    body: String,
    supervisor_keys: Vec<String>,
    socket_flag: bool,
    relative_config: bool,
    journal_stream: bool,
    env: Vec<(String, String)>,
    serve_args: Vec<String>,
    user: Option<u32>,
}

impl Builder {
    /// Runs the supervisor as `uid` (and gid), without root: its directory is given to it.
    pub fn as_user(mut self, uid: u32) -> Builder {
        self.user = Some(uid);
        self
    }

    /// Adds a `key = value` line to the `[supervisor]` table.
    pub fn supervisor_key(mut self, line: &str) -> Builder {
        self.supervisor_keys.push(line.to_owned());
        self
    }

    /// Adds an argument to `hookvisor serve` (e.g. `--log-format`).
    pub fn serve_arg(mut self, arg: &str) -> Builder {
        self.serve_args.push(arg.to_owned());
        self
    }

    /// Gives the host socket with `--socket` (the configuration names another path).
    pub fn socket_flag(mut self) -> Builder {
        self.socket_flag = true;
        self
    }

    /// Sets a variable in the supervisor's environment (e.g. `NOTIFY_SOCKET`).
    pub fn env(mut self, key: &str, value: &str) -> Builder {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Sets `JOURNAL_STREAM` to the device and inode of the supervisor's stderr file, as
    /// systemd does when stderr goes to the journal.
    pub fn journal_stream(mut self) -> Builder {
        self.journal_stream = true;
        self
    }

    /// Runs `hookvisor serve` in the test directory with `--config hookvisor.toml`, a relative
    /// path, as an operator in that directory would.
    pub fn relative_config(mut self) -> Builder {
        self.relative_config = true;
        self
    }

    /// Starts `hookvisor serve` and waits until its host socket reports SERVING.
    pub async fn start(self) -> Supervisor {
        let dir = TestDir::new();
        let config = dir.join("hookvisor.toml");
        let socket = if self.socket_flag {
            dir.join("flag.sock")
        } else {
            dir.join("host.sock")
        };
        let configured_socket = dir.join("host.sock");
        let mut text = String::from("[supervisor]\n");
        let _ = writeln!(
            text,
            "socket = {}",
            toml_string(&configured_socket.display().to_string())
        );
        let _ = writeln!(
            text,
            "runtime_dir = {}",
            toml_string(&dir.join("run").display().to_string())
        );
        if !self
            .supervisor_keys
            .iter()
            .any(|k| k.starts_with("plugin_uids") || k.starts_with("state_dir"))
        {
            text.push_str(&sandbox_keys(dir.path()));
        }
        for key in &self.supervisor_keys {
            let _ = writeln!(text, "{key}");
        }
        text.push('\n');
        let header = text.clone();
        text.push_str(&self.body);
        std::fs::write(&config, &text).expect("writing hookvisor.toml");

        let mut command = tokio::process::Command::new(hookvisor());
        if self.relative_config {
            command
                .current_dir(dir.path())
                .arg("serve")
                .arg("--config")
                .arg("hookvisor.toml");
        } else {
            command.arg("serve").arg("--config").arg(&config);
        }
        if self.socket_flag {
            command.arg("--socket").arg(&socket);
        }
        command.args(&self.serve_args);
        let stdout = std::fs::File::create(dir.join("stdout.log")).expect("stdout.log");
        let stderr = std::fs::File::create(dir.join("stderr.log")).expect("stderr.log");
        if let Some(uid) = self.user {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(uid)).expect("chown");
            command.uid(uid).gid(uid);
        }
        if self.journal_stream {
            use std::os::unix::fs::MetadataExt;
            let meta = stderr.metadata().expect("stderr.log");
            command.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()));
        }
        command
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .env(LEAK_VAR.0, LEAK_VAR.1)
            .env(INHERIT_VAR.0, INHERIT_VAR.1)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().expect("spawning hookvisor serve");
        let pid = child.id().expect("hookvisor pid") as i32;
        let mut supervisor = Supervisor {
            dir,
            header,
            config,
            socket,
            child,
            pid,
            exited: None,
        };
        supervisor.wait_serving().await;
        supervisor
    }
}

/// A running `hookvisor serve` with its own configuration, socket and logs.
#[derive(Debug)]
pub struct Supervisor {
    dir: TestDir,
    /// The `[supervisor]` table the configuration starts with.
    header: String,
    config: PathBuf,
    socket: PathBuf,
    child: tokio::process::Child,
    pid: i32,
    exited: Option<ExitStatus>,
}

impl Supervisor {
    /// A supervisor whose configuration is `[supervisor]` (socket, runtime_dir) plus `body`.
    pub fn builder(body: &str) -> Builder {
        Builder {
            body: body.to_owned(),
            supervisor_keys: Vec::new(),
            socket_flag: false,
            relative_config: false,
            journal_stream: false,
            user: None,
            env: Vec::new(),
            serve_args: Vec::new(),
        }
    }

    /// Starts a supervisor on `body` and waits until it serves.
    pub async fn start(body: &str) -> Supervisor {
        Supervisor::builder(body).start().await
    }

    async fn wait_serving(&mut self) {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                self.exited = Some(status);
                panic!(
                    "hookvisor serve exited with {status} before serving\n{}",
                    self.log_tail()
                );
            }
            if self.socket.exists() {
                let check = tokio::time::timeout(Duration::from_secs(2), self.health());
                if let Ok(Ok(ServingStatus::Serving)) = check.await {
                    return;
                }
            }
            if Instant::now() > deadline {
                panic!(
                    "hookvisor serve did not report SERVING on {} within {:?}\n{}",
                    self.socket.display(),
                    START_DEADLINE,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `grpc.health.v1.Health/Check` for the whole server on the host socket.
    pub async fn health(&self) -> Result<ServingStatus, tonic::Status> {
        let channel = connect(&self.socket)
            .await
            .map_err(|err| tonic::Status::unavailable(err.to_string()))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await?;
        Ok(response.into_inner().status())
    }

    /// A `Hooks` client on the host socket.
    pub async fn client(&self) -> HooksClient<Channel> {
        let channel = connect(&self.socket)
            .await
            .unwrap_or_else(|err| panic!("connecting to {}: {err}", self.socket.display()));
        HooksClient::new(channel)
    }

    /// Sends `BeforeToolCall` for `tool` with `params` on a fresh connection; panics on a gRPC
    /// error (use [`Supervisor::client`] to test those).
    pub async fn verdict(&self, tool: &str, params: Value) -> ToolCallVerdict {
        self.client()
            .await
            .before_tool_call(tool_call(tool, params))
            .await
            .unwrap_or_else(|status| panic!("BeforeToolCall {tool}: {status:?}"))
            .into_inner()
    }

    /// The address the supervisor logged it serves metrics on (`[metrics]`).
    pub async fn metrics_address(&self) -> String {
        let line = self
            .log_line_with(&["serving metrics on http://"])
            .await
            .unwrap_or_else(|| panic!("no metrics line: {}", self.log()));
        let start = line.find("http://").expect("http://") + "http://".len();
        let rest = &line[start..];
        rest[..rest.find("/metrics").expect("/metrics")].to_owned()
    }

    /// `GET /metrics`: the exposition text (the status must be 200).
    pub async fn metrics(&self) -> String {
        let address = self.metrics_address().await;
        let (status, body) = tokio::task::spawn_blocking(move || http_get(&address, "/metrics"))
            .await
            .expect("the scrape");
        assert!(status.contains(" 200 "), "{status}");
        body
    }

    /// The supervisor's pid.
    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// The supervisor's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The configuration file.
    pub fn config(&self) -> &Path {
        &self.config
    }

    /// Rewrites the configuration with the same `[supervisor]` table and `body` (for a reload).
    pub fn rewrite_config(&self, body: &str) {
        std::fs::write(&self.config, format!("{}{body}", self.header))
            .expect("rewriting hookvisor.toml");
    }

    /// The host socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The runtime directory (`runtime_dir`).
    pub fn runtime_dir(&self) -> PathBuf {
        self.dir.join("run")
    }

    /// Everything the supervisor wrote so far: stdout, then stderr, without ANSI colours.
    pub fn log(&self) -> String {
        let read = |name| std::fs::read(self.dir.join(name)).unwrap_or_default();
        let mut text = String::from_utf8_lossy(&read("stdout.log")).into_owned();
        text.push_str(&String::from_utf8_lossy(&read("stderr.log")));
        strip_ansi(&text)
    }

    /// The last 16 KiB of the log, for failure messages.
    pub fn log_tail(&self) -> String {
        let log = self.log();
        let mut start = log.len().saturating_sub(16 * 1024);
        while !log.is_char_boundary(start) {
            start += 1;
        }
        log[start..].to_owned()
    }

    /// Waits up to 5 s for a log line containing every one of `needles`.
    pub async fn log_line_with(&self, needles: &[&str]) -> Option<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let log = self.log();
            let found = log
                .lines()
                .find(|line| needles.iter().all(|n| line.contains(n)));
            if let Some(line) = found {
                return Some(line.to_owned());
            }
            if Instant::now() > deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits up to 5 s for `needle` to appear in the log.
    pub async fn log_contains(&self, needle: &str) -> bool {
        self.log_line_with(&[needle]).await.is_some()
    }

    /// Sends `signal` to the supervisor process.
    pub fn signal(&self, signal: Signal) {
        if self.exited.is_none() {
            let _ = kill(Pid::from_raw(self.pid), signal);
        }
    }

    /// Waits for the supervisor to exit, panicking after `limit`.
    pub async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        if let Some(status) = self.exited {
            return status;
        }
        match tokio::time::timeout(limit, self.child.wait()).await {
            Ok(status) => {
                let status = status.expect("waiting for hookvisor");
                self.exited = Some(status);
                status
            }
            Err(_) => panic!(
                "hookvisor did not exit within {limit:?}\n{}",
                self.log_tail()
            ),
        }
    }

    /// SIGTERM, then the exit status (within 10 s).
    pub async fn stop(&mut self) -> ExitStatus {
        self.signal(Signal::SIGTERM);
        self.wait_exit(Duration::from_secs(10)).await
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // SIGTERM first, so the supervisor stops and reaps its plugins (an orphaned plugin's
        // zombie may never be reaped in a container); SIGKILL to the group if it lingers. Not
        // longer: this blocks the test's runtime, so the test's own client connections cannot
        // answer the supervisor's graceful HTTP/2 shutdown.
        if self.exited.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.pid), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_millis(500);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = killpg(Pid::from_raw(self.pid), Signal::SIGKILL);
        }
        if std::thread::panicking() {
            eprintln!(
                "---- hookvisor log ({}) ----\n{}",
                self.config.display(),
                self.log_tail()
            );
        }
    }
}

/// `text` without ANSI escape sequences (`ESC [ ... letter`).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.next() == Some('[') {
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

/// A channel to a gRPC server on a Unix socket.
pub async fn connect(path: &Path) -> Result<Channel, tonic::transport::Error> {
    let path = path.to_path_buf();
    Endpoint::from_static("http://localhost")
        .connect_with_connector(service_fn(move |_: Uri| {
            let path = path.clone();
            async move { Ok::<_, std::io::Error>(TokioIo::new(UnixStream::connect(path).await?)) }
        }))
        .await
}

/// Runs `hookvisor ARGS` to completion; returns status, stdout and stderr.
pub fn run_hookvisor(args: &[&str]) -> (ExitStatus, String, String) {
    let output = std::process::Command::new(hookvisor())
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("running hookvisor");
    (
        output.status,
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The context every test request carries.
pub fn context() -> ToolCallContext {
    ToolCallContext {
        agent_id: "agent-1".to_owned(),
        session_key: "agent:agent-1:main".to_owned(),
        session_id: "session-1".to_owned(),
        run_id: "run-1".to_owned(),
        tool_call_id: "call-1".to_owned(),
        workspace_dir: WORKSPACE_DIR.to_owned(),
        container_workdir: String::new(),
        channel_id: "chan-1".to_owned(),
        requester: Some(requester()),
    }
}

fn requester() -> Requester {
    Requester {
        channel: "telegram".to_owned(),
        account_id: "acct-1".to_owned(),
        sender_id: "user-1".to_owned(),
        sender_is_owner: true,
    }
}

/// A `BeforeToolCall` request for `tool` with `params`.
pub fn tool_call(tool: &str, params: Value) -> ToolCallRequest {
    tool_call_raw(tool, &params.to_string())
}

/// A `BeforeToolCall` request whose `params_json` is `params_json` verbatim.
pub fn tool_call_raw(tool: &str, params_json: &str) -> ToolCallRequest {
    ToolCallRequest {
        tool_name: tool.to_owned(),
        params_json: params_json.to_owned(),
        context: Some(context()),
        session_metadata: Default::default(),
        dispatch: false,
    }
}

/// A `BeforeSessionCreate` request with the given metadata namespaces (values as JSON).
pub fn session_create(session_key: &str, metadata: &[(&str, Value)]) -> SessionCreateRequest {
    SessionCreateRequest {
        session_key: session_key.to_owned(),
        agent_id: "agent-1".to_owned(),
        label: "test".to_owned(),
        model: "test-model".to_owned(),
        parent_session_key: String::new(),
        workspace_dir: WORKSPACE_DIR.to_owned(),
        requester: Some(requester()),
        session_metadata: metadata
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.to_string()))
            .collect(),
    }
}

/// Parses a JSON text the test expects to be valid.
pub fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
}

/// One trace entry in a form tests compare exactly: plugin, stage, outcome, failure,
/// revalidation.
pub type Step = (String, Stage, Outcome, Failure, bool);

/// The trace as [`Step`]s.
pub fn steps(trace: &[PluginResult]) -> Vec<Step> {
    trace
        .iter()
        .map(|r| {
            (
                r.plugin.clone(),
                r.stage(),
                r.outcome(),
                r.failure(),
                r.revalidation,
            )
        })
        .collect()
}

/// A [`Step`] with revalidation false.
pub fn step(plugin: &str, stage: Stage, outcome: Outcome, failure: Failure) -> Step {
    (plugin.to_owned(), stage, outcome, failure, false)
}

/// The trace entry of `plugin` (the first one), panicking when there is none.
pub fn entry<'a>(trace: &'a [PluginResult], plugin: &str) -> &'a PluginResult {
    trace
        .iter()
        .find(|r| r.plugin == plugin)
        .unwrap_or_else(|| panic!("no trace entry for {plugin}: {trace:#?}"))
}

/// A file recorder fixtures append to (`FIXTURE_RECORD`), in its own directory.
#[derive(Debug)]
pub struct Recording {
    dir: TestDir,
}

impl Recording {
    /// A fresh, empty recording. Plugins under uids of their own append to it: the directory
    /// is 0777 (not sticky, where `fs.protected_regular` would refuse another uid's file) and
    /// the file 0666, created here.
    pub fn new() -> Recording {
        use std::os::unix::fs::PermissionsExt;
        let dir = TestDir::new();
        let open = std::fs::Permissions::from_mode(0o777);
        std::fs::set_permissions(dir.path(), open).expect("opening a recording's directory");
        let file = dir.join("calls.jsonl");
        std::fs::write(&file, "").expect("creating a recording");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666))
            .expect("opening a recording");
        Recording { dir }
    }

    /// The file.
    pub fn path(&self) -> PathBuf {
        self.dir.join("calls.jsonl")
    }

    /// Every call recorded, in order.
    pub fn calls(&self) -> Vec<Value> {
        recorded_calls(&self.path())
    }

    /// The calls `plugin` recorded.
    pub fn calls_of(&self, plugin: &str) -> Vec<Value> {
        self.calls()
            .into_iter()
            .filter(|c| c["plugin"] == plugin)
            .collect()
    }

    /// The start lines (`pid`, `pgid`, `stdin`, `env`) of every process that recorded here.
    pub fn starts(&self) -> Vec<Value> {
        read_lines(&self.path())
            .into_iter()
            .filter(|line| line.get("pid").is_some())
            .collect()
    }

    /// The start line of `plugin` (its last start).
    pub fn start_of(&self, plugin: &str) -> Value {
        self.starts()
            .into_iter()
            .rev()
            .find(|s| s["plugin"] == plugin)
            .unwrap_or_else(|| panic!("{plugin} never started: {:?}", self.starts()))
    }

    /// Waits up to 5 s until `plugin` recorded at least `n` calls.
    pub async fn wait_calls(&self, plugin: &str, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let calls = self.calls_of(plugin);
            if calls.len() >= n || Instant::now() > deadline {
                return calls;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Default for Recording {
    fn default() -> Self {
        Recording::new()
    }
}

fn read_lines(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.lines().filter(|l| !l.is_empty()).map(json).collect()
}

/// The call lines (`hook`, `tool`, `params_json`, ...) in a recorder file.
pub fn recorded_calls(path: &Path) -> Vec<Value> {
    read_lines(path)
        .into_iter()
        .filter(|line| line.get("hook").is_some())
        .collect()
}

/// Whether process `pid` is gone (no such process, or a zombie nobody reaped yet).
pub fn process_gone(pid: i32) -> bool {
    match kill(Pid::from_raw(pid), None) {
        Err(Errno::ESRCH) => true,
        _ => std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|stat| {
                stat.rsplit_once(") ")
                    .is_some_and(|(_, rest)| rest.starts_with('Z'))
            })
            .unwrap_or(true),
    }
}

/// Waits up to `limit` for `pid` to be gone.
pub async fn wait_gone(pid: i32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if process_gone(pid) {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- hookvisor conformance ----

/// Runs `hookvisor conformance ARGS -- COMMAND...`; returns whether it exited 0 and its stdout.
pub fn conformance(args: &[&str], command: &[&str]) -> (bool, String) {
    // Uids of its own, as every supervisor a test starts has (when run as root).
    let (first, last) = uid_range();
    let uids = format!("{first}-{last}");
    let mut all = vec!["conformance", "--plugin-uids", &uids];
    all.extend_from_slice(args);
    all.push("--");
    all.extend_from_slice(command);
    let (status, stdout, stderr) = run_hookvisor(&all);
    assert!(
        status.code() == Some(0) || status.code() == Some(1),
        "conformance itself failed ({status}): {stdout}{stderr}"
    );
    (status.success(), stdout)
}

/// The line of a conformance report for `check`, which must be there.
pub fn conformance_line<'a>(report: &'a str, check: &str) -> &'a str {
    report
        .lines()
        .find(|l| l.get(6..).unwrap_or("").starts_with(&format!("{check}:")))
        .unwrap_or_else(|| panic!("no line for {check}: {report}"))
}

/// Every check of `command` passes.
pub fn assert_conformance_passes(args: &[&str], command: &[&str]) {
    let (passed, report) = conformance(args, command);
    assert!(passed, "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    assert!(report.contains(", 0 failed"), "{report}");
    for check in ["cookie", "ready", "describe", "health", "cancel", "sigterm"] {
        assert!(
            conformance_line(&report, check).starts_with("pass  "),
            "{report}"
        );
    }
}

/// The report failed, and its line for `check` is a FAIL that says `reason`.
pub fn assert_conformance_fails(report: &(bool, String), check: &str, reason: &str) {
    let (passed, report) = report;
    assert!(!passed, "{report}");
    let found = conformance_line(report, check);
    assert!(
        found.starts_with("FAIL  ") && found.contains(reason),
        "expected {check} to fail with {reason:?}: {report}"
    );
}

// ---- HTTP ----

/// `GET path` over HTTP/1.1 at `address`: the status line and the body.
pub fn http_get(address: &str, path: &str) -> (String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).expect("connecting for GET");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    )
    .expect("sending GET");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .expect("reading the response");
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (
        head.lines().next().unwrap_or_default().to_owned(),
        body.to_owned(),
    )
}

/// The value of the sample `series` (its name with its labels, exactly as exposed).
pub fn metrics_sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}
