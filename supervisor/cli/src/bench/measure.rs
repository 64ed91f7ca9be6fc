//! What `hookvisor bench` measures with: sequential calls, concurrent load, percentiles, the CPU
//! time and resident memory of a process tree.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// measuring

/// `n` calls one after another; each verdict must be `expect` (when given).
pub(super) async fn sequential(
    client: &HooksClient<Channel>,
    request: &ToolCallRequest,
    n: usize,
    expect: Option<Outcome>,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(n);
    let mut client = client.clone();
    for _ in 0..n {
        let started = Instant::now();
        let verdict = client.before_tool_call(request.clone()).await?.into_inner();
        samples.push(started.elapsed());
        if let Some(expect) = expect
            && verdict.outcome() != expect
        {
            bail!("expected {expect:?}, got {verdict:?}");
        }
    }
    Ok(samples)
}

/// One call of `request` for [`throughput`]: an error unless the verdict is an allow (its
/// reason then says why not).
pub(super) async fn allowed(
    mut client: HooksClient<Channel>,
    request: ToolCallRequest,
) -> Result<(), tonic::Status> {
    let verdict = client.before_tool_call(request).await?.into_inner();
    if verdict.outcome() == Outcome::Allow {
        Ok(())
    } else {
        Err(tonic::Status::internal(format!(
            "not allowed: {}",
            verdict.block_reason
        )))
    }
}

pub(super) async fn clients<C, F, Fut>(n: usize, connect: F) -> anyhow::Result<Vec<C>>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<C>>,
{
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(connect().await?);
    }
    Ok(out)
}

pub(super) struct Load {
    pub(super) ok: u64,
    pub(super) errors: u64,
    pub(super) elapsed: Duration,
}

impl Load {
    pub(super) fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// `concurrency` tasks calling `one` in a loop for `window`, spread over `clients`.
pub(super) async fn throughput<C, F, Fut>(
    concurrency: usize,
    window: Duration,
    clients: &[C],
    one: F,
) -> Load
where
    C: Clone + Send + 'static,
    F: Fn(C) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Result<(), tonic::Status>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let ok = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            let (stop, ok, errors, one) = (stop.clone(), ok.clone(), errors.clone(), one.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match one(client.clone()).await {
                        Ok(()) => ok.fetch_add(1, Ordering::Relaxed),
                        Err(_) => errors.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(window).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        let _ = task.await;
    }
    Load {
        ok: ok.load(Ordering::Relaxed),
        errors: errors.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
    }
}

pub(super) fn percentile(samples: &[Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

pub(super) fn micros(d: Duration) -> f64 {
    round2(d.as_secs_f64() * 1e6)
}

/// The CPU time of every thread of `pid` so far.
pub(super) fn cpu_time(pid: i32) -> Duration {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Duration::ZERO;
    };
    let nanos: u64 = tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|stat| stat.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    Duration::from_nanos(nanos)
}

pub(super) fn children(pid: i32) -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|task| std::fs::read_to_string(task.path().join("children")).ok())
        .flat_map(|text| {
            text.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// Samples a process's resident memory every 50 ms; `stop` gives the peak in KiB.
pub(super) struct RssSampler {
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<u64>,
}

impl RssSampler {
    pub(super) fn start(pid: i32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let task = tokio::spawn(async move {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak.max(rss_kib(pid))
        });
        RssSampler { stop, task }
    }

    pub(super) async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.task.await.unwrap_or(0)
    }
}

pub(super) fn rss_kib(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
