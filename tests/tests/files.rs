//! The files hookvisor owns on disk, attacked (issue 5, items 4, 8, 9, 13 and 14): a host socket
//! in a directory another user can write, a runtime directory that is a symlink or someone
//! else's, files that only look like sockets, `check-config` accepting what `serve` refuses, an
//! endless `--config`, causes printed twice, and a socket shared with a group, tried by a client
//! running as a second uid through `setpriv`. Tests run as root; `chown 65534` plays the other
//! user.

use std::fs::Permissions;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use hookvisor_proto::v1::hooks_client::HooksClient;
use hookvisor_proto::v1::{Outcome, ToolCallVerdict};
use hookvisor_tests::harness::{
    PluginToml, Supervisor, TestDir, connect, fixture, hookvisor, plugins, toml_string, tool_call,
};
use nix::sys::signal::{Signal, kill, killpg};
use nix::unistd::{Pid, Uid, chown};
use serde_json::json;

/// The other user of these tests (`nobody`).
const OTHER_UID: u32 = 65534;
/// How long a refusal may take: it happens before anything starts.
const REFUSAL_LIMIT: Duration = Duration::from_secs(20);

/// What a finished `hookvisor` run printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl Run {
    fn code(&self) -> Option<i32> {
        self.status.code()
    }

    fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// Runs `hookvisor ARGS`, killing it and failing the test if it runs past `limit` (a `serve`
/// that should have refused would otherwise serve forever).
fn run_bounded(args: &[&str], limit: Duration) -> Run {
    let started = Instant::now();
    let mut child = Command::new(hookvisor())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("spawning hookvisor");
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = killpg(Pid::from_raw(child.id() as i32), Signal::SIGKILL);
            let _ = child.wait();
            panic!("hookvisor {args:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let took = started.elapsed();
    let mut stdout = String::new();
    let mut stderr = String::new();
    if let Some(mut out) = child.stdout.take() {
        let _ = out.read_to_string(&mut stdout);
    }
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut stderr);
    }
    Run {
        status,
        stdout,
        stderr,
        took,
    }
}

/// Writes `hookvisor.toml` in `dir` with the given socket, runtime dir, extra `[supervisor]`
/// lines and body; returns its path.
fn write_config(
    dir: &TestDir,
    socket: &Path,
    runtime_dir: &Path,
    extra: &str,
    body: &str,
) -> String {
    let path = dir.join("hookvisor.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\n{}{extra}\n{body}",
        toml_string(&socket.display().to_string()),
        toml_string(&runtime_dir.display().to_string()),
        hookvisor_tests::harness::sandbox_keys(dir.path()),
    );
    std::fs::write(&path, text).expect("writing hookvisor.toml");
    path.display().to_string()
}

/// Both `check-config` and `serve` refuse `config` (with `extra` arguments) with exit 64 and a
/// message containing every one of `needles`; returns `serve`'s message.
fn both_refuse(config: &str, extra: &[&str], needles: &[&str]) -> String {
    let mut serve_text = String::new();
    for command in ["check-config", "serve"] {
        let mut args = vec![command, "--config", config];
        args.extend_from_slice(extra);
        let run = run_bounded(&args, REFUSAL_LIMIT);
        let text = run.text();
        assert_eq!(run.code(), Some(64), "{command}: {text}");
        for needle in needles {
            assert!(text.contains(needle), "{command}: no `{needle}` in: {text}");
        }
        assert_eq!(
            text.lines().filter(|l| !l.trim().is_empty()).count(),
            1,
            "{command}: one line expected: {text}"
        );
        serve_text = text;
    }
    serve_text
}

fn mode_of(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .mode()
        & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

fn give_to_other_user(path: &Path) {
    chown(path, Some(Uid::from_raw(OTHER_UID)), None)
        .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
}

/// A `hookvisor serve` the test expects to start; stopped (SIGTERM, then SIGKILL) on drop.
struct Serving {
    child: Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Serving {
    fn start(args: &[&str], socket: &Path, log: PathBuf) -> Serving {
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(hookvisor())
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .process_group(0)
            .spawn()
            .expect("spawning hookvisor serve");
        Serving {
            child,
            socket: socket.to_path_buf(),
            log,
        }
    }

    fn log(&self) -> String {
        hookvisor_tests::harness::strip_ansi(
            &std::fs::read_to_string(&self.log).unwrap_or_default(),
        )
    }

    /// Polls until the host socket gives a verdict for `exec`.
    async fn verdict(&mut self) -> ToolCallVerdict {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!("hookvisor serve exited with {status}:\n{}", self.log());
            }
            if let Ok(channel) = connect(&self.socket).await {
                let mut client = HooksClient::new(channel);
                let call = client.before_tool_call(tool_call("exec", json!({})));
                if let Ok(Ok(verdict)) = tokio::time::timeout(Duration::from_secs(5), call).await {
                    return verdict.into_inner();
                }
            }
            assert!(
                Instant::now() < deadline,
                "no verdict on {}:\n{}",
                self.socket.display(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM and the exit status.
    fn stop(&mut self) -> ExitStatus {
        let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit after SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = kill(Pid::from_raw(self.child.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_millis(500);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
            let _ = self.child.wait();
        }
    }
}

// ---- item 4: the host socket's directory ----

#[test]
fn a_host_socket_in_a_directory_others_can_write_is_refused() {
    let dir = TestDir::new();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o777);
    let socket = shared.join("h.sock");
    let config = write_config(&dir, &socket, &dir.join("run"), "", "");
    let shared_name = shared.display().to_string();
    both_refuse(
        &config,
        &[],
        &[&shared_name, "owner uid 0", "mode 0777", "sticky"],
    );
    assert!(!socket.exists(), "nothing was bound");
    assert!(!dir.join("run").exists(), "nothing was created");

    // An ancestor further up counts as much as the socket's own directory.
    let deep = shared.join("a/b");
    std::fs::create_dir_all(&deep).unwrap();
    let config = write_config(&dir, &deep.join("h.sock"), &dir.join("run"), "", "");
    both_refuse(&config, &[], &[&shared_name, "mode 0777"]);

    // So does a directory another user owns, even one only its owner can write.
    set_mode(&shared, 0o755);
    give_to_other_user(&shared);
    let config = write_config(&dir, &socket, &dir.join("run"), "", "");
    both_refuse(
        &config,
        &[],
        &[&shared_name, "owner uid 65534", "neither root"],
    );

    // The runtime directory's ancestors follow the same rule.
    let config = write_config(&dir, &dir.join("h.sock"), &shared.join("run"), "", "");
    both_refuse(
        &config,
        &[],
        &["runtime directory", &shared_name, "owner uid 65534"],
    );
}

#[tokio::test]
async fn a_host_socket_in_a_sticky_directory_is_accepted() {
    let dir = TestDir::new();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    set_mode(&shared, 0o1777);
    let socket = shared.join("h.sock");
    let config = write_config(&dir, &socket, &dir.join("run"), "", "");
    let run = run_bounded(&["check-config", "--config", &config], REFUSAL_LIMIT);
    assert_eq!(run.code(), Some(0), "{}", run.text());
    assert_eq!(run.stdout.trim(), "ok");
    let mut serving = Serving::start(&["serve", "--config", &config], &socket, dir.join("log"));
    let verdict = serving.verdict().await;
    assert_eq!(verdict.outcome(), Outcome::Allow, "{verdict:#?}");
}

// ---- item 8: files that are not hookvisor's ----

#[test]
fn a_runtime_dir_that_is_a_symlink_is_refused_and_its_target_untouched() {
    let dir = TestDir::new();
    let target = dir.join("elsewhere");
    std::fs::create_dir(&target).unwrap();
    set_mode(&target, 0o755);
    std::fs::write(target.join("p.sock"), "precious").unwrap();
    let runtime = dir.join("run");
    std::os::unix::fs::symlink(&target, &runtime).unwrap();
    let config = write_config(
        &dir,
        &dir.join("h.sock"),
        &runtime,
        "",
        &plugins(&[PluginToml::new("p", "fixture-recorder")]),
    );
    both_refuse(
        &config,
        &[],
        &[&runtime.display().to_string(), "symbolic link"],
    );
    assert_eq!(mode_of(&target), 0o755, "the target's mode was changed");
    assert_eq!(
        std::fs::read_to_string(target.join("p.sock")).unwrap(),
        "precious"
    );
    assert!(!target.join("hookvisor.lock").exists());
}

#[test]
fn an_existing_shared_runtime_dir_is_refused_and_left_alone() {
    let dir = TestDir::new();
    let runtime = dir.join("run");
    std::fs::create_dir(&runtime).unwrap();
    set_mode(&runtime, 0o755);
    let config = write_config(&dir, &dir.join("h.sock"), &runtime, "", "");
    both_refuse(
        &config,
        &[],
        &["mode 0755", "chmod 0711", "RuntimeDirectoryMode=0711"],
    );
    assert_eq!(
        mode_of(&runtime),
        0o755,
        "hookvisor changed a directory it did not create"
    );
    assert_eq!(
        std::fs::read_dir(&runtime).unwrap().count(),
        0,
        "nothing was created in it"
    );
}

#[tokio::test]
async fn a_regular_file_named_like_a_plugin_socket_is_never_deleted() {
    let dir = TestDir::new();
    let runtime = dir.join("run");
    std::fs::create_dir(&runtime).unwrap();
    set_mode(&runtime, 0o711);
    // Where the first instance of plugin `p` is told to serve.
    std::fs::create_dir(runtime.join("p")).unwrap();
    let decoy = runtime.join("p/1.sock");
    std::fs::write(&decoy, "precious").unwrap();
    let socket = dir.join("h.sock");
    let config = write_config(
        &dir,
        &socket,
        &runtime,
        "",
        &plugins(&[PluginToml::new("p", "fixture-recorder")]),
    );
    let mut serving = Serving::start(&["serve", "--config", &config], &socket, dir.join("log"));
    // The plugin cannot start, so its calls block.
    let verdict = serving.verdict().await;
    assert_eq!(verdict.outcome(), Outcome::Block, "{verdict:#?}");
    let expected = format!(
        "`{}` exists and is not a socket hookvisor owns",
        decoy.display()
    );
    assert!(serving.log().contains(&expected), "{}", serving.log());
    assert!(serving.stop().success(), "{}", serving.log());
    // Not at start, not at shutdown.
    assert_eq!(std::fs::read_to_string(&decoy).unwrap(), "precious");
}

#[test]
fn socket_flag_naming_a_regular_file_is_refused_and_the_file_kept() {
    let dir = TestDir::new();
    let notes = dir.join("notes.txt");
    std::fs::write(&notes, "keep me").unwrap();
    let config = write_config(&dir, &dir.join("h.sock"), &dir.join("run"), "", "");
    let notes_arg = notes.display().to_string();
    both_refuse(
        &config,
        &["--socket", &notes_arg],
        &[&format!(
            "`{notes_arg}` exists and is not a socket hookvisor owns"
        )],
    );
    assert_eq!(std::fs::read_to_string(&notes).unwrap(), "keep me");
}

#[test]
fn the_host_socket_may_not_be_the_lock_file() {
    let dir = TestDir::new();
    let runtime = dir.join("run");
    let lock = runtime.join("hookvisor.lock");
    let config = write_config(&dir, &lock, &runtime, "", "");
    let text = both_refuse(&config, &[], &[&format!("{config}:2:"), "lock file"]);
    assert!(text.contains("key `socket`"), "{text}");

    // The same through --socket, with the lock in place: refused, and the lock kept.
    std::fs::create_dir(&runtime).unwrap();
    set_mode(&runtime, 0o700);
    std::fs::write(&lock, "").unwrap();
    let config = write_config(&dir, &dir.join("h.sock"), &runtime, "", "");
    let lock_arg = lock.display().to_string();
    both_refuse(&config, &["--socket", &lock_arg], &["lock file"]);
    assert!(lock.is_file());
}

// ---- item 9: check-config refuses what serve refuses ----

#[test]
fn a_socket_path_whose_staging_name_does_not_fit_is_refused_by_both() {
    let dir = TestDir::new();
    // A 100-byte path in a 98-byte directory: the path fits, `DIR/.hvNNNNNNN` (109) does not.
    let base = dir.path().display().to_string();
    let parent = format!("{base}/{}", "d".repeat(97 - base.len()));
    let socket = PathBuf::from(format!("{parent}/s"));
    assert_eq!(socket.as_os_str().len(), 100);
    let config = write_config(&dir, &socket, &dir.join("run"), "", "");
    let run = run_bounded(&["check-config", "--config", &config], REFUSAL_LIMIT);
    assert_eq!(run.code(), Some(64), "{}", run.text());
    assert!(
        run.text().contains("shorten the directory"),
        "{}",
        run.text()
    );
    // Given with --socket instead, both commands refuse it as well.
    let good = write_config(&dir, &dir.join("h.sock"), &dir.join("run"), "", "");
    let socket_arg = socket.display().to_string();
    both_refuse(
        &good,
        &["--socket", &socket_arg],
        &["--socket", "shorten the directory"],
    );
    assert!(!Path::new(&parent).exists(), "nothing was created");
}

#[tokio::test]
async fn a_107_byte_socket_path_that_check_config_accepts_is_served() {
    let dir = TestDir::new();
    // A 96-byte directory and a 10-byte name: the staging path is exactly 107 bytes.
    let base = dir.path().display().to_string();
    let parent = format!("{base}/{}", "d".repeat(95 - base.len()));
    let socket = PathBuf::from(format!("{parent}/{}", "s".repeat(10)));
    assert_eq!(socket.as_os_str().len(), 107);
    let config = write_config(&dir, &socket, &dir.join("run"), "", "");
    let run = run_bounded(&["check-config", "--config", &config], REFUSAL_LIMIT);
    assert_eq!(run.code(), Some(0), "{}", run.text());
    let mut serving = Serving::start(&["serve", "--config", &config], &socket, dir.join("log"));
    assert_eq!(serving.verdict().await.outcome(), Outcome::Allow);
}

#[test]
fn a_command_that_cannot_run_is_refused_by_both() {
    let dir = TestDir::new();
    let not_executable = dir.join("plugin.txt");
    std::fs::write(&not_executable, "#!/bin/sh\n").unwrap();
    set_mode(&not_executable, 0o644);
    let cases = [
        (dir.join("missing-plugin"), "does not exist"),
        (dir.path().to_path_buf(), "is a directory"),
        (not_executable, "is not executable"),
    ];
    for (command, problem) in cases {
        let body = format!(
            "[[plugin]]\nname = \"p\"\ncommand = {}\n",
            toml_string(&command.display().to_string())
        );
        let config = write_config(&dir, &dir.join("h.sock"), &dir.join("run"), "", &body);
        both_refuse(
            &config,
            &[],
            &["plugin `p`", &command.display().to_string(), problem],
        );
        assert!(
            !dir.join("run").exists(),
            "{problem}: serve created the runtime dir"
        );
    }
}

#[test]
fn a_runtime_dir_owned_by_another_user_is_refused_by_both() {
    let dir = TestDir::new();
    let runtime = dir.join("run");
    std::fs::create_dir(&runtime).unwrap();
    set_mode(&runtime, 0o700);
    give_to_other_user(&runtime);
    let config = write_config(&dir, &dir.join("h.sock"), &runtime, "", "");
    both_refuse(
        &config,
        &[],
        &[&runtime.display().to_string(), "owned by uid 65534"],
    );
    assert_eq!(std::fs::metadata(&runtime).unwrap().uid(), OTHER_UID);
    assert_eq!(mode_of(&runtime), 0o700);
}

// ---- item 13: the configuration file and error messages ----

#[test]
fn config_from_dev_zero_is_refused_promptly() {
    for command in ["check-config", "serve"] {
        let run = run_bounded(&[command, "--config", "/dev/zero"], REFUSAL_LIMIT);
        assert_eq!(run.code(), Some(64), "{command}: {}", run.text());
        assert!(
            run.text()
                .contains("/dev/zero: the file is larger than 1 MiB"),
            "{}",
            run.text()
        );
        assert!(
            run.took < Duration::from_secs(5),
            "{command} took {:?}",
            run.took
        );
    }
}

#[test]
fn errors_print_their_cause_once() {
    // A configuration that is a directory: the OS's words appear once.
    let dir = TestDir::new();
    let path = dir.path().display().to_string();
    let text = both_refuse(&path, &[], &["cannot read", "Is a directory"]);
    assert_eq!(text.matches("Is a directory").count(), 1, "{text}");
}

#[tokio::test]
async fn a_serve_failure_prints_its_cause_once() {
    let first = Supervisor::start("").await;
    let dir = TestDir::new();
    let config = write_config(&dir, &dir.join("h.sock"), &first.runtime_dir(), "", "");
    let run = run_bounded(&["serve", "--config", &config], REFUSAL_LIMIT);
    assert_eq!(run.code(), Some(1), "{}", run.text());
    let cause = "another hookvisor is using the runtime directory";
    assert_eq!(run.stderr.matches(cause).count(), 1, "{}", run.stderr);
}

// ---- item 14: sharing the host socket with a group, tried by a second uid ----

/// Runs `probe-host SOCKET` as uid/gid 65534 with the given supplementary groups (`None`:
/// none at all); returns whether it got a verdict and what it printed.
fn probe_as_other_user(socket: &Path, groups: Option<&str>) -> (bool, String) {
    let mut command = Command::new("setpriv");
    command
        .arg(format!("--reuid={OTHER_UID}"))
        .arg(format!("--regid={OTHER_UID}"));
    match groups {
        Some(groups) => command.arg(format!("--groups={groups}")),
        None => command.arg("--clear-groups"),
    };
    let output = command
        .arg(fixture("probe-host"))
        .arg(socket)
        .stdin(Stdio::null())
        .output()
        .expect("running setpriv (util-linux)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Lets uid 65534 reach the socket's directory (TestDir's mode depends on the umask).
fn traversable(supervisor: &Supervisor) {
    set_mode(supervisor.dir(), 0o755);
}

#[tokio::test]
async fn a_0660_socket_outside_the_runtime_dir_serves_a_group_member_only() {
    let supervisor = Supervisor::builder("")
        .supervisor_key("socket_mode = \"0660\"")
        .start()
        .await;
    traversable(&supervisor);
    assert_eq!(
        mode_of(&supervisor.runtime_dir()),
        0o711,
        "the runtime dir stays unlistable"
    );
    let (ok, text) = probe_as_other_user(supervisor.socket(), Some("0"));
    assert!(ok, "a member of the socket's group gets a verdict: {text}");
    assert!(text.contains("outcome: OUTCOME_ALLOW"), "{text}");
    let (ok, text) = probe_as_other_user(supervisor.socket(), None);
    assert!(!ok, "another user outside the group is refused: {text}");
    assert!(text.contains("Permission denied"), "{text}");
}

#[tokio::test]
async fn the_default_0600_socket_refuses_a_group_member() {
    let supervisor = Supervisor::start("").await;
    traversable(&supervisor);
    let (ok, text) = probe_as_other_user(supervisor.socket(), Some("0"));
    assert!(!ok, "a group member must not reach a 0600 socket: {text}");
    assert!(text.contains("Permission denied"), "{text}");
}

#[test]
fn a_shared_socket_inside_the_runtime_dir_is_refused() {
    let dir = TestDir::new();
    let runtime = dir.join("run");
    let config = write_config(
        &dir,
        &runtime.join("h.sock"),
        &runtime,
        "socket_mode = \"0660\"",
        "",
    );
    both_refuse(
        &config,
        &[],
        &[
            "socket_mode \"0660\"",
            "runtime_dir = \"/run/hookvisor/plugins\"",
        ],
    );
}
