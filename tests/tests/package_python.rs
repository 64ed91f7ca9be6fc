//! The Python SDK outside the checkout, as a plugin author gets it: `plugin-sdk/python/package.sh`
//! builds the wheel into a temporary directory, a fresh virtual environment made from the
//! system's Python in another one installs that wheel and the starter (`examples/python/starter`,
//! copied there) the way the starter's README says, and `hookvisor conformance --cases
//! cases.jsonl` passes every check and every case. Nothing is inside the checkout and the sandbox
//! reads only the two directories, so a file the wheel lacks or a path into the clone fails.
//! Needs the repository's venv (`plugin-sdk/python/setup.sh`, for `build`), `/usr/bin/python3`
//! with `venv`, and PyPI (or pip's cache) for the SDK's dependencies.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{TestDir, conformance, conformance_line, repo_root};
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// How long a step may take: installing downloads grpcio and protobuf when pip's cache lacks
/// them; with a warm cache each step takes seconds.
const STEP_DEADLINE: Duration = Duration::from_secs(300);

/// The system's Python: plugins run under uids of their own, which cannot reach a Python
/// installed under a home directory.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

/// Runs `command` in `dir` in a process group of its own, waiting at most `limit` (then the
/// group is killed); panics unless it exits 0. Returns its stdout.
fn run(mut command: Command, dir: &Path, limit: Duration) -> String {
    let what = format!("{command:?} in {}", dir.display());
    let mut child = command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|err| panic!("starting {what}: {err}"));
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break status;
        }
        if began.elapsed() > limit {
            let pid = i32::try_from(child.id()).expect("pid");
            let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
            let _ = child.wait();
            panic!(
                "{what} still running after {limit:?}; stderr:\n{}",
                stderr.join().unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let (stdout, stderr) = (
        stdout.join().unwrap_or_default(),
        stderr.join().unwrap_or_default(),
    );
    assert!(
        status.success(),
        "{what}: {status}\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    eprintln!("{what}: {:?}", began.elapsed());
    stdout
}

/// `program ARGS` under umask 022, so that what it creates (the venv, the installed packages) is
/// readable by the plugin's own uid whatever umask the test runs with; and without the variables
/// that would let the checkout's Python packages stand in for the installed ones.
fn world_readable(program: &Path) -> Command {
    let mut command = Command::new("/bin/sh");
    command
        .args(["-c", "umask 022 && exec \"$@\"", "sh"])
        .arg(program)
        .env_remove("PYTHONPATH")
        .env_remove("PYTHONHOME")
        .env_remove("VIRTUAL_ENV");
    command
}

/// Copies the files of `from` into `to` (which exists), readable by every uid; a starter has no
/// subdirectories, and anything that is not a regular file (a venv made in the example's own
/// folder, caches) is not part of it.
fn copy_files(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|err| panic!("{}: {err}", from.display())) {
        let entry = entry.expect("directory entry");
        if !entry.file_type().expect("file type").is_file() {
            continue;
        }
        let target = to.join(entry.file_name());
        std::fs::copy(entry.path(), &target)
            .unwrap_or_else(|err| panic!("copying {}: {err}", entry.path().display()));
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644))
            .expect("chmod 0644");
    }
}

/// A directory under the system temp dir, outside the checkout, that another uid may enter
/// (conformance runs the plugin under a uid of its own when run as root).
fn outside_dir() -> TestDir {
    let dir = TestDir::new();
    assert!(
        !dir.path().starts_with(repo_root()),
        "{} is inside the checkout; set TMPDIR elsewhere",
        dir.path().display()
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 0755");
    dir
}

#[test]
fn the_python_starter_installs_from_the_wheel_and_passes_conformance() {
    let began = Instant::now();
    let root = repo_root();

    // The wheel, built by package.sh into a directory of its own.
    let dist = outside_dir();
    let mut package = Command::new(root.join("plugin-sdk/python/package.sh"));
    package.arg(dist.path());
    let stdout = run(package, &root, STEP_DEADLINE);
    let wheel = stdout
        .lines()
        .map(|line| PathBuf::from(line.trim()))
        .find(|path| path.extension().is_some_and(|ext| ext == "whl"))
        .unwrap_or_else(|| panic!("package.sh printed no wheel: {stdout:?}"));
    assert!(
        wheel.starts_with(dist.path()) && wheel.is_file(),
        "package.sh printed {stdout:?}, not a wheel in {}",
        dist.path().display()
    );

    // A fresh venv from the system's Python, and the starter copied beside it; then the
    // README's install: the wheel by its path (the SDK is not on PyPI yet) and the starter's
    // own dependencies.
    let home = outside_dir();
    let venv = home.join("venv");
    let mut make_venv = world_readable(Path::new(SYSTEM_PYTHON));
    make_venv.args(["-m", "venv"]).arg(&venv);
    run(make_venv, home.path(), STEP_DEADLINE);
    let starter = home.join("starter");
    std::fs::create_dir(&starter).expect("creating the starter's directory");
    std::fs::set_permissions(&starter, std::fs::Permissions::from_mode(0o755)).expect("chmod 0755");
    copy_files(&root.join("examples/python/starter"), &starter);
    let python = venv.join("bin/python");
    let mut install = world_readable(&python);
    install
        .args(["-m", "pip", "install", "--disable-pip-version-check"])
        .args(["--no-input", "--quiet"])
        .arg(&wheel)
        .arg(&starter);
    run(install, &starter, STEP_DEADLINE);

    // The SDK the plugin imports is the venv's copy (from /, so no directory stands in for it).
    let mut locate = world_readable(&python);
    locate.args([
        "-c",
        "import hookvisor_plugin; print(hookvisor_plugin.__file__)",
    ]);
    let found = run(locate, Path::new("/"), STEP_DEADLINE);
    assert!(
        Path::new(found.trim()).starts_with(&venv),
        "hookvisor_plugin imported from {found:?}, not from {}",
        venv.display()
    );

    // Every check of the contract and every case of the starter's file, the sandbox reading
    // only the venv and the starter.
    let cases = starter.join("cases.jsonl");
    let case_count = std::fs::read_to_string(&cases)
        .expect("reading cases.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    let [cases, venv, starter, python, script] = [
        cases,
        venv,
        starter.clone(),
        python,
        starter.join("plugin.py"),
    ]
    .map(|path| path.display().to_string());
    let (passed, report) = conformance(
        &["--cases", &cases, "--read", &venv, "--read", &starter],
        &[&python, &script],
    );
    assert!(passed, "{report}");
    assert!(
        !report.contains("FAIL") && report.contains(", 0 failed"),
        "{report}"
    );
    for check in ["cookie", "ready", "describe", "health", "cancel", "sigterm"] {
        assert!(
            conformance_line(&report, check).starts_with("pass  "),
            "{report}"
        );
    }
    let ok = report
        .lines()
        .filter(|l| l.starts_with("ok    line "))
        .count();
    assert_eq!(ok, case_count, "every case of {cases} passes: {report}");
    eprintln!("packaged, installed and checked in {:?}", began.elapsed());
}
