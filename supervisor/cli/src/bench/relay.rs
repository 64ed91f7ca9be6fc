//! The relay: the floor hookvisor's topology is held to (issue 21 §3), and its part of
//! `hookvisor bench`.
//!
//! The relay (`hookvisor bench-relay`, hidden) is a separate process of the same shape as
//! `hookvisor serve`: a tonic server of `hookvisor.v1.Hooks/BeforeToolCall` on a Unix socket,
//! and for each call one raw HTTP/2 unary call per plugin on `h2` (one connection per plugin,
//! kept open; the plugin request encoded once per call and shared): the policy first, then the
//! hooks concurrently in the same task, or all at once (`--speculative`). It checks nothing but
//! each answer's `grpc-status`, parses no JSON, merges nothing, and answers allow with the
//! params it was given. Whatever hookvisor costs above it is what its checks, deadlines, merge,
//! trace, metrics and audit cost.
//!
//! The relay calls the very plugin processes of the `hookvisor serve` it is compared with (one
//! policy, N − 1 hooks, sandboxed as hookvisor runs them), on connections of its own, so the
//! two differ only in what sits between the host and the plugins. The bench measures both at
//! the same N in alternating blocks, so that outside load hits both alike (`floor_*`,
//! `ratio_floor_*`).

#[allow(clippy::wildcard_imports)]
use super::*;

use bytes::{BufMut, Bytes, BytesMut};
use h2::client::SendRequest;
use hookvisor_proto::v1::hooks_server::{Hooks, HooksServer};
use hookvisor_proto::v1::{
    HostReport, HostReportReceipt, SessionCreateRequest, SessionCreatedNotice,
    SessionCreatedReceipt, SessionVerdict, ToolCallVerdict,
};
use http::{Method, StatusCode, header};
use tokio::net::{UnixListener, UnixStream};
use tonic::{Request, Response, Status};

/// Targets of issue 21 §3 (the table's second part): hookvisor against the relay.
pub(super) const TARGETS: &[(&str, &str, f64)] = &[
    ("ratio_floor_p50_n1", "≤", 1.10),
    ("ratio_floor_p50_n4", "≤", 1.10),
    ("ratio_floor_p50_n8", "≤", 1.10),
    ("ratio_floor_rps_n4", "≥", 0.9),
    ("ratio_floor_cpu_n4", "≤", 1.3),
    ("ratio_spec_p50_n4", "≤", 0.85),
];

/// The command line of the hidden `hookvisor bench-relay`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Options {
    /// The host-facing socket to serve `hookvisor.v1.Hooks` on.
    #[arg(long)]
    pub socket: PathBuf,
    /// The policy plugin's socket (called first).
    #[arg(long)]
    pub policy: PathBuf,
    /// The hook plugins' sockets (called concurrently after the policy).
    #[arg(long, value_delimiter = ',')]
    pub hooks: Vec<PathBuf>,
    /// Call the hooks at the same time as the policy (two round trips instead of three).
    #[arg(long)]
    pub speculative: bool,
    /// Threads of the async runtime (default one, as `hookvisor serve`'s default).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub worker_threads: Option<u32>,
}

// ---------------------------------------------------------------------------------------------
// the relay process

/// The plugin method, as hookvisor's own client calls it (authority `localhost`).
const BEFORE_TOOL_CALL: &str = "http://localhost/hookvisor.v1.Plugin/BeforeToolCall";

/// Serves the relay until SIGTERM or SIGINT.
pub(crate) async fn serve(options: Options) -> anyhow::Result<()> {
    let policy = open(&options.policy).await?;
    let mut hooks = Vec::with_capacity(options.hooks.len());
    for socket in &options.hooks {
        hooks.push(open(socket).await?);
    }
    let _ = std::fs::remove_file(&options.socket);
    let listener = UnixListener::bind(&options.socket)
        .with_context(|| format!("cannot bind {}", options.socket.display()))?;
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(stream, _)| stream);
        Some((accepted, listener))
    });
    let relay = Relay {
        policy,
        hooks,
        speculative: options.speculative,
    };
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let stop = async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    tonic::transport::Server::builder()
        .http2_keepalive_interval(None)
        .add_service(HooksServer::new(relay))
        .serve_with_incoming_shutdown(incoming, stop)
        .await?;
    let _ = std::fs::remove_file(&options.socket);
    Ok(())
}

/// One HTTP/2 connection to a plugin, with the settings hookvisor's `plugin::link` uses (hyper's
/// client defaults), driven by a task of its own.
async fn open(socket: &Path) -> anyhow::Result<SendRequest<Bytes>> {
    let stream = UnixStream::connect(socket)
        .await
        .with_context(|| format!("cannot connect to {}", socket.display()))?;
    let (send, connection) = h2::client::Builder::new()
        .initial_window_size(2 * 1024 * 1024)
        .initial_connection_window_size(5 * 1024 * 1024)
        .max_frame_size(16 * 1024)
        .max_header_list_size(16 * 1024)
        .max_send_buffer_size(1024 * 1024)
        .initial_max_send_streams(100)
        .enable_push(false)
        .handshake::<_, Bytes>(stream)
        .await
        .with_context(|| format!("HTTP/2 handshake with {}", socket.display()))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(send)
}

struct Relay {
    policy: SendRequest<Bytes>,
    hooks: Vec<SendRequest<Bytes>>,
    speculative: bool,
}

#[tonic::async_trait]
impl Hooks for Relay {
    async fn before_tool_call(
        &self,
        request: Request<ToolCallRequest>,
    ) -> Result<Response<ToolCallVerdict>, Status> {
        let request = request.into_inner();
        let call = BeforeToolCallRequest {
            tool_name: request.tool_name,
            params_json: request.params_json,
            context: request.context,
            session_metadata_json: String::new(),
            deadline_ms: 5000,
        };
        let body = encode(&call);
        let hooks = futures_util::future::try_join_all(
            self.hooks.iter().map(|send| unary(send, body.clone())),
        );
        if self.speculative {
            futures_util::future::try_join(unary(&self.policy, body), hooks).await?;
        } else {
            unary(&self.policy, body).await?;
            hooks.await?;
        }
        Ok(Response::new(ToolCallVerdict {
            outcome: Outcome::Allow.into(),
            params_json: call.params_json,
            ..Default::default()
        }))
    }

    async fn before_session_create(
        &self,
        _: Request<SessionCreateRequest>,
    ) -> Result<Response<SessionVerdict>, Status> {
        Err(Status::unimplemented(
            "the relay serves BeforeToolCall only",
        ))
    }

    async fn session_created(
        &self,
        _: Request<SessionCreatedNotice>,
    ) -> Result<Response<SessionCreatedReceipt>, Status> {
        Err(Status::unimplemented(
            "the relay serves BeforeToolCall only",
        ))
    }

    async fn report_host(
        &self,
        _: Request<HostReport>,
    ) -> Result<Response<HostReportReceipt>, Status> {
        Err(Status::unimplemented(
            "the relay serves BeforeToolCall only",
        ))
    }
}

/// `message` as one uncompressed gRPC message.
fn encode(message: &BeforeToolCallRequest) -> Bytes {
    let len = message.encoded_len();
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(u32::try_from(len).unwrap_or(u32::MAX));
    // A BytesMut grows as needed: encoding cannot run out of room.
    let _ = message.encode(&mut buf);
    buf.freeze()
}

/// One unary call: HEADERS and DATA out, the body drained, the status checked (fail closed: an
/// answer that is not `grpc-status: 0` fails the relay's call).
async fn unary(send: &SendRequest<Bytes>, body: Bytes) -> Result<(), Status> {
    let failed = |e: h2::Error| Status::unavailable(format!("relay: {e}"));
    let head = http::Request::builder()
        .method(Method::POST)
        .uri(http::Uri::from_static(BEFORE_TOOL_CALL))
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .header("grpc-timeout", "5000000u")
        .header(header::USER_AGENT, "hookvisor")
        .body(())
        .map_err(|e| Status::internal(e.to_string()))?;
    let mut send = send.clone().ready().await.map_err(failed)?;
    let (response, mut stream) = send.send_request(head, false).map_err(failed)?;
    stream.send_data(body, true).map_err(failed)?;
    let (parts, mut body) = response.await.map_err(failed)?.into_parts();
    let ok = |headers: &http::HeaderMap| {
        headers
            .get("grpc-status")
            .map(|status| status.as_bytes() == b"0")
    };
    if parts.status != StatusCode::OK || ok(&parts.headers) == Some(false) {
        return Err(Status::unavailable("relay: a plugin did not answer OK"));
    }
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(failed)?;
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.map_err(failed)?;
    if trailers.as_ref().and_then(ok) != Some(true) && ok(&parts.headers) != Some(true) {
        return Err(Status::unavailable("relay: a plugin did not answer OK"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// the relay in the benchmark

/// A relay process, calling plugins it does not own.
struct RelayProcess {
    child: Child,
    pid: i32,
    socket: PathBuf,
}

impl RelayProcess {
    /// Starts `hookvisor bench-relay` on `plugins` (the policy's socket first).
    async fn start(
        bin_dir: &Path,
        dir: &Path,
        name: &str,
        plugins: &[PathBuf],
        speculative: bool,
        options: &Options_,
    ) -> anyhow::Result<RelayProcess> {
        let Some((policy, hooks)) = plugins.split_first() else {
            bail!("the relay needs at least a policy plugin");
        };
        let socket = dir.join(format!("{name}.sock"));
        let mut command = Command::new(bin_dir.join("hookvisor"));
        command
            .arg("bench-relay")
            .arg("--socket")
            .arg(&socket)
            .arg("--policy")
            .arg(policy);
        if !hooks.is_empty() {
            let hooks: Vec<String> = hooks.iter().map(|p| p.display().to_string()).collect();
            command.arg("--hooks").arg(hooks.join(","));
        }
        if speculative {
            command.arg("--speculative");
        }
        if let Some(threads) = options.worker_threads {
            command.arg("--worker-threads").arg(threads.to_string());
        }
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start hookvisor bench-relay")?;
        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(30);
        while connect_channel(&socket).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("hookvisor bench-relay exited before serving: {status}");
            }
            if Instant::now() > deadline {
                bail!("hookvisor bench-relay did not start serving within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(RelayProcess { child, pid, socket })
    }

    async fn stop(mut self) {
        super::supervisor::terminate(self.pid, &mut self.child).await;
    }
}

/// The sockets of the plugins of the supervisor `name` started with [`via_config`] (the policy
/// first): `<runtime_dir>/<plugin>/<instance>.sock`, one instance each while nothing restarts.
fn plugin_sockets(dir: &Path, name: &str, n: usize) -> anyhow::Result<Vec<PathBuf>> {
    let runtime_dir = dir.join(format!("{name}.run"));
    let names = std::iter::once("policy".to_owned()).chain((1..n).map(|i| format!("hook-{i}")));
    names
        .map(|plugin| {
            let folder = runtime_dir.join(&plugin);
            let sockets: Vec<PathBuf> = std::fs::read_dir(&folder)
                .with_context(|| format!("reading {}", folder.display()))?
                .flatten()
                .map(|entry| entry.path())
                .filter(|path| path.extension().is_some_and(|e| e == "sock"))
                .collect();
            match sockets.as_slice() {
                [one] => Ok(one.clone()),
                _ => bail!(
                    "expected one socket of plugin '{plugin}' in {}, found {}",
                    folder.display(),
                    sockets.len()
                ),
            }
        })
        .collect()
}

/// `hookvisor bench`'s options (this module's own `Options` is the relay's command line).
type Options_ = super::Options;

/// One side of an alternating measurement: what it is called in the figures, its host socket
/// and the pid whose CPU is counted.
struct Side {
    key: &'static str,
    client: HooksClient<Channel>,
    socket: PathBuf,
    pid: i32,
}

impl Side {
    async fn of(key: &'static str, socket: &Path) -> anyhow::Result<Side> {
        // The process serving the socket, from the listener's credentials.
        let stream = UnixStream::connect(socket).await?;
        let pid = stream.peer_cred()?.pid().unwrap_or(0);
        drop(stream);
        Ok(Side {
            key,
            client: HooksClient::new(connect_channel(socket).await?),
            socket: socket.to_path_buf(),
            pid,
        })
    }
}

/// Whether this hookvisor accepts the speculative configuration (`check-config`): `Err` says
/// why not (until the speculative mode lands, an unknown key).
async fn speculative_accepted(bin_dir: &Path, dir: &Path, program: &Path) -> Result<(), String> {
    let config = dir.join("floor-check.toml");
    let text = format!(
        "[supervisor]\nsocket = {}\nruntime_dir = {}\nstate_dir = {}\n\n{}",
        toml_string(&dir.join("floor-check.sock")),
        toml_string(&dir.join("floor-check.run")),
        toml_string(&dir.join("floor-check.state")),
        via_config_speculative(program, 4)
    );
    std::fs::write(&config, text).map_err(|e| format!("writing {}: {e}", config.display()))?;
    let output = Command::new(bin_dir.join("hookvisor"))
        .arg("check-config")
        .arg("--config")
        .arg(&config)
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|e| format!("cannot run hookvisor check-config: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let said = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    Err(format!(
        "check-config refuses the speculative configuration: {said}"
    ))
}

/// The relay against hookvisor at each N of `--plugins`, in alternating blocks: p50 and p99
/// for every N; at N = 4 also throughput and CPU per verdict at concurrency 16 (alternating
/// windows) and the speculative forms.
pub(super) async fn floor(run: &super::Run<'_>, figures: &mut Figures) -> anyhow::Result<()> {
    let super::Run {
        bin_dir,
        plugin: program,
        dir,
        request,
        plan,
        options,
    } = *run;
    let speculative = speculative_accepted(bin_dir, dir, program).await;
    if let Err(why) = &speculative {
        figures.set("floor_spec_missing", why.clone());
    }
    for &n in &options.plugins {
        if !options.json {
            eprintln!("bench: floor: the relay against hookvisor with {n} plugin(s), alternating");
        }
        let spec = n == 4;
        let name = format!("floor-n{n}");
        let mut supervisors =
            vec![Supervisor::start(bin_dir, dir, &name, &via_config(program, n), options).await?];
        if spec && speculative.is_ok() {
            let config = via_config_speculative(program, n);
            supervisors
                .push(Supervisor::start(bin_dir, dir, "floor-spec-n4", &config, options).await?);
        }
        let plugins = plugin_sockets(dir, &name, n)?;
        let mut relays = vec![
            RelayProcess::start(
                bin_dir,
                dir,
                &format!("relay-n{n}"),
                &plugins,
                false,
                options,
            )
            .await?,
        ];
        if spec {
            relays.push(
                RelayProcess::start(bin_dir, dir, "relay-spec-n4", &plugins, true, options).await?,
            );
        }
        let mut sides = vec![
            Side::of("floor", &relays[0].socket).await?,
            Side::of("floor_via", &dir.join(format!("{name}.sock"))).await?,
        ];
        if spec {
            sides.push(Side::of("floor_spec", &relays[1].socket).await?);
            if supervisors.len() > 1 {
                sides.push(Side::of("floor_via_spec", &dir.join("floor-spec-n4.sock")).await?);
            }
        }
        let measured = measure(&sides, n, request, plan, figures).await;
        for relay in relays {
            relay.stop().await;
        }
        for supervisor in supervisors {
            supervisor.stop().await;
        }
        measured?;
        figures.ratio(
            &format!("ratio_floor_p50_n{n}"),
            &format!("floor_via_n{n}_p50_us"),
            &format!("floor_n{n}_p50_us"),
        );
    }
    figures.ratio("ratio_floor_rps_n4", "floor_via_n4_rps", "floor_n4_rps");
    figures.ratio(
        "ratio_floor_cpu_n4",
        "floor_via_n4_cpu_us_per_verdict",
        "floor_n4_cpu_us_per_verdict",
    );
    figures.ratio(
        "ratio_spec_p50_n4",
        "floor_via_spec_n4_p50_us",
        "floor_n4_p50_us",
    );
    figures.ratio(
        "ratio_floor_spec_p50_n4",
        "floor_via_spec_n4_p50_us",
        "floor_spec_n4_p50_us",
    );
    Ok(())
}

async fn measure(
    sides: &[Side],
    n: usize,
    request: &ToolCallRequest,
    plan: &Plan,
    figures: &mut Figures,
) -> anyhow::Result<()> {
    for side in sides {
        sequential(&side.client, request, plan.warmup, Some(Outcome::Allow))
            .await
            .with_context(|| format!("{} at N = {n}", side.key))?;
    }
    // Sequential latency, in blocks that alternate between the sides.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); sides.len()];
    for _ in 0..plan.blocks {
        for (side, samples) in sides.iter().zip(&mut samples) {
            samples
                .extend(sequential(&side.client, request, plan.block, Some(Outcome::Allow)).await?);
        }
    }
    for (side, samples) in sides.iter().zip(&samples) {
        figures.set(
            &format!("{}_n{n}_p50_us", side.key),
            micros(percentile(samples, 0.5)),
        );
        figures.set(
            &format!("{}_n{n}_p99_us", side.key),
            micros(percentile(samples, 0.99)),
        );
    }
    if n != 4 {
        return Ok(());
    }
    // Throughput and CPU at concurrency 16 on one connection (as `via` runs it), the sequential
    // relay and hookvisor in alternating windows.
    let owned = request.clone();
    let one = move |client| allowed(client, owned.clone());
    let rounds = plan.blocks.div_ceil(3);
    let window = plan.window / 2;
    let mut totals = [(0u64, 0u64, Duration::ZERO, Duration::ZERO); 2];
    for _ in 0..rounds {
        for (side, total) in sides.iter().zip(&mut totals) {
            let clients = [HooksClient::new(connect_channel(&side.socket).await?)];
            let before = cpu_time(side.pid);
            let load = throughput(16, window, &clients, one.clone()).await;
            total.0 += load.ok;
            total.1 += load.errors;
            total.2 += load.elapsed;
            total.3 += cpu_time(side.pid).saturating_sub(before);
        }
    }
    for (side, (ok, errors, elapsed, cpu)) in sides.iter().zip(totals) {
        let key = |what: &str| format!("{}_n4_{what}", side.key);
        figures.set(
            &key("rps"),
            (ok as f64 / elapsed.as_secs_f64().max(1e-9)).round(),
        );
        if errors > 0 {
            figures.set(&key("errors"), errors);
        }
        if ok > 0 {
            figures.set(
                &key("cpu_us_per_verdict"),
                round2(cpu.as_secs_f64() * 1e6 / ok as f64),
            );
        }
    }
    Ok(())
}
