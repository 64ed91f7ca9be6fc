//! The W3C trace context of a host call while tracing is on (`[tracing]`, contract §9): the
//! host's `traceparent` read (never trusted beyond its shape), the ids of the verdict's span, and
//! the plugin calls made under it, each with a span id of its own that goes to the plugin as its
//! `traceparent`. Carried like the request id (a task-local), so the stages stay free of it; the
//! spans themselves are built and exported by `observe::traces`. With tracing off nothing here
//! runs: no scope, no ids, no header.

use std::cell::Cell;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use tonic::metadata::MetadataMap;

/// The gRPC metadata key, from the host and to every plugin.
pub const HEADER: &str = hookvisor_proto::metadata::TRACEPARENT;
/// Longest `traceparent` read from a host; a longer one is ignored (a new trace starts).
pub const MAX_LEN: usize = 256;
/// The `sampled` bit of the trace flags.
pub const SAMPLED: u8 = 0x01;

/// A `traceparent` as read from a host: `<version>-<trace id>-<parent span id>-<flags>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    /// The trace id (never zero).
    pub trace_id: u128,
    /// The host's span (never zero).
    pub span_id: u64,
    /// The trace flags (bit 0: sampled).
    pub flags: u8,
}

impl Parent {
    /// The host's `traceparent`, when it sent one that parses.
    pub fn from_host(metadata: &MetadataMap) -> Option<Parent> {
        Parent::parse(metadata.get(HEADER)?.to_str().ok()?)
    }

    /// `text` as a W3C `traceparent` (version 00, or a later one read as 00 with what follows
    /// ignored, as the recommendation asks); `None` for anything else, never an error.
    pub fn parse(text: &str) -> Option<Parent> {
        let b = text.as_bytes();
        if b.len() < 55 || b.len() > MAX_LEN {
            return None;
        }
        let version = hex(&b[0..2])?;
        let exact = b.len() == 55;
        if version == 0xff || (version == 0 && !exact) || (!exact && b[55] != b'-') {
            return None;
        }
        if b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let trace_id = hex(&b[3..35])?;
        let span_id = u64::try_from(hex(&b[36..52])?).ok()?;
        let flags = u8::try_from(hex(&b[53..55])?).ok()?;
        (trace_id != 0 && span_id != 0).then_some(Parent {
            trace_id,
            span_id,
            flags,
        })
    }
}

/// Lowercase hex digits (at most 32) as a number.
fn hex(digits: &[u8]) -> Option<u128> {
    digits.iter().try_fold(0u128, |n, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return None,
        };
        Some((n << 4) | u128::from(v))
    })
}

/// The `traceparent` text of a span: `00-<trace id>-<span id>-<flags>`.
pub fn traceparent(trace_id: u128, span_id: u64, flags: u8) -> String {
    // By hand: `format!` with widths took a tenth of tracing's cost per plugin call.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (i, digit) in text[3..35].iter_mut().enumerate() {
        *digit = HEX[((trace_id >> (124 - 4 * i)) & 0xf) as usize];
    }
    for (i, digit) in text[36..52].iter_mut().enumerate() {
        *digit = HEX[((span_id >> (60 - 4 * i)) & 0xf) as usize];
    }
    text[53] = HEX[usize::from(flags >> 4)];
    text[54] = HEX[usize::from(flags & 0xf)];
    String::from_utf8_lossy(&text).into_owned()
}

/// One host call's span while it is decided: its ids, its start, and the plugin calls made
/// under it.
#[derive(Debug)]
pub struct Verdict {
    /// The trace: the host's, else a new one.
    pub trace_id: u128,
    /// This span's id.
    pub span_id: u64,
    /// The host's span, when the host sent a valid `traceparent`.
    pub parent: Option<u64>,
    /// The trace flags passed on (the host's, else sampled).
    pub flags: u8,
    /// When the host call began.
    pub start: SystemTime,
    calls: Mutex<Vec<Call>>,
}

/// One plugin call made under a [`Verdict`].
#[derive(Debug, Clone)]
pub struct Call {
    /// The plugin's configured name.
    pub plugin: Arc<str>,
    /// Its span's id (the plugin's `traceparent` names it).
    pub span_id: u64,
    /// When the call began.
    pub start: SystemTime,
    /// When it ended (or was dropped); `None` while it runs.
    pub end: Option<SystemTime>,
}

impl Verdict {
    /// A new span, a child of `parent` (same trace) or the root of a new trace.
    pub fn begin(parent: Option<Parent>) -> Arc<Verdict> {
        let (trace_id, parent, flags) = match parent {
            Some(p) => (p.trace_id, Some(p.span_id), p.flags),
            None => (new_trace_id(), None, SAMPLED),
        };
        Arc::new(Verdict {
            trace_id,
            span_id: new_span_id(),
            parent,
            flags,
            start: SystemTime::now(),
            calls: Mutex::new(Vec::with_capacity(8)),
        })
    }

    /// Whether its spans are exported (the host's flags say sampled, or it sent none).
    pub fn sampled(&self) -> bool {
        self.flags & SAMPLED != 0
    }

    /// The plugin calls made so far, in the order they began.
    pub fn calls(&self) -> Vec<Call> {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Call>> {
        // Nothing panics while holding it; a poisoned list is still a valid list.
        self.calls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

tokio::task_local! {
    static CURRENT: Arc<Verdict>;
}

/// Runs `work` under `verdict` (seen by [`begin_call`] inside it); with `None` (tracing off)
/// just runs it.
pub async fn scope<F: Future>(verdict: Option<Arc<Verdict>>, work: F) -> F::Output {
    match verdict {
        Some(verdict) => CURRENT.scope(verdict, work).await,
        None => work.await,
    }
}

/// A plugin call begins under the current verdict, if there is one: its span id is made and its
/// start recorded; dropping the returned value records its end.
pub fn begin_call(plugin: &Arc<str>) -> Option<CallSpan> {
    CURRENT
        .try_with(|verdict| {
            let span_id = new_span_id();
            let index = {
                let mut calls = verdict.lock();
                calls.push(Call {
                    plugin: plugin.clone(),
                    span_id,
                    start: SystemTime::now(),
                    end: None,
                });
                calls.len() - 1
            };
            CallSpan {
                header: traceparent(verdict.trace_id, span_id, verdict.flags),
                verdict: verdict.clone(),
                index,
            }
        })
        .ok()
}

/// A plugin call in progress under a verdict; its end is recorded when it is dropped.
#[derive(Debug)]
pub struct CallSpan {
    verdict: Arc<Verdict>,
    index: usize,
    header: String,
}

impl CallSpan {
    /// The `traceparent` the plugin is sent: the verdict's trace, this call's span.
    pub fn traceparent(&self) -> &str {
        &self.header
    }
}

impl Drop for CallSpan {
    fn drop(&mut self) {
        if let Some(call) = self.verdict.lock().get_mut(self.index) {
            call.end = Some(SystemTime::now());
        }
    }
}

thread_local! {
    static RNG: Cell<u64> = Cell::new(seed());
}

/// A seed per thread from the standard library's randomly seeded hasher.
fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    hasher.finish()
}

/// The next non-zero 64 random bits (SplitMix64: ids need to be unique, not secret).
fn random() -> u64 {
    RNG.with(|state| {
        loop {
            let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
            state.set(next);
            let mut z = next;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            if z != 0 {
                return z;
            }
        }
    })
}

fn new_span_id() -> u64 {
    random()
}

fn new_trace_id() -> u128 {
    (u128::from(random()) << 64) | u128::from(random())
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_valid_traceparent_parses() {
        let p = Parent::parse(GOOD).expect("valid");
        assert_eq!(p.trace_id, 0x4bf92f3577b34da6a3ce929d0e0e4736);
        assert_eq!(p.span_id, 0x00f067aa0ba902b7);
        assert_eq!(p.flags, 1);
        assert_eq!(traceparent(p.trace_id, p.span_id, p.flags), GOOD);
        // A later version with more fields is read as 00.
        let later = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra";
        assert_eq!(Parent::parse(later).map(|p| p.flags), Some(0));
    }

    #[test]
    fn anything_else_is_ignored() {
        let long = format!("{GOOD}-{}", "a".repeat(MAX_LEN));
        for bad in [
            "",
            "00",
            "garbage",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
            "00-4bf92f3577b34da6a3ce929d0e0e473é-00f067aa0ba902b7-01",
            long.as_str(),
        ] {
            assert!(Parent::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn calls_under_a_verdict_get_spans_of_its_trace() {
        let plugin: Arc<str> = Arc::from("p");
        assert!(begin_call(&plugin).is_none(), "no verdict, no span");
        let verdict = Verdict::begin(Parent::parse(GOOD));
        let seen = scope(Some(verdict.clone()), async {
            let call = begin_call(&plugin).expect("under a verdict");
            call.traceparent().to_owned()
        })
        .await;
        let parsed = Parent::parse(&seen).expect("valid");
        assert_eq!(parsed.trace_id, verdict.trace_id);
        let calls = verdict.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].span_id, parsed.span_id);
        assert!(calls[0].end.is_some());
        assert_eq!(verdict.parent, Some(0x00f067aa0ba902b7));
        assert_ne!(Verdict::begin(None).trace_id, Verdict::begin(None).trace_id);
    }
}
