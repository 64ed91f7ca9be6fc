//! The request id of a host call: the host's own `x-hookvisor-request-id` when it sends a valid
//! one, else one made here. It is carried (a task-local, so the stages stay free of it) to every
//! plugin call the host call makes, and written in the supervisor's log span and the audit line,
//! so plugin logs, supervisor logs and audit lines correlate.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tonic::metadata::{AsciiMetadataValue, MetadataMap};

/// The gRPC metadata key, from the host and to every plugin.
pub const HEADER: &str = "x-hookvisor-request-id";
/// Longest id accepted from a host; a longer or otherwise invalid one is replaced.
pub const MAX_LEN: usize = 128;

/// One host call's id: 1..=128 characters of `[A-Za-z0-9._:/-]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(Arc<str>);

impl RequestId {
    /// The host's id if it sent a valid one, else a new one.
    pub fn from_host(metadata: &MetadataMap) -> RequestId {
        metadata
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(RequestId::parse)
            .unwrap_or_default()
    }

    /// `text` as an id, if it is one. Only characters that are safe in a log line, a header and
    /// a JSON string unescaped: a host cannot inject anything through its id.
    pub fn parse(text: &str) -> Option<RequestId> {
        let valid = (1..=MAX_LEN).contains(&text.len())
            && text.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-')
            });
        valid.then(|| RequestId(Arc::from(text)))
    }

    /// A new id: this process's random prefix and a counter (unique within the process, and
    /// across restarts with overwhelming likelihood), 24 hex digits.
    pub fn new() -> RequestId {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        RequestId(Arc::from(format!("{:08x}{n:016x}", prefix())))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The id as a header value (valid by construction).
    pub fn header(&self) -> AsciiMetadataValue {
        AsciiMetadataValue::try_from(self.as_str())
            .unwrap_or_else(|_| AsciiMetadataValue::from_static("invalid"))
    }
}

impl Default for RequestId {
    fn default() -> Self {
        RequestId::new()
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// 32 random bits per process, from the standard library's randomly seeded hasher.
fn prefix() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    static PREFIX: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    *PREFIX.get_or_init(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        hasher.finish() as u32
    })
}

tokio::task_local! {
    static CURRENT: RequestId;
}

/// Runs `work` with `id` as the current request id (seen by [`current`] inside it).
pub async fn scope<F: Future>(id: RequestId, work: F) -> F::Output {
    CURRENT.scope(id, work).await
}

/// The request id of the host call being worked on, if any.
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(Clone::clone).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_id_is_kept_only_when_valid() {
        let mut metadata = MetadataMap::new();
        metadata.insert(HEADER, AsciiMetadataValue::from_static("run-42:call/7"));
        assert_eq!(RequestId::from_host(&metadata).as_str(), "run-42:call/7");
        for bad in ["", "a b", "quote\"", "x".repeat(MAX_LEN + 1).as_str()] {
            assert!(RequestId::parse(bad).is_none(), "{bad:?}");
        }
        let made = RequestId::from_host(&MetadataMap::new());
        assert_eq!(made.as_str().len(), 24);
        assert_ne!(made, RequestId::new());
    }

    #[tokio::test]
    async fn the_id_is_seen_inside_its_scope_only() {
        assert!(current().is_none());
        let id = RequestId::new();
        let seen = scope(id.clone(), async { current() }).await;
        assert_eq!(seen, Some(id));
    }
}
