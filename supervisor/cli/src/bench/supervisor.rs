//! `hookvisor bench`'s runs through a real `hookvisor serve`: the configurations it is given,
//! latency and load through it, and the time from a plugin's crash to the block.

#[allow(clippy::wildcard_imports)]
use super::*;

// ---------------------------------------------------------------------------------------------
// the supervisor

/// `hookvisor serve` started as a child with a generated configuration.
pub(super) struct Supervisor {
    child: Child,
    pid: i32,
    socket: PathBuf,
    log: PathBuf,
}

impl Supervisor {
    pub(super) async fn start(
        bin_dir: &Path,
        dir: &Path,
        name: &str,
        plugins: &str,
        options: &Options,
    ) -> anyhow::Result<Supervisor> {
        let socket = dir.join(format!("{name}.sock"));
        let runtime_dir = dir.join(format!("{name}.run"));
        let state_dir = dir.join(format!("{name}.state"));
        let config = dir.join(format!("{name}.toml"));
        let log = dir.join(format!("{name}.log"));
        let threads = options
            .worker_threads
            .map(|n| format!("worker_threads = {n}\n"))
            .unwrap_or_default();
        let text = format!(
            "[supervisor]\nsocket = {}\nruntime_dir = {}\nstate_dir = {}\n{threads}\n{plugins}",
            toml_string(&socket),
            toml_string(&runtime_dir),
            toml_string(&state_dir)
        );
        std::fs::write(&config, text).context("writing the bench configuration")?;
        let child = Command::new(bin_dir.join("hookvisor"))
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .env("HOOKVISOR_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .kill_on_drop(true)
            .spawn()
            .context("cannot start hookvisor serve")?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let supervisor = Supervisor {
            child,
            pid,
            socket,
            log,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while supervisor.client().await.is_err() {
            if Instant::now() > deadline {
                bail!(
                    "hookvisor serve did not start serving within 30 s: {}",
                    std::fs::read_to_string(&supervisor.log).unwrap_or_default()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(supervisor)
    }

    pub(super) async fn client(&self) -> anyhow::Result<HooksClient<Channel>> {
        Ok(HooksClient::new(connect_channel(&self.socket).await?))
    }

    /// The supervisor's process id (for its CPU time).
    pub(super) fn pid(&self) -> i32 {
        self.pid
    }

    pub(super) async fn stop(mut self) {
        terminate(self.pid, &mut self.child).await;
    }

    /// The pid of the plugin process of the instance running now: the child of the supervisor's
    /// child (its reaper).
    pub(super) fn plugin_pid(&self) -> Option<i32> {
        children(self.pid).into_iter().flat_map(children).next()
    }
}

pub(super) fn plugin_table(program: &Path, name: &str, stage: &str, extra: &str) -> String {
    let trusted = if stage == "policy" {
        "trusted = true\n"
    } else {
        ""
    };
    format!(
        "[[plugin]]\nname = \"{name}\"\ncommand = {}\n{trusted}{extra}env = {{ HOOKVISOR_ALLOW_ALL_STAGE = \"{stage}\" }}\n\n",
        toml_string(program)
    )
}

/// One trusted policy and `n - 1` hooks.
pub(super) fn via_config(program: &Path, n: usize) -> String {
    let mut text = plugin_table(program, "policy", "policy", "");
    for i in 1..n {
        text.push_str(&plugin_table(program, &format!("hook-{i}"), "hook", ""));
    }
    text
}

/// [`via_config`] with the hooks asked at the same time as the policy stage (`speculative`),
/// and the policy declared as one that never rewrites params, as `check-config` requires of
/// every trusted policy before a speculative hook.
pub(super) fn via_config_speculative(program: &Path, n: usize) -> String {
    let mut text = plugin_table(program, "policy", "policy", "rewrites_params = false\n");
    for i in 1..n {
        let name = format!("hook-{i}");
        text.push_str(&plugin_table(
            program,
            &name,
            "hook",
            "speculative = true\n",
        ));
    }
    text
}

/// A required (trusted) plugin that never starts, and is not tried again while the benchmark
/// runs: "known to be down", so the figure is the fail-fast path itself, not restarts beside it.
/// (The lines before the first `[[plugin]]` belong to `[supervisor]`.)
pub(super) fn down_config() -> String {
    let program = ["/bin/false", "/usr/bin/false"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
        .unwrap_or("/bin/false");
    format!(
        "restart_delay_ms = 600000\nrestart_delay_max_ms = 600000\n\n\
         [[plugin]]\nname = \"down\"\ncommand = \"{program}\"\ntrusted = true\n"
    )
}

/// A policy that answers the tool `slow` after a minute.
pub(super) fn crash_config(program: &Path) -> String {
    format!(
        "[[plugin]]\nname = \"crashes\"\ncommand = {}\ntrusted = true\ntimeout_ms = 120000\n\
         env = {{ HOOKVISOR_ALLOW_ALL_STAGE = \"policy\", HOOKVISOR_ALLOW_ALL_SLOW_MS = \"60000\" }}\n",
        toml_string(program)
    )
}

pub(super) async fn via(
    supervisor: &Supervisor,
    n: usize,
    request: &ToolCallRequest,
    plan: &Plan,
    goplugin: Option<&GoPlugin>,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = supervisor.client().await?;
    sequential(&client, request, plan.warmup, Some(Outcome::Allow)).await?;
    let key = |what: &str| format!("n{n}_{what}");

    // Sequential latency; for N = 1 in blocks that alternate with go-plugin's, so that outside
    // load hits both alike.
    let mut samples = Vec::new();
    match goplugin {
        Some(go) => {
            let mut go_samples = Vec::new();
            go.run(plan.warmup, request.encoded_len())?;
            for _ in 0..plan.blocks {
                samples
                    .extend(sequential(&client, request, plan.block, Some(Outcome::Allow)).await?);
                go_samples.extend(go.run(plan.block, request.encoded_len())?);
            }
            figures.set("goplugin_p50_us", micros(percentile(&go_samples, 0.5)));
            figures.set("goplugin_p99_us", micros(percentile(&go_samples, 0.99)));
        }
        None => {
            samples = sequential(&client, request, plan.sequential, Some(Outcome::Allow)).await?
        }
    }
    figures.set(&key("p50_us"), micros(percentile(&samples, 0.5)));
    figures.set(&key("p99_us"), micros(percentile(&samples, 0.99)));
    figures.set(&key("p999_us"), micros(percentile(&samples, 0.999)));
    if n == 1 || n == 4 {
        // One call at a time after a gap, as an agent's tool calls come (`spaced_*`).
        let mut spaced = Vec::with_capacity(plan.spaced);
        for _ in 0..plan.spaced {
            tokio::time::sleep(SPACED_GAP).await;
            spaced.extend(sequential(&client, request, 1, Some(Outcome::Allow)).await?);
        }
        figures.set(
            &format!("spaced_n{n}_p50_us"),
            micros(percentile(&spaced, 0.5)),
        );
        figures.set(
            &format!("spaced_n{n}_p99_us"),
            micros(percentile(&spaced, 0.99)),
        );
    }

    let owned = request.clone();
    let one = move |client| allowed(client, owned.clone());
    for concurrency in [16usize, 64] {
        // At most 16 calls per connection (the per-connection limit is 64 by default).
        let clients = clients(concurrency.div_ceil(16), || supervisor.client()).await?;
        let rss = RssSampler::start(supervisor.pid);
        let cpu_before = cpu_time(supervisor.pid);
        let load = throughput(concurrency, plan.window, &clients, one.clone()).await;
        let cpu = cpu_time(supervisor.pid).saturating_sub(cpu_before);
        let peak = rss.stop().await;
        let suffix = if concurrency == 16 {
            String::new()
        } else {
            format!("_c{concurrency}")
        };
        figures.set(&key(&format!("rps{suffix}")), load.rps().round());
        if load.errors > 0 {
            figures.set(&key(&format!("errors{suffix}")), load.errors);
        }
        if concurrency == 16 && load.ok > 0 {
            figures.set(
                &key("cpu_us_per_verdict"),
                round2(cpu.as_secs_f64() * 1e6 / load.ok as f64),
            );
        }
        if n == 8 && concurrency == 64 {
            figures.set("rss_mib_n8", round2(peak as f64 / 1024.0));
        }
    }
    Ok(())
}

pub(super) async fn crash_to_block(
    supervisor: &Supervisor,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    let client = supervisor.client().await?;
    let fast = tool_call(64);
    let mut slow = fast.clone();
    slow.tool_name = "slow".into();
    let mut times = Vec::new();
    for _ in 0..plan.crashes {
        // Ready: a fast call is allowed.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let verdict = client
                .clone()
                .before_tool_call(fast.clone())
                .await?
                .into_inner();
            if verdict.outcome() == Outcome::Allow {
                break;
            }
            if Instant::now() > deadline {
                bail!("the crash plugin never became ready");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let Some(pid) = supervisor.plugin_pid() else {
            bail!("cannot find the crash plugin's process");
        };
        let mut in_flight = client.clone();
        let slow = slow.clone();
        let call = tokio::spawn(async move {
            let verdict = in_flight.before_tool_call(slow).await;
            (Instant::now(), verdict)
        });
        // Setup, not synchronisation: give the call time to reach the plugin.
        tokio::time::sleep(Duration::from_millis(100)).await;
        let killed = Instant::now();
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
        let (answered, verdict) = call.await?;
        let verdict = verdict?.into_inner();
        if verdict.outcome() != Outcome::Block {
            bail!("a call to a killed plugin was not blocked: {verdict:?}");
        }
        times.push(answered.saturating_duration_since(killed));
    }
    figures.set(
        "crash_to_block_ms",
        round2(percentile(&times, 0.5).as_secs_f64() * 1e3),
    );
    Ok(())
}

/// Stops a child the bench started as a service stops: SIGTERM, then SIGKILL after 10 s.
pub(super) async fn terminate(pid: i32, child: &mut Child) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    );
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
}
