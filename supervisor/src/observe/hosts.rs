//! The hosts that ask (contract §4.5): who each one says it is (`Hooks/ReportHost`), when it
//! last reported and called, the calls the supervisor decided for it per tool, and what its
//! processes say they asked and ran. This is how an operator sees that every tool call goes
//! through hookvisor: a host whose reports stop while its gateway is up is *silent*, and a tool
//! that ran more often than it was asked about has *unasked runs* (`hookvisor status`, the
//! metrics, the alert rules in docs/operations.md).
//!
//! Everything here is bounded, whatever the hosts send: at most [`MAX_HOSTS`] hosts (a new name
//! past that replaces a host that stopped or went quiet, else the report is refused), at most
//! [`MAX_TOOLS`] tools per host (the rest are counted as [`OTHER_TOOL`]), at most
//! [`MAX_PROCESSES`] reporting processes per host and [`MAX_PIDS`] known pids. A host's name is
//! bound to the uid that first reported it: another uid cannot report under it (to hide a
//! silent gateway behind a `stopping` report, say).
//!
//! Calls are attributed by the caller's pid (`SO_PEERCRED`), never by anything the caller says:
//! a process that never reported is counted under [`UNREPORTED`].

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hookvisor_proto::v1::{HostReport, HostStatus, HostToolStatus, ToolCount};
use tonic::Status;

use crate::decide::limits::MAX_TOOL_NAME_BYTES;
use crate::decide::request::{check_len, invalid};

/// Hosts kept at most (the [`UNREPORTED`] one included).
pub const MAX_HOSTS: usize = 64;
/// Tools kept per host; calls of any other tool count under [`OTHER_TOOL`].
pub const MAX_TOOLS: usize = 128;
/// Tools in one report at most.
pub const MAX_REPORT_TOOLS: usize = 256;
/// The longest host name, kind, version, policy id or adapter version, in bytes.
pub const MAX_HOST_TEXT_BYTES: usize = 128;
/// The longest report interval.
pub const MAX_INTERVAL_MS: u32 = 3_600_000;
/// Reporting processes kept per host (their latest report each).
pub const MAX_PROCESSES: usize = 16;
/// Known pids (pid → host) at most; the oldest is forgotten first.
pub const MAX_PIDS: usize = 1024;
/// The host that gathers the calls of processes that never reported.
pub const UNREPORTED: &str = "unreported";
/// The tool name that gathers calls past [`MAX_TOOLS`].
pub const OTHER_TOOL: &str = "_other";
/// A report this many intervals late makes its host silent.
const SILENT_AFTER_INTERVALS: u32 = 3;

/// The calling process, from the connection's `SO_PEERCRED`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    /// Its process id.
    pub pid: i32,
    /// Its user id.
    pub uid: u32,
}

/// Every host, behind one lock held for a few map operations per call.
#[derive(Debug, Default)]
pub struct Hosts {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    hosts: Vec<Host>,
    pids: HashMap<i32, String>,
    pid_order: VecDeque<i32>,
}

/// One process's latest counts: tool → (asked, ran).
type ProcessCounts = BTreeMap<String, (u64, u64)>;

#[derive(Debug)]
struct Host {
    name: String,
    kind: String,
    version: String,
    policy_id: String,
    adapter_version: String,
    /// The uid of its first report, bound to the name (none for [`UNREPORTED`]).
    owner: Option<u32>,
    caller: Option<Caller>,
    reported: Option<Instant>,
    interval: Duration,
    stopping: bool,
    last_call: Option<Instant>,
    /// Last report or call: the least recent goes first when the table is full.
    active: Instant,
    calls: u64,
    dispatch_calls: u64,
    tool_calls: BTreeMap<String, u64>,
    /// Each reporting process's latest counts (pid, tool → (asked, ran)), oldest first.
    processes: VecDeque<(i32, ProcessCounts)>,
}

impl Host {
    fn new(name: &str, now: Instant) -> Host {
        Host {
            name: name.to_owned(),
            kind: String::new(),
            version: String::new(),
            policy_id: String::new(),
            adapter_version: String::new(),
            owner: None,
            caller: None,
            reported: None,
            interval: Duration::ZERO,
            stopping: false,
            last_call: None,
            active: now,
            calls: 0,
            dispatch_calls: 0,
            tool_calls: BTreeMap::new(),
            processes: VecDeque::new(),
        }
    }

    fn silent(&self, now: Instant) -> bool {
        match self.reported {
            Some(at) if !self.stopping && !self.interval.is_zero() => {
                now.saturating_duration_since(at) > self.interval * SILENT_AFTER_INTERVALS
            }
            _ => false,
        }
    }

    /// May make room for another host: it stopped, will not report again, or went silent.
    fn replaceable(&self, now: Instant) -> bool {
        self.name != UNREPORTED && (self.stopping || self.interval.is_zero() || self.silent(now))
    }

    /// The tool's key in this host's tables: itself, or [`OTHER_TOOL`] once the table is full.
    fn tool_key(&self, tool: &str) -> String {
        if self.tool_calls.contains_key(tool) || self.tool_calls.len() < MAX_TOOLS {
            tool.to_owned()
        } else {
            OTHER_TOOL.to_owned()
        }
    }

    fn status(&self, now: Instant) -> HostStatus {
        let age_ms = |at: Option<Instant>| {
            at.map_or(0, |at| {
                u64::try_from(now.saturating_duration_since(at).as_millis()).unwrap_or(u64::MAX)
            })
        };
        // Per tool: the supervisor's calls, and the processes' reports summed (runs beyond asks
        // counted per process, so one process's extra asks never hide another's unasked runs).
        let mut tools: BTreeMap<&str, HostToolStatus> = BTreeMap::new();
        for (tool, &calls) in &self.tool_calls {
            tools.entry(tool).or_default().calls = calls;
        }
        for (_, counts) in &self.processes {
            for (tool, &(asked, ran)) in counts {
                let key = if tools.contains_key(tool.as_str()) || tools.len() < MAX_TOOLS {
                    tool.as_str()
                } else {
                    OTHER_TOOL
                };
                let entry = tools.entry(key).or_default();
                entry.asked = entry.asked.saturating_add(asked);
                entry.ran = entry.ran.saturating_add(ran);
                entry.unasked_runs = entry.unasked_runs.saturating_add(ran.saturating_sub(asked));
            }
        }
        let tools: Vec<HostToolStatus> = tools
            .into_iter()
            .map(|(tool, mut status)| {
                status.tool = tool.to_owned();
                status
            })
            .collect();
        HostStatus {
            host: self.name.clone(),
            kind: self.kind.clone(),
            version: self.version.clone(),
            policy_id: self.policy_id.clone(),
            adapter_version: self.adapter_version.clone(),
            pid: self.caller.map_or(0, |c| c.pid),
            uid: self.caller.map_or(0, |c| c.uid),
            report_age_ms: age_ms(self.reported),
            last_call_age_ms: age_ms(self.last_call),
            interval_ms: u32::try_from(self.interval.as_millis()).unwrap_or(u32::MAX),
            silent: self.silent(now),
            stopping: self.stopping,
            calls: self.calls,
            dispatch_calls: self.dispatch_calls,
            unasked_runs: tools
                .iter()
                .fold(0u64, |sum, t| sum.saturating_add(t.unasked_runs)),
            tools,
        }
    }
}

/// A host's text field: at most `limit` bytes, no control characters; `required` ones non-empty.
fn check_text(field: &str, value: &str, limit: usize, required: bool) -> Result<(), Status> {
    if required && value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    check_len(field, value, limit)?;
    if value.chars().any(char::is_control) {
        return Err(invalid(field, "must not contain control characters"));
    }
    Ok(())
}

/// Checks a report against §4.5's limits.
pub fn check(report: &HostReport) -> Result<(), Status> {
    check_text("host", &report.host, MAX_HOST_TEXT_BYTES, true)?;
    if report.host == UNREPORTED {
        return Err(invalid("host", format!("'{UNREPORTED}' is reserved")));
    }
    for (field, value) in [
        ("kind", &report.kind),
        ("version", &report.version),
        ("policy_id", &report.policy_id),
        ("adapter_version", &report.adapter_version),
    ] {
        check_text(field, value, MAX_HOST_TEXT_BYTES, false)?;
    }
    if report.interval_ms > MAX_INTERVAL_MS {
        return Err(invalid(
            "interval_ms",
            format!(
                "{} exceeds the limit of {MAX_INTERVAL_MS}",
                report.interval_ms
            ),
        ));
    }
    if report.tools.len() > MAX_REPORT_TOOLS {
        return Err(invalid(
            "tools",
            format!(
                "{} entries exceed the limit of {MAX_REPORT_TOOLS}",
                report.tools.len()
            ),
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for ToolCount { tool, .. } in &report.tools {
        if tool.is_empty() {
            return Err(invalid("tools.tool", "must not be empty"));
        }
        check_len("tools.tool", tool, MAX_TOOL_NAME_BYTES)?;
        if !seen.insert(tool.as_str()) {
            return Err(invalid("tools.tool", format!("{tool:?} appears twice")));
        }
    }
    Ok(())
}

impl Inner {
    fn find(&self, name: &str) -> Option<usize> {
        self.hosts.iter().position(|h| h.name == name)
    }

    /// The host's index, adding it (making room if needed) when it is new.
    fn slot(&mut self, name: &str, now: Instant) -> Result<usize, Status> {
        if let Some(i) = self.find(name) {
            return Ok(i);
        }
        if self.hosts.len() >= MAX_HOSTS {
            let Some(victim) = self
                .hosts
                .iter()
                .enumerate()
                .filter(|(_, h)| h.replaceable(now))
                .min_by_key(|(_, h)| h.active)
                .map(|(i, _)| i)
            else {
                return Err(Status::resource_exhausted(format!(
                    "host: {MAX_HOSTS} hosts already report and none has stopped or gone silent"
                )));
            };
            let gone = self.hosts.swap_remove(victim);
            self.pids.retain(|_, host| *host != gone.name);
            self.pid_order.retain(|pid| self.pids.contains_key(pid));
        }
        self.hosts.push(Host::new(name, now));
        Ok(self.hosts.len() - 1)
    }

    fn remember_pid(&mut self, pid: i32, name: &str) {
        if self.pids.insert(pid, name.to_owned()).is_none() {
            self.pid_order.push_back(pid);
            while self.pid_order.len() > MAX_PIDS {
                if let Some(old) = self.pid_order.pop_front() {
                    self.pids.remove(&old);
                }
            }
        }
    }
}

impl Hosts {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing here panics while holding the lock; a poisoned lock still holds valid tables.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records a report (already [`check`]ed) from `caller`.
    pub fn report(&self, caller: Option<Caller>, report: &HostReport) -> Result<(), Status> {
        let now = Instant::now();
        let mut inner = self.lock();
        if let Some(i) = inner.find(&report.host) {
            let owner = inner.hosts[i].owner;
            if let (Some(owner), Some(caller)) = (owner, caller)
                && owner != caller.uid
            {
                return Err(Status::permission_denied(format!(
                    "host: '{}' reports as uid {owner}, not uid {}",
                    report.host, caller.uid
                )));
            }
        }
        let i = inner.slot(&report.host, now)?;
        let host = &mut inner.hosts[i];
        host.kind.clone_from(&report.kind);
        host.version.clone_from(&report.version);
        host.policy_id.clone_from(&report.policy_id);
        host.adapter_version.clone_from(&report.adapter_version);
        host.owner = host.owner.or(caller.map(|c| c.uid));
        host.caller = caller.or(host.caller);
        host.reported = Some(now);
        host.active = now;
        host.interval = Duration::from_millis(u64::from(report.interval_ms));
        host.stopping = report.stopping;
        let pid = caller.map_or(0, |c| c.pid);
        let counts: ProcessCounts = report
            .tools
            .iter()
            .map(|t| (t.tool.clone(), (t.asked, t.ran)))
            .collect();
        host.processes.retain(|(p, _)| *p != pid);
        host.processes.push_back((pid, counts));
        while host.processes.len() > MAX_PROCESSES {
            host.processes.pop_front();
        }
        if let Some(caller) = caller {
            inner.remember_pid(caller.pid, &report.host);
        }
        Ok(())
    }

    /// Counts one decided call from `caller`: a tool call (`tool`, and whether it only
    /// dispatches another) or a session call (`None`).
    pub fn call(&self, caller: Option<Caller>, tool: Option<(&str, bool)>) {
        let now = Instant::now();
        let mut inner = self.lock();
        // On every host call: no allocation once the host and the tool are known.
        let known = caller
            .and_then(|c| inner.pids.get(&c.pid))
            .and_then(|name| inner.find(name));
        let i = match known.or_else(|| inner.find(UNREPORTED)) {
            Some(i) => i,
            // The unreported host always has room: it replaces a quiet host, or is added past
            // the cap (one entry).
            None => match inner.slot(UNREPORTED, now) {
                Ok(i) => i,
                Err(_) => {
                    inner.hosts.push(Host::new(UNREPORTED, now));
                    inner.hosts.len() - 1
                }
            },
        };
        let host = &mut inner.hosts[i];
        host.last_call = Some(now);
        host.active = now;
        if host.reported.is_none() {
            host.caller = caller;
        }
        if let Some((tool, dispatch)) = tool {
            if dispatch {
                host.dispatch_calls += 1;
            } else {
                host.calls += 1;
                match host.tool_calls.get_mut(tool) {
                    Some(calls) => *calls += 1,
                    None => {
                        let key = host.tool_key(tool);
                        *host.tool_calls.entry(key).or_insert(0) += 1;
                    }
                }
            }
        }
    }

    /// Every host, the most recently active first.
    pub fn list(&self) -> Vec<HostStatus> {
        let now = Instant::now();
        let inner = self.lock();
        let mut hosts: Vec<&Host> = inner.hosts.iter().collect();
        hosts.sort_by_key(|h| std::cmp::Reverse(h.active));
        hosts.into_iter().map(|h| h.status(now)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(host: &str) -> HostReport {
        HostReport {
            host: host.into(),
            kind: "openclaw".into(),
            interval_ms: 1000,
            ..HostReport::default()
        }
    }

    const GATEWAY: Caller = Caller { pid: 10, uid: 1000 };

    #[test]
    fn calls_go_to_the_host_that_reported_from_that_pid() {
        let hosts = Hosts::default();
        hosts.report(Some(GATEWAY), &report("gw")).expect("report");
        hosts.call(Some(GATEWAY), Some(("exec", false)));
        hosts.call(Some(GATEWAY), Some(("tool_call", true)));
        hosts.call(Some(Caller { pid: 11, uid: 1000 }), Some(("exec", false)));
        let list = hosts.list();
        let gw = list.iter().find(|h| h.host == "gw").expect("gw");
        assert_eq!((gw.calls, gw.dispatch_calls), (1, 1));
        assert_eq!(gw.tools.len(), 1);
        assert_eq!((gw.tools[0].tool.as_str(), gw.tools[0].calls), ("exec", 1));
        let other = list
            .iter()
            .find(|h| h.host == UNREPORTED)
            .expect("unreported");
        assert_eq!(other.calls, 1);
    }

    #[test]
    fn runs_beyond_asks_are_counted_per_process() {
        let hosts = Hosts::default();
        let mut r = report("gw");
        r.tools = vec![ToolCount {
            tool: "exec".into(),
            asked: 5,
            ran: 3,
        }];
        hosts.report(Some(GATEWAY), &r).expect("report");
        r.tools = vec![ToolCount {
            tool: "exec".into(),
            asked: 0,
            ran: 2,
        }];
        hosts
            .report(Some(Caller { pid: 12, uid: 1000 }), &r)
            .expect("report");
        let gw = &hosts.list()[0];
        assert_eq!(gw.unasked_runs, 2, "{gw:?}");
        assert_eq!((gw.tools[0].asked, gw.tools[0].ran), (5, 5));
    }

    #[test]
    fn a_name_stays_with_the_uid_that_first_reported_it() {
        let hosts = Hosts::default();
        hosts.report(Some(GATEWAY), &report("gw")).expect("report");
        let mut stop = report("gw");
        stop.stopping = true;
        let err = hosts
            .report(Some(Caller { pid: 99, uid: 1001 }), &stop)
            .expect_err("another uid");
        assert_eq!(err.code(), tonic::Code::PermissionDenied);
        assert!(!hosts.list()[0].stopping);
    }

    #[test]
    fn the_tables_stay_bounded() {
        let hosts = Hosts::default();
        for i in 0..MAX_HOSTS {
            hosts
                .report(Some(GATEWAY), &report(&format!("h{i}")))
                .expect("room");
        }
        let err = hosts
            .report(Some(GATEWAY), &report("one-more"))
            .expect_err("full");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        let mut quiet = report("h3");
        quiet.interval_ms = 0;
        hosts.report(Some(GATEWAY), &quiet).expect("h3");
        hosts
            .report(Some(GATEWAY), &report("one-more"))
            .expect("h3 made room");
        assert_eq!(hosts.list().len(), MAX_HOSTS);
        assert!(hosts.list().iter().all(|h| h.host != "h3"));

        hosts.report(Some(GATEWAY), &report("h0")).expect("h0");
        for i in 0..MAX_TOOLS + 10 {
            hosts.call(Some(GATEWAY), Some((&format!("t{i}"), false)));
        }
        let h0 = hosts
            .list()
            .into_iter()
            .find(|h| h.host == "h0")
            .expect("h0");
        assert_eq!(h0.tools.len(), MAX_TOOLS + 1);
        assert_eq!(
            h0.tools
                .iter()
                .find(|t| t.tool == OTHER_TOOL)
                .map(|t| t.calls),
            Some(10)
        );
    }

    /// Many processes reporting under one name, or one per pid: the pid table and each host's
    /// process list stay bounded, the oldest forgotten first.
    #[test]
    fn pids_and_processes_stay_bounded() {
        let hosts = Hosts::default();
        let many = i32::try_from(MAX_PIDS).expect("small") + 100;
        for pid in 1..=many {
            let mut r = report("gw");
            r.tools = vec![ToolCount {
                tool: "exec".into(),
                asked: 0,
                ran: 1,
            }];
            hosts
                .report(Some(Caller { pid, uid: 1000 }), &r)
                .expect("report");
        }
        let inner = hosts.lock();
        assert_eq!(inner.pids.len(), MAX_PIDS);
        assert_eq!(inner.pid_order.len(), MAX_PIDS);
        assert!(!inner.pids.contains_key(&1), "the oldest pid is forgotten");
        assert_eq!(inner.hosts[0].processes.len(), MAX_PROCESSES);
        drop(inner);
        // Only the processes kept count: their unasked runs, one each.
        assert_eq!(hosts.list()[0].unasked_runs, MAX_PROCESSES as u64);
    }

    #[test]
    fn reports_are_checked() {
        let bad = |f: fn(&mut HostReport)| {
            let mut r = report("gw");
            f(&mut r);
            check(&r).expect_err("refused").message().to_owned()
        };
        assert!(bad(|r| r.host.clear()).starts_with("host: must not be empty"));
        assert!(bad(|r| r.host = "a\nb".into()).contains("control characters"));
        assert!(bad(|r| r.host = "x".repeat(129)).contains("limit of 128 bytes"));
        assert!(bad(|r| r.host = UNREPORTED.into()).contains("reserved"));
        assert!(bad(|r| r.version = "\u{1b}[2J".into()).starts_with("version:"));
        assert!(bad(|r| r.interval_ms = MAX_INTERVAL_MS + 1).starts_with("interval_ms:"));
        assert!(
            bad(|r| r.tools = vec![ToolCount::default(); MAX_REPORT_TOOLS + 1])
                .starts_with("tools:")
        );
        assert!(
            bad(|r| {
                let t = ToolCount {
                    tool: "exec".into(),
                    ..ToolCount::default()
                };
                r.tools = vec![t.clone(), t];
            })
            .contains("appears twice")
        );
        check(&report("gw")).expect("valid");
    }
}
