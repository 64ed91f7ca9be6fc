//! `hookvisor bench --tracing`: what `[tracing]` costs (contract §9: at most 10 µs of CPU per
//! verdict at N = 4). The same N = 4 load (one trusted policy and three hooks, 16 calls in
//! flight) through a supervisor with tracing off and one exporting every span to a local OTLP
//! sink, in alternating blocks; each supervisor's CPU time (all its threads, the exporter's
//! included) per verdict. The sink is a minimal OTLP/gRPC server here (raw HTTP/2: it reads each
//! `TraceService/Export` and answers an empty `ExportTraceServiceResponse`), so its own work is
//! not counted.
//!
//! Keys: `tracing_cpu_us_per_verdict_off`, `tracing_cpu_us_per_verdict_on`,
//! `tracing_cpu_us_per_verdict_added` (on less off), `tracing_p50_us_off`, `tracing_p50_us_on`,
//! `tracing_exports`, `tracing_export_kib` (what reached the sink).

#[allow(clippy::wildcard_imports)]
use super::*;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};

/// What the sink received.
#[derive(Default)]
struct Received {
    exports: AtomicU64,
    bytes: AtomicU64,
}

/// Runs the comparison and sets its figures.
pub(super) async fn tracing(run: &Run<'_>, figures: &mut Figures) -> anyhow::Result<()> {
    let Run {
        bin_dir,
        plugin,
        dir,
        request,
        plan,
        options,
    } = *run;
    let received = Arc::new(Received::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding the OTLP sink")?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let sink = tokio::spawn(sink(listener, received.clone()));
    let plugins = via_config(plugin, 4);
    let traced = format!("[tracing]\notlp_endpoint = \"{endpoint}\"\n\n{plugins}");
    let off = Supervisor::start(bin_dir, dir, "tracing-off", &plugins, options).await?;
    let on = Supervisor::start(bin_dir, dir, "tracing-on", &traced, options).await?;
    let measured = compare([&off, &on], request, plan).await;
    off.stop().await;
    on.stop().await;
    sink.abort();
    let [off, on] = measured?;
    figures.set("tracing_cpu_us_per_verdict_off", round2(off.cpu_us()));
    figures.set("tracing_cpu_us_per_verdict_on", round2(on.cpu_us()));
    figures.set(
        "tracing_cpu_us_per_verdict_added",
        round2(on.cpu_us() - off.cpu_us()),
    );
    figures.set("tracing_p50_us_off", off.p50);
    figures.set("tracing_p50_us_on", on.p50);
    let exports = received.exports.load(Ordering::Relaxed);
    figures.set("tracing_exports", exports);
    figures.set(
        "tracing_export_kib",
        received.bytes.load(Ordering::Relaxed) / 1024,
    );
    if exports == 0 {
        bail!("no span reached the OTLP sink at {endpoint}: tracing was not measured");
    }
    Ok(())
}

/// One supervisor's figures, summed over its blocks.
#[derive(Default)]
struct Side {
    cpu: Duration,
    verdicts: u64,
    p50: f64,
}

impl Side {
    fn cpu_us(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.verdicts.max(1) as f64
    }
}

/// Sequential calls to each (p50), then the load in blocks that alternate between the two, so
/// that whatever else the machine does weighs on both alike.
async fn compare(
    supervisors: [&Supervisor; 2],
    request: &ToolCallRequest,
    plan: &Plan,
) -> anyhow::Result<[Side; 2]> {
    let mut sides = [Side::default(), Side::default()];
    let mut connected = Vec::new();
    for (supervisor, side) in supervisors.iter().zip(&mut sides) {
        let client = supervisor.client().await?;
        sequential(&client, request, plan.warmup, Some(Outcome::Allow)).await?;
        let samples = sequential(&client, request, plan.sequential, Some(Outcome::Allow)).await?;
        side.p50 = micros(percentile(&samples, 0.5));
        connected.push(clients(1, || supervisor.client()).await?);
    }
    let owned = request.clone();
    let one = move |client| allowed(client, owned.clone());
    // The same total time as the other N = 4 figures' window, per side, in blocks.
    let blocks = plan.blocks.max(2) as u32;
    let window = (plan.window * 2 / blocks).max(Duration::from_millis(100));
    for _ in 0..blocks {
        for ((supervisor, side), clients) in supervisors.iter().zip(&mut sides).zip(&connected) {
            let before = cpu_time(supervisor.pid());
            let load = throughput(16, window, clients, one.clone()).await;
            side.cpu += cpu_time(supervisor.pid()).saturating_sub(before);
            if load.ok == 0 || load.errors > 0 {
                bail!("{} verdicts, {} errors", load.ok, load.errors);
            }
            side.verdicts += load.ok;
        }
    }
    Ok(sides)
}

/// Accepts OTLP/gRPC exports until aborted: reads each request and answers an empty message
/// with `grpc-status: 0`.
async fn sink(listener: tokio::net::TcpListener, received: Arc<Received>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let received = received.clone();
        tokio::spawn(async move {
            let Ok(mut connection) = h2::server::handshake(stream).await else {
                return;
            };
            while let Some(Ok((request, respond))) = connection.accept().await {
                tokio::spawn(export(request, respond, received.clone()));
            }
        });
    }
}

async fn export(
    request: http::Request<h2::RecvStream>,
    mut respond: h2::server::SendResponse<Bytes>,
    received: Arc<Received>,
) {
    let mut body = request.into_body();
    while let Some(Ok(chunk)) = body.data().await {
        received
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    received.exports.fetch_add(1, Ordering::Relaxed);
    let mut response = http::Response::new(());
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    let Ok(mut send) = respond.send_response(response, false) else {
        return;
    };
    // An empty message: not compressed, length 0.
    let _ = send.send_data(Bytes::from_static(&[0, 0, 0, 0, 0]), false);
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from_static("0"));
    let _ = send.send_trailers(trailers);
}
