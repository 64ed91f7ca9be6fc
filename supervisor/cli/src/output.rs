//! What the commands print, and how. Text from outside (a plugin's version, tools and last
//! error, block reasons, params, trace details, a supervisor's or plugin's error messages) goes
//! through [`escaped`] before a person sees it, and JSON through [`json_text`], so no plugin can
//! colour, retitle, clear or reorder an operator's terminal. Every line on stdout goes through
//! [`out!`]: a closed stdout (`hookvisor status | head -1`) ends the command quietly instead of
//! panicking, and [`stopped`] tells the command to stop where it is.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicU8, Ordering};

use tokio::sync::Notify;

/// Whether `c` can drive a terminal or reorder what a person reads: C0 (tab and newline too),
/// DEL and C1 (Unicode's `Cc`), and the bidirectional embeddings, overrides (U+202A..U+202E)
/// and isolates (U+2066..U+2069).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

/// `text` with each character [`needs_escape`] names written as a Rust literal writes it
/// (`char::escape_default`, as the supervisor's log does): `\t`, `\r`, `\n`, and `\u{HEX}` for
/// the others, e.g. ESC as `\u{1b}`, U+202E as `\u{202e}`. A backslash is left as it is.
pub(crate) fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// `value` as one line of JSON whose strings also carry DEL, C1 and the bidirectional controls
/// as `\uXXXX` escapes (serde_json escapes only C0, `"` and `\`): the same JSON value, with no
/// raw control character for a terminal. Outside its strings compact JSON is plain ASCII, so
/// every such character is inside a string, where `\uXXXX` is valid.
pub(crate) fn json_text(value: &serde_json::Value) -> String {
    let text = value.to_string();
    if !text.chars().any(needs_escape) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if needs_escape(c) {
            let _ = write!(out, "\\u{:04x}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

/// stdout is writable.
const OPEN: u8 = 0;
/// A write found stdout closed (EPIPE): the reader has gone, which is its right.
const CLOSED: u8 = 1;
/// A write to stdout failed otherwise (a full disk, say): the output is lost.
const FAILED: u8 = 2;

static STDOUT: AtomicU8 = AtomicU8::new(OPEN);
static STOPPED: LazyLock<Notify> = LazyLock::new(Notify::new);

/// `println!` for a command's output: one line on stdout. The first write that fails marks
/// stdout gone (a failure other than a closed pipe is said once on stderr), every later line is
/// dropped, and [`stopped`] resolves. (The runtime leaves SIGPIPE ignored, as `serve` needs for
/// its sockets, so a closed pipe is an EPIPE error here, not a signal.)
pub(crate) fn line(args: std::fmt::Arguments<'_>) {
    if STDOUT.load(Ordering::Relaxed) != OPEN {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let written = stdout
        .write_fmt(args)
        .and_then(|()| stdout.write_all(b"\n"))
        .and_then(|()| stdout.flush());
    if let Err(e) = written {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            STDOUT.store(CLOSED, Ordering::Relaxed);
        } else {
            STDOUT.store(FAILED, Ordering::Relaxed);
            error_line(format_args!("hookvisor: cannot write to stdout: {e}"));
        }
        STOPPED.notify_one();
    }
}

/// One line on stdout, through [`line`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::line(format_args!($($arg)*))
    };
}
pub(crate) use out;

/// One line on stderr, escaped as a whole ([`escaped`]: the error may quote a plugin). A
/// failed write is ignored: there is nowhere left to say it.
pub(crate) fn error_line(args: std::fmt::Arguments<'_>) {
    let text = args.to_string();
    let mut stderr = std::io::stderr().lock();
    let _ = writeln!(stderr, "{}", escaped(&text));
}

/// Resolves once stdout is gone: the command stops at its next await, dropping what it holds
/// (a plugin under test is killed with its reaper, a temporary directory removed).
pub(crate) async fn stopped() {
    while STDOUT.load(Ordering::Relaxed) == OPEN {
        STOPPED.notified().await;
    }
}

/// The exit status of a command that [`stopped`] before it finished: 141 when stdout was
/// closed, as a shell reports a command that SIGPIPE ended, 1 when the output was lost
/// otherwise.
pub(crate) fn stopped_status() -> ExitCode {
    match STDOUT.load(Ordering::Relaxed) {
        CLOSED => ExitCode::from(141),
        _ => ExitCode::FAILURE,
    }
}

/// Whether a write to stdout failed other than on a closed pipe: the command's output is lost,
/// so it cannot claim success.
pub(crate) fn output_lost() -> bool {
    STDOUT.load(Ordering::Relaxed) == FAILED
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_controls_are_escaped_and_the_rest_kept() {
        assert_eq!(
            escaped("\u{1b}[31mred\u{1b}]0;title\u{7}"),
            "\\u{1b}[31mred\\u{1b}]0;title\\u{7}"
        );
        assert_eq!(
            escaped("a\tb\nc\u{7f}d\u{9b}e\u{202e}f\u{2066}g\u{2069}"),
            "a\\tb\\nc\\u{7f}d\\u{9b}e\\u{202e}f\\u{2066}g\\u{2069}"
        );
        assert!(matches!(
            escaped("données/日本語 ✓ \\ 😀"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn json_keeps_its_value_and_loses_its_controls() {
        let value = serde_json::json!({"v": "\u{1b}x\u{9b}y\u{202e}z\u{7f}é"});
        let text = json_text(&value);
        assert!(!text.chars().any(needs_escape), "{text}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&text).ok(),
            Some(value)
        );
    }
}
