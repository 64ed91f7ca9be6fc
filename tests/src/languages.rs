//! Where the plugins written in other languages are, once `make sdks` (each SDK's `setup.sh`)
//! has built them: the repository venv's Python, the Go binaries in `target/go/`, Node and the
//! compiled TypeScript. Each lookup fails, never skips, saying how to build what is missing.

use std::path::PathBuf;

use crate::harness::{PluginToml, repo_root};

/// How to build every language's plugins.
const SETUP: &str = "run `make sdks` (the README's test command does)";

/// A plugin command: the program and its arguments.
#[derive(Debug, Clone)]
pub struct Command {
    /// The executable.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// `inherit_env` entries it needs (e.g. `PATH` for a `#!/usr/bin/env node` script).
    pub inherit_env: Vec<String>,
    /// What its sandbox must let it read: its installation (a virtual environment, the SDK,
    /// `node_modules`), outside the system's directories.
    pub read: Vec<PathBuf>,
}

impl Command {
    /// The `[[plugin]]` table running it as `name`.
    pub fn plugin(&self, name: &str) -> PluginToml {
        let args: Vec<String> = self
            .args
            .iter()
            .map(|a| crate::harness::toml_string(a))
            .collect();
        let mut toml =
            PluginToml::program(name, &self.program).key(&format!("args = [{}]", args.join(", ")));
        if !self.inherit_env.is_empty() {
            let vars: Vec<String> = self
                .inherit_env
                .iter()
                .map(|v| crate::harness::toml_string(v))
                .collect();
            toml = toml.key(&format!("inherit_env = [{}]", vars.join(", ")));
        }
        if !self.read.is_empty() {
            let paths: Vec<String> = self
                .read
                .iter()
                .map(|p| crate::harness::toml_string(&p.display().to_string()))
                .collect();
            toml = toml.sandbox(&format!("read = [{}]", paths.join(", ")));
        }
        toml
    }

    /// `hookvisor conformance` options giving it the same `read` list.
    pub fn conformance_args(&self) -> Vec<String> {
        self.read
            .iter()
            .flat_map(|p| ["--read".to_owned(), p.display().to_string()])
            .collect()
    }

    /// `hookvisor conformance` arguments after `--`.
    pub fn argv(&self) -> Vec<String> {
        let mut argv = vec![self.program.display().to_string()];
        argv.extend(self.args.iter().cloned());
        argv
    }
}

fn existing(path: PathBuf) -> PathBuf {
    assert!(path.exists(), "{} does not exist: {SETUP}", path.display());
    path
}

/// The repository venv's Python (with the SDK installed), `HOOKVISOR_TEST_PYTHON` if set.
pub fn python() -> PathBuf {
    let python = std::env::var_os("HOOKVISOR_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    existing(python)
}

/// A Python plugin script (relative to the repository root) run by the venv's Python.
pub fn python_plugin(script: &str, args: &[&str]) -> Command {
    let mut all = vec![existing(repo_root().join(script)).display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    let python = python();
    // The virtual environment (`bin/python` is in it) and the SDK it has installed editable.
    let venv = python
        .parent()
        .and_then(std::path::Path::parent)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_default();
    Command {
        program: python,
        args: all,
        inherit_env: Vec::new(),
        read: vec![venv, repo_root().join("plugin-sdk/python")],
    }
}

/// A Go plugin binary built into `target/go/`.
pub fn go_plugin(name: &str) -> Command {
    Command {
        program: existing(repo_root().join("target/go").join(name)),
        args: Vec::new(),
        inherit_env: Vec::new(),
        read: Vec::new(),
    }
}

/// The `node` on `PATH` (the tests run with the README's environment).
pub fn node() -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("node"))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("no `node` on PATH: install Node.js, then {SETUP}"))
}

/// A compiled TypeScript plugin (a `.js` file relative to the repository root) run by `node`.
pub fn node_plugin(script: &str, args: &[&str]) -> Command {
    let mut all = vec![existing(repo_root().join(script)).display().to_string()];
    all.extend(args.iter().map(|a| (*a).to_owned()));
    Command {
        program: node(),
        args: all,
        inherit_env: Vec::new(),
        // The example package and the SDK its `node_modules` links to.
        read: vec![
            repo_root().join("examples/typescript"),
            repo_root().join("plugin-sdk/typescript"),
        ],
    }
}
