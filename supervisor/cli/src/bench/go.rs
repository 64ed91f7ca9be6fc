//! The go-plugin comparison of `hookvisor bench`: the host of `bench/goplugin`, driven over its
//! stdin.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// go-plugin

/// The go-plugin host of `bench/goplugin`, driven over its stdin: `run N SIZE` answers with the
/// latencies of N sequential calls through go-plugin.
pub(super) struct GoPlugin {
    child: std::sync::Mutex<(std::process::Child, BufReader<std::process::ChildStdout>)>,
}

impl GoPlugin {
    pub(super) async fn start(dir: &Path) -> Result<GoPlugin, String> {
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

    pub(super) fn ask(&self, command: &str) -> Result<Value, String> {
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
    pub(super) fn run(&self, n: usize, size: usize) -> anyhow::Result<Vec<Duration>> {
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
