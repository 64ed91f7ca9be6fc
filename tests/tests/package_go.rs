//! The Go SDK outside the checkout, as a plugin author gets it: `plugin-sdk/go/package.sh` copies
//! the module into a temporary directory, the starter (`examples/go/starter`) is copied into
//! another one with its `replace` pointed at that copy, `go build` builds it there, and
//! `hookvisor conformance --cases cases.jsonl` passes every check and every case. Neither copy is
//! inside the checkout, so a file the module's copy lacks or a path into the clone fails the build.
//! Needs `go` on `PATH` (Go ≥ 1.26) and the Go module proxy, or a module cache holding what
//! the SDK's `go.sum` pins (the machine's own cache is used).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{conformance, conformance_line, repo_root};
use hookvisor_tests::outside;

/// How long packaging or building may take: with a cold build cache, compiling gRPC takes about a
/// minute on 2 cores; with a warm one (after `make sdks`), a second or two.
const BUILD_DEADLINE: Duration = Duration::from_secs(300);

/// The `go` on `PATH`.
fn go() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("go"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no `go` on PATH: install Go 1.26 or newer"))
}

/// The SDK's module path, from its go.mod (the one place it is set).
fn sdk_module() -> String {
    let go_mod = repo_root().join("plugin-sdk/go/go.mod");
    let text = std::fs::read_to_string(&go_mod)
        .unwrap_or_else(|err| panic!("reading {}: {err}", go_mod.display()));
    text.lines()
        .find_map(|line| line.strip_prefix("module "))
        .map(|module| module.trim().to_owned())
        .unwrap_or_else(|| panic!("no module line in {}", go_mod.display()))
}

/// Copies the directory `from` into `to` (which exists), files and subdirectories.
fn copy_dir(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap_or_else(|err| panic!("{}: {err}", from.display())) {
        let entry = entry.expect("directory entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            std::fs::create_dir(&target).expect("creating a directory");
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target)
                .unwrap_or_else(|err| panic!("copying {}: {err}", entry.path().display()));
        }
    }
}

#[test]
fn the_go_starter_builds_from_the_packaged_sdk_and_passes_conformance() {
    let began = Instant::now();
    let root = repo_root();

    // The SDK, packaged the way a user without the clone's layout gets it.
    let packaged = outside::dir();
    let mut package = Command::new(root.join("plugin-sdk/go/package.sh"));
    package.arg(packaged.path());
    let stdout = outside::run(package, &root, BUILD_DEADLINE);
    let sdk = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        sdk.starts_with(packaged.path()) && sdk.join("go.mod").is_file(),
        "package.sh printed {stdout:?}, not the copy's directory"
    );

    // The starter, copied as its README says, its replace pointed at the copy.
    let plugin = outside::dir();
    copy_dir(&root.join("examples/go/starter"), plugin.path());
    let mut replace = Command::new(go());
    replace.args([
        "mod",
        "edit",
        &format!("-replace={}={}", sdk_module(), sdk.display()),
    ]);
    outside::run(replace, plugin.path(), BUILD_DEADLINE);
    let binary = plugin.join("starter");
    let mut build = Command::new(go());
    build
        .args(["build", "-trimpath", "-o"])
        .arg(&binary)
        .arg(".")
        // The module proxy may be asked (and the machine's module cache is used); no workspace
        // file above the temp dir may change what is built.
        .env("GOFLAGS", "-mod=mod -buildvcs=false")
        .env("GOWORK", "off");
    outside::run(build, plugin.path(), BUILD_DEADLINE);

    // Every check of the contract and every case of the starter's file.
    let cases = plugin.join("cases.jsonl");
    let case_count = std::fs::read_to_string(&cases)
        .expect("reading cases.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .count();
    let cases = cases.display().to_string();
    let binary = binary.display().to_string();
    let (passed, report) = conformance(&["--cases", &cases], &[&binary]);
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
    eprintln!("packaged, built and checked in {:?}", began.elapsed());
}
