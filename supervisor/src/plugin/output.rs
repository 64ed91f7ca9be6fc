//! A plugin's stdout and stderr in the supervisor's log (contract §2): line by line, under the
//! plugin's name (target `hookvisor::plugin_output`), never parsed as protocol.
//!
//! - A JSON line with a level (`{"level":"warn","msg":"…",…}` as pino, zap, slog, structlog,
//!   logrus or tracing's JSON format write them; pino's numeric levels too) is logged at that
//!   level, with its message and its other fields (`fields`, compact JSON).
//! - Any other line is info on stdout and warn on stderr.
//! - Lines are cut at 4 KiB and every control character but tab is escaped, so a plugin can
//!   neither make the supervisor buffer without bound nor forge or hide log lines.
//! - One plugin instance may log [`LINES_PER_SECOND`] lines a second, in bursts of up to
//!   [`BURST_LINES`]; lines past that are dropped and counted, and the count is logged
//!   (`dropped N lines of output`) once output is allowed again, or within a second of the
//!   flood. A flooding plugin costs the supervisor a read and a count per line, and the journal
//!   nothing.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;
use tracing::Level;

/// Longer output lines are cut (a plugin that prints megabytes without a newline must not make
/// the supervisor buffer them).
pub const MAX_LINE_BYTES: usize = 4096;
/// The sustained rate of output lines one plugin instance may log.
pub const LINES_PER_SECOND: u32 = 100;
/// The most lines logged in one burst.
pub const BURST_LINES: u32 = 500;
/// How many of a plugin's last stderr lines a start failure quotes.
const TAIL_LINES: usize = 10;
/// How soon the count of dropped lines is logged when the flood stops.
const DROP_REPORT_AFTER: Duration = Duration::from_secs(1);

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    /// stdout: plain lines are info.
    Stdout,
    /// stderr: plain lines are warn, and the last ones are kept for start-failure messages.
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// `tracing`'s macros take the level as a constant; this picks one at run time.
macro_rules! log {
    ($level:expr, $($rest:tt)*) => {
        match $level {
            Level::ERROR => tracing::error!(target: "hookvisor::plugin_output", $($rest)*),
            Level::WARN => tracing::warn!(target: "hookvisor::plugin_output", $($rest)*),
            Level::INFO => tracing::info!(target: "hookvisor::plugin_output", $($rest)*),
            Level::DEBUG => tracing::debug!(target: "hookvisor::plugin_output", $($rest)*),
            Level::TRACE => tracing::trace!(target: "hookvisor::plugin_output", $($rest)*),
        }
    };
}

/// The output of one plugin instance: both streams share its name and its rate budget.
#[derive(Debug, Clone)]
pub struct Output {
    plugin: Arc<str>,
    budget: Arc<Mutex<Budget>>,
    tail: Arc<Mutex<VecDeque<String>>>,
}

impl Output {
    /// The output of an instance of `plugin`.
    pub fn new(plugin: Arc<str>) -> Output {
        Output {
            plugin,
            budget: Arc::new(Mutex::new(Budget::new(Instant::now()))),
            tail: Arc::new(Mutex::new(VecDeque::new())),
        }
    }

    /// The last stderr lines ("" when there were none), joined with ` | `.
    pub fn stderr_tail(&self) -> String {
        let tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
        tail.iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(" | ")
    }

    /// Reads `stream` to its end, logging each line.
    pub async fn forward(&self, stream: impl AsyncRead + Unpin, which: Stream) {
        let mut reader = BufReader::new(stream);
        let mut line = Vec::new();
        let mut cut = false;
        loop {
            let buf = match tokio::time::timeout(DROP_REPORT_AFTER, reader.fill_buf()).await {
                Err(_) => {
                    self.report_drops(false);
                    continue;
                }
                Ok(Ok([]) | Err(_)) => break,
                Ok(Ok(buf)) => buf,
            };
            let (chunk, used, ends_line) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (&buf[..i], i + 1, true),
                None => (buf, buf.len(), false),
            };
            let room = MAX_LINE_BYTES.saturating_sub(line.len());
            line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            cut |= chunk.len() > room;
            reader.consume(used);
            if ends_line {
                self.line(which, &line, cut);
                line.clear();
                cut = false;
            }
        }
        if !line.is_empty() {
            self.line(which, &line, cut);
        }
        self.report_drops(true);
    }

    fn line(&self, which: Stream, line: &[u8], cut: bool) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches('\r');
        if which == Stream::Stderr {
            let mut tail = self.tail.lock().unwrap_or_else(|e| e.into_inner());
            if tail.len() == TAIL_LINES {
                tail.pop_front();
            }
            tail.push_back(format!("{}{}", escape_controls(text), marker(cut)));
        }
        let admitted = {
            let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            budget.admit(Instant::now())
        };
        let Some(dropped) = admitted else {
            return;
        };
        if dropped > 0 {
            log_drops(&self.plugin, dropped);
        }
        let plugin = &*self.plugin;
        let stream = which.name();
        match structured(text) {
            Some(entry) => {
                let (message, fields) = (escape_controls(&entry.message), &entry.fields);
                let fields = escape_controls(fields);
                let cut = marker(cut);
                log!(entry.level, plugin, stream, fields = %fields, "{message}{cut}");
            }
            None => {
                let level = match which {
                    Stream::Stdout => Level::INFO,
                    Stream::Stderr => Level::WARN,
                };
                let (text, cut) = (escape_controls(text), marker(cut));
                log!(level, plugin, stream, "{text}{cut}");
            }
        }
    }

    /// Logs the count of dropped lines, if any, once the flood has paused (or at the end).
    fn report_drops(&self, at_end: bool) {
        let dropped = {
            let mut budget = self.budget.lock().unwrap_or_else(|e| e.into_inner());
            budget.take_dropped(Instant::now(), at_end)
        };
        if dropped > 0 {
            log_drops(&self.plugin, dropped);
        }
    }
}

fn log_drops(plugin: &str, dropped: u64) {
    tracing::warn!(target: "hookvisor::plugin_output", plugin, dropped,
        "dropped {dropped} lines of output (over {LINES_PER_SECOND} lines/s, bursts of {BURST_LINES})");
}

fn marker(cut: bool) -> &'static str {
    if cut { " [line cut]" } else { "" }
}

/// A token bucket of lines, and the count of lines dropped since the last report.
#[derive(Debug)]
struct Budget {
    tokens: f64,
    refilled: Instant,
    dropped: u64,
    last_drop: Option<Instant>,
}

impl Budget {
    fn new(now: Instant) -> Budget {
        Budget {
            tokens: f64::from(BURST_LINES),
            refilled: now,
            dropped: 0,
            last_drop: None,
        }
    }

    /// `Some(lines dropped before this one)` if this line may be logged, `None` if dropped.
    fn admit(&mut self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens =
            (self.tokens + elapsed * f64::from(LINES_PER_SECOND)).min(f64::from(BURST_LINES));
        self.refilled = now;
        if self.tokens < 1.0 {
            self.dropped += 1;
            self.last_drop = Some(now);
            return None;
        }
        self.tokens -= 1.0;
        self.last_drop = None;
        Some(std::mem::take(&mut self.dropped))
    }

    /// The lines dropped so far, once no line was dropped for a while (or `now` at the end).
    fn take_dropped(&mut self, now: Instant, at_end: bool) -> u64 {
        let quiet = self
            .last_drop
            .is_none_or(|last| now.saturating_duration_since(last) >= DROP_REPORT_AFTER);
        if self.dropped == 0 || !(quiet || at_end) {
            return 0;
        }
        self.last_drop = None;
        std::mem::take(&mut self.dropped)
    }
}

/// A JSON log line's level, message and other fields.
#[derive(Debug, PartialEq)]
struct Entry {
    level: Level,
    message: String,
    fields: String,
}

/// The keys that may hold a JSON line's level, and its message, in the formats of common
/// loggers (pino, bunyan, zap, slog, logrus, structlog, Python's `logging` JSON formatters,
/// tracing's JSON format).
const LEVEL_KEYS: [&str; 4] = ["level", "severity", "lvl", "levelname"];
const MESSAGE_KEYS: [&str; 3] = ["msg", "message", "event"];

/// The line as a structured entry, if it is a JSON object with a level.
fn structured(text: &str) -> Option<Entry> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    let Ok(Value::Object(mut map)) = serde_json::from_str::<Value>(text) else {
        return None;
    };
    let level = LEVEL_KEYS
        .iter()
        .find_map(|key| level_of(map.get(*key)?).map(|level| (*key, level)));
    let (key, level) = level?;
    map.remove(key);
    let mut message = MESSAGE_KEYS.iter().find_map(|key| match map.get(*key) {
        Some(Value::String(text)) => Some((*key, text.clone())),
        _ => None,
    });
    if let Some((key, _)) = &message {
        map.remove(*key);
    } else if let Some(Value::Object(fields)) = map.get_mut("fields") {
        // tracing-subscriber's JSON format: {"level":"INFO","fields":{"message":"…"},…}
        if let Some(Value::String(text)) = fields.remove("message") {
            message = Some(("message", text));
        }
    }
    Some(Entry {
        level,
        message: message.map(|(_, text)| text).unwrap_or_default(),
        fields: compact(&map),
    })
}

fn compact(map: &Map<String, Value>) -> String {
    if map.is_empty() {
        return String::new();
    }
    serde_json::to_string(map).unwrap_or_default()
}

/// A level as loggers spell it: a name in any case, or pino's numbers (10 trace … 60 fatal).
fn level_of(value: &Value) -> Option<Level> {
    match value {
        Value::String(name) => match name.to_ascii_lowercase().as_str() {
            "trace" => Some(Level::TRACE),
            "debug" => Some(Level::DEBUG),
            "info" | "notice" => Some(Level::INFO),
            "warn" | "warning" => Some(Level::WARN),
            "error" | "err" | "fatal" | "critical" | "crit" | "alert" | "emerg" | "panic"
            | "dpanic" => Some(Level::ERROR),
            _ => None,
        },
        Value::Number(number) => match number.as_u64()? {
            0..=10 => Some(Level::TRACE),
            11..=20 => Some(Level::DEBUG),
            21..=30 => Some(Level::INFO),
            31..=40 => Some(Level::WARN),
            _ => Some(Level::ERROR),
        },
        _ => None,
    }
}

/// A plugin's output line with every control character but tab escaped (`\r` becomes `\\r`,
/// ESC becomes `\\u{1b}`), so a plugin cannot forge log lines, rewrite a terminal or hide text.
fn escape_controls(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c.is_control() && c != '\t') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() && c != '\t' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_output_cannot_carry_control_characters() {
        assert_eq!(
            escape_controls("a\rb\u{1b}[2Jc\0d\te"),
            "a\\rb\\u{1b}[2Jc\\u{0}d\te"
        );
        assert!(matches!(escape_controls("plain\ttext"), Cow::Borrowed(_)));
    }

    #[test]
    fn json_lines_keep_their_level_message_and_fields() {
        let entry = structured(r#"{"level":"warn","msg":"disk low","free_mb":12}"#).unwrap();
        assert_eq!(
            entry,
            Entry {
                level: Level::WARN,
                message: "disk low".into(),
                fields: r#"{"free_mb":12}"#.into()
            }
        );
        // pino's numbers, structlog's `event`, tracing's `fields.message`, Python's `levelname`.
        assert_eq!(
            structured(r#"{"level":50,"msg":"x"}"#).unwrap().level,
            Level::ERROR
        );
        assert_eq!(
            structured(r#"{"level":"info","event":"e"}"#)
                .unwrap()
                .message,
            "e"
        );
        let tracing_json = r#"{"level":"DEBUG","fields":{"message":"m","k":1},"target":"t"}"#;
        let entry = structured(tracing_json).unwrap();
        assert_eq!((entry.level, entry.message.as_str()), (Level::DEBUG, "m"));
        assert_eq!(entry.fields, r#"{"fields":{"k":1},"target":"t"}"#);
        assert_eq!(
            structured(r#"{"levelname":"CRITICAL","message":"c"}"#)
                .unwrap()
                .level,
            Level::ERROR
        );
    }

    #[test]
    fn lines_without_a_known_level_are_plain() {
        for line in [
            "plain text",
            r#"{"msg":"no level"}"#,
            r#"{"level":"loud","msg":"unknown level"}"#,
            r#"{"level":"info""#,
            "[1,2]",
        ] {
            assert_eq!(structured(line), None, "{line}");
        }
    }

    #[test]
    fn a_nested_json_line_is_parsed_without_harm() {
        // 4 KiB of nesting (a line is cut there first): serde_json's depth limit refuses it,
        // and the line is logged as plain text.
        let deep = format!(
            r#"{{"level":"error","msg":"m","x":{}"#,
            "[".repeat(MAX_LINE_BYTES)
        );
        assert_eq!(structured(&deep), None);
        let closed = format!(
            r#"{{"level":"error","msg":"m","x":{}1{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(structured(&closed).map(|e| e.level), Some(Level::ERROR));
    }

    #[test]
    fn the_budget_allows_a_burst_then_the_rate_and_counts_the_rest() {
        let start = Instant::now();
        let mut budget = Budget::new(start);
        let admitted = (0..BURST_LINES + 50)
            .filter(|_| budget.admit(start).is_some())
            .count();
        assert_eq!(admitted, BURST_LINES as usize);
        assert_eq!(budget.dropped, 50);
        // Not reported while the flood goes on…
        assert_eq!(budget.take_dropped(start, false), 0);
        // …and reported with the next line allowed, 10 ms (one token) later.
        assert_eq!(budget.admit(start + Duration::from_millis(10)), Some(50));
        // Dropped lines with no later line are reported once the flood has paused.
        assert_eq!(budget.admit(start + Duration::from_millis(10)), None);
        assert_eq!(
            budget.take_dropped(start + Duration::from_millis(500), false),
            0
        );
        assert_eq!(
            budget.take_dropped(start + Duration::from_secs(2), false),
            1
        );
        assert_eq!(
            budget.take_dropped(start + Duration::from_secs(3), false),
            0
        );
    }
}
