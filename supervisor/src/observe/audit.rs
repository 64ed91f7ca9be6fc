//! The decision audit log (`[audit]`): one JSON line per verdict, written by a thread of its own
//! so that a slow or stuck disk never slows a decision. Lines go through a queue bounded in lines
//! (`queue_lines`) and in bytes ([`MAX_QUEUED_BYTES`]); when it is full a line is dropped and
//! counted (the count is in the metrics, in the supervisor's log,
//! and in the audit log itself as an `"event":"dropped"` line once the writer catches up). A
//! line the writer could not write (a full disk, a file size limit) is dropped and counted the
//! same way; the error is logged at most once a minute, and writing starts again on a line
//! boundary (a line cut short is ended there, so it never merges with the next).
//! SIGUSR1 reopens the file, for log rotation.
//!
//! A line: `ts`, `request_id`, `hook`, `tool`, `session_key`, `run_id`, `tool_call_id`,
//! `outcome`, `block_kind`, `decided_by`, `reason`, `params_changed`, `latency_us`, `plugins`
//! (per plugin: `name`, `version`, `stage`, `outcome`, `failure`, `latency_us`, `detail`), and
//! `params` / `final_params` only with `log_params = true` (params may hold secrets).

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use hookvisor_proto::v1::{
    BlockKind, Failure, Hook, Outcome, PluginResult, SessionCreateRequest, SessionCreatedNotice,
    SessionCreatedReceipt, SessionVerdict, Stage, ToolCallRequest, ToolCallVerdict,
};
use serde_json::{Map, Value, json};

use crate::decide::request_id::RequestId;
use crate::files::config::{AuditConfig, AuditPath};

/// Bytes of lines waiting for the writer at most, whatever `queue_lines` says: with
/// `log_params` a line can be 0.5 MiB, and the queue must bound memory, not only lines.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024 * 1024;

enum Message {
    Line(String),
    /// Look at the reopen flag.
    Wake,
    /// Answered once every line queued before it is written (see [`Audit::flush`]).
    Flushed(SyncSender<()>),
}

/// The sending side of the audit log; cheap to share.
#[derive(Debug)]
pub struct Audit {
    queue: SyncSender<Message>,
    /// Bytes of the lines waiting in the queue (at most [`MAX_QUEUED_BYTES`]).
    queued_bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
    log_params: bool,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Message::Line(_) => "Line",
            Message::Wake => "Wake",
            Message::Flushed(_) => "Flushed",
        })
    }
}

impl Audit {
    /// Opens the log (refusing at once what cannot be opened, so `serve` fails loudly) and
    /// starts its writer thread.
    pub fn start(config: &AuditConfig) -> io::Result<Audit> {
        let sink = Sink::open(&config.path)?;
        let (queue, lines) = std::sync::mpsc::sync_channel(config.queue_lines as usize);
        let dropped = Arc::new(AtomicU64::new(0));
        let reopen = Arc::new(AtomicBool::new(false));
        let queued_bytes = Arc::new(AtomicUsize::new(0));
        let writer = Writer {
            sink,
            queued_bytes: queued_bytes.clone(),
            dropped: dropped.clone(),
            reopen: reopen.clone(),
        };
        std::thread::Builder::new()
            .name("hookvisor-audit".into())
            .spawn(move || {
                // A file size limit (RLIMIT_FSIZE) makes a write fail with EFBIG, and sends
                // this thread SIGXFSZ, whose default would end the supervisor: blocked here, it
                // stays pending and the failure is counted like any other.
                let _ = nix::sys::signal::SigSet::from(nix::sys::signal::Signal::SIGXFSZ)
                    .thread_block();
                writer.run(&lines)
            })?;
        Ok(Audit {
            queue,
            queued_bytes,
            dropped,
            reopen,
            log_params: config.log_params,
        })
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Asks the writer to reopen the file (after rotation); nothing for standard output.
    pub fn reopen(&self) {
        self.reopen.store(true, Ordering::Relaxed);
        // Wakes an idle writer; a busy one (the queue full) sees the flag after its batch.
        let _ = self.queue.try_send(Message::Wake);
    }

    /// Waits, at most `limit`, until every line submitted before is written: before the
    /// process ends or replaces its image (`execve` at an upgrade), when the writer thread and
    /// its queue end with it. False if the writer did not get there in time.
    pub fn flush(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let (ack, done) = std::sync::mpsc::sync_channel(1);
        let mut message = Message::Flushed(ack);
        // The queue may be full of lines: wait for room, as long as the limit allows.
        loop {
            match self.queue.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(again)) if std::time::Instant::now() < deadline => {
                    message = again;
                    std::thread::sleep(Duration::from_millis(1));
                }
                Err(_) => return false,
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        done.recv_timeout(left).is_ok()
    }

    fn submit(&self, line: Value) {
        let line = line.to_string();
        let len = line.len();
        let queued = self.queued_bytes.fetch_add(len, Ordering::Relaxed) + len;
        let sent = if queued > MAX_QUEUED_BYTES {
            Err(TrySendError::Full(Message::Wake))
        } else {
            self.queue.try_send(Message::Line(line))
        };
        if sent.is_err() {
            self.queued_bytes.fetch_sub(len, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let before = self.dropped.fetch_add(1, Ordering::Relaxed);
                if before.is_power_of_two() || before == 0 {
                    tracing::warn!(
                        dropped = before + 1,
                        "audit log: the writer is behind and its queue is full; dropping lines"
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The line of a `BeforeToolCall` verdict.
    pub fn tool_call(
        &self,
        id: &RequestId,
        request: &ToolCallRequest,
        verdict: &ToolCallVerdict,
        latency: Duration,
        shadow: &[PluginResult],
        versions: &dyn Fn(&str) -> Option<Arc<str>>,
    ) {
        let line = tool_call_line(
            self.log_params,
            id,
            request,
            verdict,
            latency,
            shadow,
            versions,
        );
        self.submit(line);
    }

    /// The line of a `BeforeSessionCreate` verdict.
    pub fn session_create(
        &self,
        id: &RequestId,
        request: &SessionCreateRequest,
        verdict: &SessionVerdict,
        latency: Duration,
        shadow: &[PluginResult],
        versions: &dyn Fn(&str) -> Option<Arc<str>>,
    ) {
        let mut line = head(id, Hook::BeforeSessionCreate);
        line.insert("session_key".into(), json!(request.session_key));
        line.insert("agent_id".into(), json!(request.agent_id));
        verdict_fields(
            &mut line,
            verdict.outcome,
            verdict.block_kind,
            &verdict.decided_by,
            &verdict.block_reason,
        );
        tail(&mut line, latency, &verdict.trace, versions);
        shadows(&mut line, verdict.outcome, shadow, versions);
        self.submit(Value::Object(line));
    }

    /// The line of a `SessionCreated` notice (an observation: its outcome is always allow).
    pub fn session_created(
        &self,
        id: &RequestId,
        notice: &SessionCreatedNotice,
        receipt: &SessionCreatedReceipt,
        latency: Duration,
        versions: &dyn Fn(&str) -> Option<Arc<str>>,
    ) {
        let mut line = head(id, Hook::SessionCreated);
        line.insert("session_key".into(), json!(notice.session_key));
        line.insert("session_id".into(), json!(notice.session_id));
        verdict_fields(&mut line, Outcome::Allow as i32, 0, "", "");
        tail(&mut line, latency, &receipt.trace, versions);
        self.submit(Value::Object(line));
    }
}

/// The audit line of a `BeforeToolCall` verdict (with the params only when `log_params`).
pub fn tool_call_line(
    log_params: bool,
    id: &RequestId,
    request: &ToolCallRequest,
    verdict: &ToolCallVerdict,
    latency: Duration,
    shadow: &[PluginResult],
    versions: &dyn Fn(&str) -> Option<Arc<str>>,
) -> Value {
    let context = request.context.clone().unwrap_or_default();
    let mut line = head(id, Hook::BeforeToolCall);
    line.insert("tool".into(), json!(request.tool_name));
    if request.dispatch {
        // Only dispatches another call, which has its own line (contract §4.5).
        line.insert("dispatch".into(), json!(true));
    }
    line.insert("session_key".into(), json!(context.session_key));
    line.insert("run_id".into(), json!(context.run_id));
    line.insert("tool_call_id".into(), json!(context.tool_call_id));
    verdict_fields(
        &mut line,
        verdict.outcome,
        verdict.block_kind,
        &verdict.decided_by,
        &verdict.block_reason,
    );
    line.insert("params_changed".into(), json!(verdict.params_changed));
    if log_params {
        line.insert("params".into(), raw_json(&request.params_json));
        if verdict.params_changed {
            line.insert("final_params".into(), raw_json(&verdict.params_json));
        }
    }
    tail(&mut line, latency, &verdict.trace, versions);
    shadows(&mut line, verdict.outcome, shadow, versions);
    Value::Object(line)
}

fn head(id: &RequestId, hook: Hook) -> Map<String, Value> {
    let mut line = Map::new();
    line.insert("ts".into(), json!(rfc3339(SystemTime::now())));
    line.insert("request_id".into(), json!(id.as_str()));
    line.insert("hook".into(), json!(hook_name(hook)));
    line
}

fn verdict_fields(
    line: &mut Map<String, Value>,
    outcome: i32,
    block_kind: i32,
    decided_by: &str,
    reason: &str,
) {
    line.insert("outcome".into(), json!(outcome_name(outcome)));
    line.insert("block_kind".into(), json!(block_kind_name(block_kind)));
    line.insert("decided_by".into(), json!(decided_by));
    line.insert("reason".into(), json!(reason));
}

fn tail(
    line: &mut Map<String, Value>,
    latency: Duration,
    trace: &[PluginResult],
    versions: &dyn Fn(&str) -> Option<Arc<str>>,
) {
    line.insert("latency_us".into(), json!(latency.as_micros() as u64));
    let plugins: Vec<Value> = trace
        .iter()
        .filter(|r| !r.shadow)
        .map(|r| {
            json!({
                "name": r.plugin,
                "version": versions(&r.plugin).as_deref().unwrap_or(""),
                "stage": if r.stage == Stage::Policy as i32 { "policy" } else { "hook" },
                "outcome": outcome_name(r.outcome),
                "failure": failure_name(r.failure),
                "latency_us": r.latency_us,
                "detail": r.detail,
                "revalidation": r.revalidation,
            })
        })
        .collect();
    line.insert("plugins".into(), Value::Array(plugins));
}

/// Every shadow plugin's answer (§4.4), and whether it disagreed with the verdict.
fn shadows(
    line: &mut Map<String, Value>,
    outcome: i32,
    shadow: &[PluginResult],
    versions: &dyn Fn(&str) -> Option<Arc<str>>,
) {
    if shadow.is_empty() {
        return;
    }
    let entries: Vec<Value> = shadow
        .iter()
        .map(|r| {
            json!({
                "name": r.plugin,
                "version": versions(&r.plugin).as_deref().unwrap_or(""),
                "outcome": outcome_name(r.outcome),
                "failure": failure_name(r.failure),
                "latency_us": r.latency_us,
                "detail": r.detail,
                "params_changed": r.params_changed,
                "disagreed": crate::observe::shadow::disagrees(r, outcome),
            })
        })
        .collect();
    line.insert("shadow".into(), Value::Array(entries));
}

/// Params as JSON in the line (they were checked: valid JSON), not as a string of JSON.
fn raw_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| json!(text))
}

/// The hook's name as configuration and the audit log spell it.
pub fn hook_name(hook: Hook) -> &'static str {
    match hook {
        Hook::BeforeToolCall => "before_tool_call",
        Hook::BeforeSessionCreate => "before_session_create",
        Hook::SessionCreated => "session_created",
        Hook::Unspecified => "unspecified",
    }
}

/// An outcome in a word: `allow`, `block`, `require_approval` (`cancelled` when a plugin's call
/// was cancelled because the verdict was already decided).
pub fn outcome_name(outcome: i32) -> &'static str {
    match Outcome::try_from(outcome) {
        Ok(Outcome::Allow) => "allow",
        Ok(Outcome::Block) => "block",
        Ok(Outcome::RequireApproval) => "require_approval",
        _ => "cancelled",
    }
}

/// A block kind in a word: `policy`, `failure` (`""` when nothing blocked).
pub fn block_kind_name(kind: i32) -> &'static str {
    match BlockKind::try_from(kind) {
        Ok(BlockKind::Policy) => "policy",
        Ok(BlockKind::Failure) => "failure",
        _ => "",
    }
}

/// A failure kind in a word (`""` for none).
pub fn failure_name(failure: i32) -> &'static str {
    match Failure::try_from(failure) {
        Ok(Failure::Timeout) => "timeout",
        Ok(Failure::Crashed) => "crashed",
        Ok(Failure::Unavailable) => "unavailable",
        Ok(Failure::InvalidResponse) => "invalid_response",
        Ok(Failure::Error) => "error",
        _ => "",
    }
}

/// `time` as RFC 3339 in UTC with microseconds, e.g. `2026-11-30T21:04:05.123456Z`.
pub fn rfc3339(time: SystemTime) -> String {
    let since = time
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Howard Hinnant's `civil_from_days`: days since 1970-01-01 to (year, month, day).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Where the writer thread writes.
enum Sink {
    Stdout,
    File {
        path: std::path::PathBuf,
        file: File,
    },
}

impl Sink {
    fn open(path: &AuditPath) -> io::Result<Sink> {
        match path {
            AuditPath::Stdout => Ok(Sink::Stdout),
            AuditPath::File(path) => Ok(Sink::File {
                path: path.clone(),
                file: open_file(path).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot open the audit log {}: {e}", path.display()),
                    )
                })?,
            }),
        }
    }

    /// One write: it may write part of `bytes`.
    fn write_some(&mut self, bytes: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Stdout => io::stdout().lock().write(bytes),
            Sink::File { file, .. } => file.write(bytes),
        }
    }

    fn reopen(&mut self) {
        if let Sink::File { path, file } = self {
            match open_file(path) {
                Ok(new) => *file = new,
                Err(e) => tracing::error!(path = %path.display(),
                    "cannot reopen the audit log; still writing to the old file: {e}"),
            }
        }
    }
}

/// Opens for appending (created 0640). The open itself never blocks: a FIFO without a reader
/// is refused (`ENXIO`) instead of hanging the caller; writes then block the writer thread only.
///
/// What is opened must be hookvisor's own: a symlink is refused (`O_NOFOLLOW`: another user
/// could plant one in a shared directory to make hookvisor append to a file of its choosing),
/// as is a file owned by another user or that group or others may write (they could forge or
/// erase lines), and a file with more than one hard link (another name of it, elsewhere, could
/// be what the lines really go to). Only a regular file or a FIFO is written to, and every
/// directory on the way must be one no other user can write (the host socket's rule, see
/// [`crate::files::layout`]): another user could otherwise move the log aside or delete it while
/// hookvisor writes verdicts into a file nobody will read.
fn open_file(path: &std::path::Path) -> io::Result<File> {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
    if let Some(parent) = path.parent() {
        crate::files::layout::check_audit_directories(parent, path)
            .map_err(|e| io::Error::other(e.to_string()))?;
    }
    let file = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .custom_flags(nix::libc::O_NONBLOCK | nix::libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(nix::libc::ELOOP) {
                io::Error::new(e.kind(), "it is a symlink; name the file itself")
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    let kind = meta.file_type();
    if !(kind.is_file() || kind.is_fifo()) {
        return Err(io::Error::other("it is neither a regular file nor a FIFO"));
    }
    let uid = nix::unistd::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(io::Error::other(format!(
            "it belongs to uid {}, not to hookvisor's user (uid {uid})",
            meta.uid()
        )));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(io::Error::other(format!(
            "its mode {:04o} lets group or others write it",
            meta.mode() & 0o7777
        )));
    }
    if meta.nlink() > 1 {
        return Err(io::Error::other(format!(
            "it has {} hard links; the audit log must have one name only",
            meta.nlink()
        )));
    }
    let flags = nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_GETFL)?;
    let blocking = nix::fcntl::OFlag::from_bits_truncate(flags) - nix::fcntl::OFlag::O_NONBLOCK;
    nix::fcntl::fcntl(&file, nix::fcntl::FcntlArg::F_SETFL(blocking))?;
    Ok(file)
}

/// The writer thread's state.
struct Writer {
    sink: Sink,
    queued_bytes: Arc<AtomicUsize>,
    dropped: Arc<AtomicU64>,
    reopen: Arc<AtomicBool>,
}

/// How often a failing write is logged at most.
const WRITE_ERROR_EVERY: Duration = Duration::from_secs(60);

impl Writer {
    /// Writes what comes, batching what is already queued, reopens when asked, and says when
    /// lines were dropped. Ends when every sender is gone.
    fn run(mut self, lines: &Receiver<Message>) {
        let mut reported = 0;
        let mut buffer = Vec::with_capacity(64 * 1024);
        let mut failing = Failing::default();
        let mut acks = Vec::new();
        while let Ok(first) = lines.recv() {
            let mut next = Some(first);
            while let Some(message) = next.take() {
                match message {
                    Message::Line(line) => {
                        self.queued_bytes.fetch_sub(line.len(), Ordering::Relaxed);
                        buffer.extend_from_slice(line.as_bytes());
                        buffer.push(b'\n');
                    }
                    Message::Wake => {}
                    Message::Flushed(ack) => acks.push(ack),
                }
                if buffer.len() < 256 * 1024 {
                    next = lines.try_recv().ok();
                }
            }
            let lost = flush(&mut self.sink, &mut buffer, &mut failing);
            if lost > 0 {
                self.dropped.fetch_add(lost, Ordering::Relaxed);
            }
            // Said once writing works: an event line that cannot be written is no lost verdict,
            // and is said again with the next.
            let now = self.dropped.load(Ordering::Relaxed);
            if now > reported && lost == 0 {
                let line = json!({
                    "ts": rfc3339(SystemTime::now()),
                    "event": "dropped",
                    "dropped_lines": now - reported,
                    "dropped_total": now,
                });
                buffer.extend_from_slice(line.to_string().as_bytes());
                buffer.push(b'\n');
                if flush(&mut self.sink, &mut buffer, &mut failing) == 0 {
                    reported = now;
                }
            }
            if self.reopen.swap(false, Ordering::Relaxed) {
                self.sink.reopen();
            }
            for ack in acks.drain(..) {
                let _ = ack.send(());
            }
        }
    }
}

/// What the writer remembers of failed writes.
#[derive(Default)]
struct Failing {
    /// A line was cut short: the next write ends it first.
    cut: bool,
    /// When the error was last logged, and the lines lost since.
    logged: Option<std::time::Instant>,
    lost_since_logged: u64,
}

/// Writes `buffer` (whole lines) and empties it; returns how many of its lines were not
/// written in full. After a failure the next write starts on a line boundary.
fn flush(sink: &mut Sink, buffer: &mut Vec<u8>, failing: &mut Failing) -> u64 {
    if buffer.is_empty() {
        return 0;
    }
    if failing.cut {
        buffer.insert(0, b'\n');
    }
    let mut written = 0;
    let mut error = None;
    while written < buffer.len() {
        match sink.write_some(&buffer[written..]) {
            Ok(0) => {
                error = Some(io::Error::from(io::ErrorKind::WriteZero));
                break;
            }
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let rest = &buffer[written..];
    let lost = rest.iter().filter(|&&b| b == b'\n').count() as u64;
    // The leading newline that ends a cut line is no line of its own.
    let lost = if failing.cut && written == 0 {
        lost.saturating_sub(1)
    } else {
        lost
    };
    if written > 0 {
        failing.cut = buffer[written - 1] != b'\n';
    }
    buffer.clear();
    if let Some(e) = error {
        failing.lost_since_logged += lost;
        let now = std::time::Instant::now();
        if failing
            .logged
            .is_none_or(|at| now.duration_since(at) >= WRITE_ERROR_EVERY)
        {
            tracing::error!(
                lost_lines = failing.lost_since_logged,
                "cannot write the audit log ({e}); the lines not written are counted as dropped"
            );
            failing.logged = Some(now);
            failing.lost_since_logged = 0;
        }
    }
    lost
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer stuck on a FIFO nobody reads: the queue holds at most `MAX_QUEUED_BYTES`, the
    /// rest is dropped and counted, and submitting never blocks.
    #[test]
    fn the_queue_is_bounded_in_bytes() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = std::env::temp_dir().join(format!("hv-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("stuck.fifo");
        let _ = std::fs::remove_file(&fifo);
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let _reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let audit = Audit::start(&AuditConfig {
            path: AuditPath::File(fifo.clone()),
            log_params: true,
            queue_lines: crate::files::config::MAX_AUDIT_QUEUE_LINES,
        })
        .unwrap();
        let line = json!({ "pad": "x".repeat(1024 * 1024) });
        for _ in 0..100 {
            audit.submit(line.clone());
        }
        assert!(audit.queued_bytes.load(Ordering::Relaxed) <= MAX_QUEUED_BYTES);
        // 64 lines fit the queue, a few more the pipe and the writer's buffer.
        assert!(audit.dropped() >= 30, "dropped {}", audit.dropped());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// What is submitted before a flush is in the file when it returns.
    #[test]
    fn a_flush_returns_once_every_line_before_it_is_written() {
        let dir = std::env::temp_dir().join(format!("hv-audit-flush-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("decisions.jsonl");
        let audit = Audit::start(&AuditConfig {
            path: AuditPath::File(path.clone()),
            log_params: false,
            queue_lines: 100_000,
        })
        .unwrap();
        for i in 0..20_000 {
            audit.submit(json!({ "n": i }));
        }
        assert!(audit.flush(Duration::from_secs(30)), "flushed in time");
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20_000);
        assert_eq!(audit.dropped(), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_micros(1_796_072_645_123_456);
        assert_eq!(rfc3339(t), "2026-11-30T21:04:05.123456Z");
        assert_eq!(
            rfc3339(SystemTime::UNIX_EPOCH),
            "1970-01-01T00:00:00.000000Z"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000000Z");
    }
}
