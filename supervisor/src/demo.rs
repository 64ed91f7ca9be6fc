//! `hookvisor demo` (placeholder while the demo is written).

/// Runs the demo.
pub async fn run() -> anyhow::Result<()> {
    anyhow::bail!("the demo is not written yet")
}
