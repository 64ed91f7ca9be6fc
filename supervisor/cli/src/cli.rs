//! The command line: `serve`, `check-config` and `demo`. Configuration errors, and everything
//! [`hookvisor::files::preflight::preflight`] refuses, are reported in one line and exit with 64 (EX_USAGE)
//! before any runtime starts; `check-config` and `serve` refuse exactly the same things, and
//! `serve` refuses a socket passed in that [`crate::activation`] will not take.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use std::os::fd::AsFd;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use hookvisor::files::config::Config;
use hookvisor::serve::handover::{self, CheckArgs, Resumed};
use hookvisor::serve::server::{Control, HostSocket, Reload, Upgrade};

use crate::output::{self, out};

/// Exit status for a bad configuration or command line (sysexits' EX_USAGE).
pub(crate) const EX_USAGE: u8 = 64;

/// Runs an AI-agent host's policy plugins out of process.
#[derive(Debug, Parser)]
#[command(name = "hookvisor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start the plugins and serve hookvisor.v1.Hooks on the host socket until SIGTERM/SIGINT.
    Serve {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The host socket, overriding [supervisor] socket.
        #[arg(long)]
        socket: Option<PathBuf>,
        /// The log's format: `text` (one human line per event) or `json` (one JSON object per
        /// event, with its span's fields, e.g. the call's request_id).
        #[arg(long, value_enum, default_value_t = LogFormat::Text)]
        log_format: LogFormat,
    },
    /// Load and validate a configuration and check the files and directories it names, as
    /// `serve` would before starting plugins: prints `ok`, or the error (exit status 64).
    CheckConfig {
        /// The configuration file (TOML).
        #[arg(long)]
        config: PathBuf,
        /// The host socket, overriding [supervisor] socket (checked as `serve --socket` would).
        #[arg(long)]
        socket: Option<PathBuf>,
    },
    /// Run the example plugins and a scripted set of calls showing every outcome; needs no
    /// configuration.
    Demo,
    /// Measure what hookvisor costs on this machine against one direct gRPC call to a plugin
    /// (and HashiCorp go-plugin's call, when built): latency, throughput, CPU per verdict,
    /// fail-fast, crash to block, spawn to ready, memory. Needs the example plugins next to
    /// hookvisor (`make bench` builds everything and runs it).
    Bench(crate::bench::Options),
    /// The minimal relay `hookvisor bench` measures hookvisor against (started by the bench).
    #[command(hide = true)]
    BenchRelay(crate::bench::relay::Options),
    /// Run a plugin command the way `serve` would and check the contract from outside, one line
    /// per check: the magic cookie, readiness, Describe, health, a battery of inputs for each
    /// registered hook, cancelled calls, SIGTERM. Exit status 0 only when every check passes.
    Conformance(crate::conformance::Options),
    /// Ask a running supervisor one question, as a host would, and print the verdict with its
    /// per-plugin trace. Exit status: 0 allowed, 2 blocked, 3 approval required, 1 error.
    Call(crate::call::Options),
    /// Show every plugin of a running supervisor: state, pid, restarts, calls, blocks,
    /// failures, latency, heartbeat, registrations (and, for shadow plugins, disagreements).
    Status(crate::admin::Target),
    /// Make a running supervisor reload its configuration file (as SIGHUP does) and say how it
    /// went: exit 0 when the new configuration runs, 1 when it was refused (the old one stays).
    Reload(crate::admin::Target),
    /// Replace the running supervisor with the binary installed where it was started from, in
    /// place (same pid), as SIGUSR2 does: no host call is refused and every plugin keeps its
    /// process. Exit 0 when the new binary serves; 1 when it was refused (the old one serves on).
    Upgrade(crate::admin::Target),
    /// Replace a plugin's process (SIGTERM, grace, SIGKILL, then a new one at once; a
    /// quarantined plugin is started again). Exit 0 when the new instance is ready.
    Restart {
        /// The plugin's configured name.
        plugin: String,
        #[command(flatten)]
        target: crate::admin::Target,
    },
}

/// The entry point of the `hookvisor` binary; `resumed` when an upgrade started this image.
pub(crate) fn main(resumed: Option<Resumed>) -> ExitCode {
    let parsed = match &resumed {
        Some(resumed) => Cli::try_parse_from(&resumed.args),
        None => Cli::try_parse(),
    };
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EX_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli.command {
        Command::CheckConfig { config, socket } => match load_checked(&config, socket.as_deref()) {
            Ok(_) => {
                out!("ok");
                if output::output_lost() {
                    ExitCode::FAILURE
                } else {
                    ExitCode::SUCCESS
                }
            }
            Err(e) => {
                output::error_line(format_args!("{e}"));
                ExitCode::from(EX_USAGE)
            }
        },
        Command::Serve {
            config,
            socket,
            log_format,
        } => {
            let config_path = config;
            let upgrade = upgrade_target(resumed.as_ref());
            let loaded = match resumed {
                // The socket was handed over (LISTEN_FDS was taken by the first image).
                Some(resumed) => {
                    let path = resumed.activated.then(|| resumed.host_path.clone());
                    load(&config_path, socket.as_deref(), path.as_deref())
                        .map(|config| (config, HostSocket::HandedOver(Box::new(resumed)), path))
                }
                None => crate::activation::host_socket().and_then(|activated| {
                    let path = activated.as_ref().map(|a| a.path.as_path());
                    let config = load(&config_path, socket.as_deref(), path)?;
                    Ok(match activated {
                        Some(activated) => (
                            config,
                            HostSocket::Activated(activated.listener),
                            Some(activated.path),
                        ),
                        None => (config, HostSocket::Bind, None),
                    })
                }),
            };
            let (config, host, activated_path) = match loaded {
                Ok(loaded) => loaded,
                Err(e) => {
                    output::error_line(format_args!("hookvisor: {e}"));
                    return ExitCode::from(EX_USAGE);
                }
            };
            init_logging_as("info", log_format);
            let source = (config_path, socket);
            let reload = move || load(&source.0, source.1.as_deref(), activated_path.as_deref());
            // `worker_threads` is read once: a reload cannot change the runtime.
            let flavour = match config.supervisor.worker_threads {
                1 => Runtime::CurrentThread,
                n => Runtime::MultiThread(Some(n as usize)),
            };
            run_on(flavour, serve(config, host, Box::new(reload), upgrade))
        }
        Command::Demo => {
            init_logging("error");
            run(crate::demo::run())
        }
        Command::Bench(options) => {
            init_logging("error");
            if options.plugins.iter().any(|&n| n == 0 || n > 64) {
                output::error_line(format_args!(
                    "hookvisor: --plugins takes counts from 1 to 64"
                ));
                return ExitCode::from(EX_USAGE);
            }
            // One thread for the client, as a host's own client would typically be: on a small
            // machine a multi-thread client adds its own wake-ups to every figure (a direct call
            // measured 190-240 µs from a multi-thread client, 45-160 µs from this one).
            run_on(Runtime::CurrentThread, crate::bench::run(options))
        }
        Command::BenchRelay(options) => {
            init_logging("error");
            let flavour = match options.worker_threads {
                Some(n) if n > 1 => Runtime::MultiThread(Some(n as usize)),
                _ => Runtime::CurrentThread,
            };
            run_on(flavour, crate::bench::relay::serve(options))
        }
        Command::Conformance(options) => {
            // The plugin's own output is logged as `serve` logs it (stderr lines are warnings).
            init_logging("warn");
            run_for_status(crate::conformance::run(options))
        }
        Command::Call(options) => {
            init_logging("error");
            run_for_status(crate::call::run(options))
        }
        Command::Status(target) => {
            init_logging("error");
            run_for_status(crate::admin::status(target))
        }
        Command::Reload(target) => {
            init_logging("error");
            run_for_status(crate::admin::reload(target))
        }
        Command::Upgrade(target) => {
            init_logging("error");
            run_for_status(crate::admin::upgrade(target))
        }
        Command::Restart { plugin, target } => {
            init_logging("error");
            run_for_status(crate::admin::restart(target, plugin))
        }
    }
}

/// The installed binary an upgrade executes, and the command line after the program: the path
/// this process was started by (`argv[0]` when it names one, as systemd's `ExecStart=` does, so
/// a symbolic link an upgrade moves is followed anew), else the executable's own path.
fn upgrade_target(resumed: Option<&Resumed>) -> (PathBuf, Vec<std::ffi::OsString>) {
    let args: Vec<std::ffi::OsString> = match resumed {
        Some(resumed) => resumed.args.clone(),
        None => std::env::args_os().collect(),
    };
    let named = args
        .first()
        .map(PathBuf::from)
        .filter(|p| p.components().count() > 1)
        .and_then(|p| std::path::absolute(p).ok());
    let binary = named
        .or_else(|| std::env::current_exe().ok())
        .unwrap_or_else(|| PathBuf::from("/proc/self/exe"));
    (binary, args.into_iter().skip(1).collect())
}

/// `hookvisor __hookvisor-upgrade-check …`: this binary, about to be executed in place of a
/// running supervisor, says which hand-over versions it reads once it has loaded the
/// configuration that supervisor runs (as `check-config`); exit 64 with the error otherwise.
pub(crate) fn upgrade_check(check: CheckArgs) -> ExitCode {
    let Ok(Cli {
        command: Command::Serve { config, socket, .. },
    }) = Cli::try_parse_from(&check.args)
    else {
        output::error_line(format_args!(
            "hookvisor: the upgrade check expects a `serve` command line"
        ));
        return ExitCode::from(EX_USAGE);
    };
    match load(&config, socket.as_deref(), check.activated.as_deref()) {
        Ok(_) => {
            out!("{} {}", handover::CHECK_REPLY, handover::VERSION);
            ExitCode::SUCCESS
        }
        Err(e) => {
            output::error_line(format_args!("hookvisor: {e}"));
            ExitCode::from(EX_USAGE)
        }
    }
}

/// The configuration `serve` would run, with `--socket` applied, checked by
/// [`hookvisor::files::preflight::preflight`] (which creates nothing).
fn load_checked(path: &Path, socket: Option<&Path>) -> Result<Config, String> {
    load(path, socket, None)
}

/// Loads the configuration and runs the preflight `serve` will run: for a host socket passed
/// in by systemd (`activated`, its path) the configured socket path is not checked, the
/// activated one is ([`check_activated_socket`]).
fn load(path: &Path, socket: Option<&Path>, activated: Option<&Path>) -> Result<Config, String> {
    let mut config = Config::load(path).map_err(|e| e.to_string())?;
    if let Some(socket) = socket {
        let absolute = std::path::absolute(socket)
            .map_err(|e| format!("--socket {}: {e}", socket.display()))?;
        if let Some(problem) = hookvisor::files::layout::socket_path_problem(&absolute) {
            return Err(format!("--socket {}: {problem}", socket.display()));
        }
        config.supervisor.socket = absolute;
    }
    match activated {
        Some(socket) => check_activated_socket(&config, socket)?,
        None => hookvisor::files::preflight::preflight(&config).map_err(|e| e.to_string())?,
    }
    hookvisor::plugin::sandbox::preflight(&config).map_err(|e| e.to_string())?;
    for plugin in &config.plugins {
        if let Some(remote) = &plugin.remote {
            hookvisor::plugin::remote::check(remote)
                .map_err(|e| format!("plugin `{}`: {e}", plugin.name))?;
        }
    }
    Ok(config)
}

/// The preflight for a host socket passed in at `socket`: the socket is hookvisor's user's and
/// its directories may be written by no one but root and hookvisor's user (unless sticky), as
/// for a configured one ([`hookvisor::files::preflight::preflight_activated_at`]); then the runtime
/// directory and the plugins as always.
fn check_activated_socket(config: &Config, socket: &Path) -> Result<(), String> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    match std::fs::symlink_metadata(socket) {
        Ok(meta) => {
            let ours = nix::unistd::geteuid().as_raw();
            if meta.file_type().is_socket() && meta.uid() != ours {
                return Err(format!(
                    "the socket passed in (LISTEN_FDS), {}, is owned by uid {}, not by \
                     hookvisor's uid {ours}: its owner could change who may call it; refusing \
                     to start (set SocketUser= to hookvisor's user)",
                    socket.display(),
                    meta.uid()
                ));
            }
        }
        // Unlinked since it was bound: only the directories on its way are left to check.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(format!(
                "the socket passed in (LISTEN_FDS), {}: cannot inspect it: {e}",
                socket.display()
            ));
        }
    }
    hookvisor::files::preflight::preflight_activated_at(config, socket).map_err(|e| e.to_string())
}

/// The log's format (`serve --log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum LogFormat {
    /// One human line per event.
    Text,
    /// One JSON object per event.
    Json,
}

fn init_logging(default: &str) {
    init_logging_as(default, LogFormat::Text);
}

fn init_logging_as(default: &str, format: LogFormat) {
    let filter =
        EnvFilter::try_from_env("HOOKVISOR_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == LogFormat::Json {
        // The journal reads JSON lines as they are (no priority prefix: the level is a field).
        // JSON lines are for programs: serde_json escapes C0 in them and leaves the rest.
        builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else if stderr_is_the_journal() {
        // The journal keeps its own timestamps and reads the level from a `<N>` prefix
        // (sd-daemon(3)), so `journalctl -p warning` filters hookvisor's lines and its
        // plugins' alike.
        builder
            .with_ansi(false)
            .fmt_fields(EscapedFields::default())
            .event_format(JournalPrefix(
                tracing_subscriber::fmt::format().without_time(),
            ))
            .init();
    } else {
        // Colour only on a terminal: a file gets plain lines.
        builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .fmt_fields(EscapedFields::default())
            .init();
    }
}

/// Whether stderr is the stream systemd connected to the journal: `JOURNAL_STREAM` holds its
/// `DEVICE:INODE` (systemd.exec(5)), which a redirected stderr would not match.
fn stderr_is_the_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Some((device, inode)) = stream.to_str().and_then(|s| s.split_once(':')) else {
        return false;
    };
    let stderr = std::io::stderr()
        .as_fd()
        .try_clone_to_owned()
        .map(std::fs::File::from);
    stderr
        .and_then(|f| f.metadata())
        .is_ok_and(|meta| device.parse() == Ok(meta.dev()) && inode.parse() == Ok(meta.ino()))
}

/// Log fields with their control characters escaped ([`output::escaped`]): a field may hold a
/// plugin's words (its version, say), and tracing-subscriber escapes only the message.
#[derive(Default)]
struct EscapedFields(tracing_subscriber::fmt::format::DefaultFields);

impl<'writer> FormatFields<'writer> for EscapedFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: Writer<'writer>,
        fields: R,
    ) -> std::fmt::Result {
        let mut text = String::new();
        self.0.format_fields(Writer::new(&mut text), fields)?;
        writer.write_str(&output::escaped(&text))
    }
}

/// A log line with the sd-daemon priority prefix of its level (`<3>` error … `<7>` debug).
struct JournalPrefix<F>(F);

impl<S, N, F> FormatEvent<S, N> for JournalPrefix<F>
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let priority = match *event.metadata().level() {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            _ => 7,
        };
        write!(writer, "<{priority}>")?;
        self.0.format_event(ctx, writer, event)
    }
}

/// The async runtime a command runs on.
#[derive(Debug, Clone, Copy)]
enum Runtime {
    /// Everything on the calling thread.
    CurrentThread,
    /// Work-stealing workers: this many, or one per core.
    MultiThread(Option<usize>),
}

/// Runs a command whose work decides its exit status, on one thread. When stdout goes away
/// (a reader that closed its end) the work stops at its next await and the status says so
/// ([`output::stopped_status`]); work that finished keeps its own status, as its output was all
/// written or refused by its reader.
fn run_for_status(work: impl std::future::Future<Output = anyhow::Result<ExitCode>>) -> ExitCode {
    let mut status = ExitCode::FAILURE;
    let code = run_on(Runtime::CurrentThread, async {
        tokio::select! {
            done = work => status = done?,
            () = output::stopped() => status = output::stopped_status(),
        }
        Ok(())
    });
    if code != ExitCode::SUCCESS {
        code
    } else if output::output_lost() {
        ExitCode::FAILURE
    } else {
        status
    }
}

fn run(work: impl std::future::Future<Output = anyhow::Result<()>>) -> ExitCode {
    run_on(Runtime::MultiThread(None), work)
}

fn run_on(
    flavour: Runtime,
    work: impl std::future::Future<Output = anyhow::Result<()>>,
) -> ExitCode {
    let built = match flavour {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        Runtime::MultiThread(workers) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            if let Some(workers) = workers {
                builder.worker_threads(workers);
            }
            builder.enable_all().build()
        }
    };
    let runtime = match built {
        Ok(runtime) => runtime,
        Err(e) => {
            output::error_line(format_args!(
                "hookvisor: cannot start the async runtime: {e}"
            ));
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            output::error_line(format_args!("hookvisor: {}", one_line(&e)));
            ExitCode::FAILURE
        }
    }
}

/// `e` and its causes joined with `: `, each cause once: a cause whose text its parent's message
/// already holds (an error that formats its source, like tonic's) is not repeated.
fn one_line(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out.replace(['\n', '\r'], " ")
}

async fn serve(
    config: Config,
    host: HostSocket,
    load: Box<dyn Fn() -> Result<Config, String> + Send + Sync>,
    (binary, args): (PathBuf, Vec<std::ffi::OsString>),
) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let reload = Reload {
        requests: reload_requests()?,
        load,
    };
    let upgrade = Upgrade {
        requests: upgrade_requests()?,
        binary,
        args,
    };
    let control = Control {
        reload: Some(reload),
        status: Some(status_requests()?),
        upgrade: Some(upgrade),
    };
    // Every handler is in place: signals an upgrade held across its execve come in now.
    handover::unhold_signals();
    crate::systemd::start_watchdog();
    hookvisor::serve::server::serve_on(config, host, control, shutdown, &crate::systemd::Systemd)
        .await?;
    Ok(())
}

/// One message per SIGHUP: a request to reload the configuration.
fn reload_requests() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    signal_requests(tokio::signal::unix::SignalKind::hangup(), |()| {
        tracing::info!("SIGHUP received: reloading the configuration");
    })
}

/// One message per SIGUSR2: a request to upgrade in place.
fn upgrade_requests() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    signal_requests(tokio::signal::unix::SignalKind::user_defined2(), |()| {
        tracing::info!("SIGUSR2 received: upgrading in place");
    })
}

/// One message per SIGUSR1: a request to log every plugin's state and record.
fn status_requests() -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    signal_requests(tokio::signal::unix::SignalKind::user_defined1(), |()| {})
}

/// One message per `kind` of signal received (after `received` ran); a request already
/// waiting covers the ones that come before it is taken.
fn signal_requests(
    kind: tokio::signal::unix::SignalKind,
    received: impl Fn(()) + Send + 'static,
) -> std::io::Result<tokio::sync::mpsc::Receiver<()>> {
    let mut signals = tokio::signal::unix::signal(kind)?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while signals.recv().await.is_some() {
            received(());
            if let Err(tokio::sync::mpsc::error::TrySendError::Closed(())) = tx.try_send(()) {
                return;
            }
        }
    });
    Ok(rx)
}

/// Resolves on the first SIGTERM or SIGINT.
pub(crate) fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = int.recv() => tracing::info!("SIGINT received"),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("binding /run/x.sock: {0}")]
    struct FormatsItsSource(#[source] std::io::Error);

    #[test]
    fn a_cause_is_printed_once() {
        let cause = std::io::Error::other("address in use");
        let e = anyhow::Error::new(FormatsItsSource(cause)).context("the host API server failed");
        assert_eq!(
            one_line(&e),
            "the host API server failed: binding /run/x.sock: address in use"
        );
    }
}
