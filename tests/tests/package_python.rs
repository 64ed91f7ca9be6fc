//! The Python SDK outside the checkout, as a plugin author gets it: `plugin-sdk/python/package.sh`
//! builds the wheel into a temporary directory, a fresh virtual environment made from the
//! system's Python in another one installs that wheel and the starter (`examples/python/starter`,
//! copied there) the way the starter's README says, and `hookvisor conformance --cases
//! cases.jsonl` passes every check and every case. Nothing is inside the checkout and the sandbox
//! reads only the two directories, so a file the wheel lacks or a path into the clone fails.
//! Needs the repository's venv (`plugin-sdk/python/setup.sh`, for `build`), `/usr/bin/python3`
//! with `venv`, and PyPI (or pip's cache) for the SDK's dependencies.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{conformance, conformance_line, repo_root};
use hookvisor_tests::outside;

/// How long a step may take: installing downloads grpcio and protobuf when pip's cache lacks
/// them; with a warm cache each step takes seconds.
const STEP_DEADLINE: Duration = Duration::from_secs(300);

/// The system's Python: plugins run under uids of their own, which cannot reach a Python
/// installed under a home directory.
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

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

#[test]
fn the_python_starter_installs_from_the_wheel_and_passes_conformance() {
    let began = Instant::now();
    let root = repo_root();

    // The wheel, built by package.sh into a directory of its own.
    let dist = outside::dir();
    let mut package = Command::new(root.join("plugin-sdk/python/package.sh"));
    package.arg(dist.path());
    let stdout = outside::run(package, &root, STEP_DEADLINE);
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
    let home = outside::dir();
    let venv = home.join("venv");
    let mut make_venv = world_readable(Path::new(SYSTEM_PYTHON));
    make_venv.args(["-m", "venv"]).arg(&venv);
    outside::run(make_venv, home.path(), STEP_DEADLINE);
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
    outside::run(install, &starter, STEP_DEADLINE);

    // The SDK the plugin imports is the venv's copy (from /, so no directory stands in for it).
    let mut locate = world_readable(&python);
    locate.args([
        "-c",
        "import hookvisor_plugin; print(hookvisor_plugin.__file__)",
    ]);
    let found = outside::run(locate, Path::new("/"), STEP_DEADLINE);
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
