//! `evaluate` in process: fake answerers under tokio's paused time, so every deadline and every
//! overlap is exact. (The same rules are tested with real processes in `tests/tests/`.)

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use hookvisor_proto::v1::{BlockKind, Failure, Outcome, Stage, ToolCallRequest};

use super::*;
use crate::decide::request;

/// What a fake answers, after `after`.
#[derive(Debug, Clone)]
enum Script {
    Allow,
    Block(&'static str),
    Rewrite(&'static str),
    Hang,
}

#[derive(Debug)]
struct Fake {
    script: Script,
    after: Duration,
    /// The params text of every call, in order.
    seen: Mutex<Vec<String>>,
    /// Calls dropped before they answered (cancelled).
    cancelled: Arc<AtomicUsize>,
}

/// Counts a call as cancelled unless it was disarmed by answering.
struct Armed(Option<Arc<AtomicUsize>>);

impl Drop for Armed {
    fn drop(&mut self) {
        if let Some(count) = self.0.take() {
            count.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Fake {
    fn new(script: Script, after_ms: u64) -> Arc<Fake> {
        Arc::new(Fake {
            script,
            after: Duration::from_millis(after_ms),
            seen: Mutex::new(Vec::new()),
            cancelled: Arc::new(AtomicUsize::new(0)),
        })
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

impl Answerer for Fake {
    fn before_tool_call(
        &self,
        request: BeforeToolCallRequest,
        _deadline: Duration,
    ) -> Answer<'_, ToolCallDecision> {
        if let Ok(mut seen) = self.seen.lock() {
            seen.push(request.params_json);
        }
        Box::pin(async move {
            let mut armed = Armed(Some(self.cancelled.clone()));
            tokio::time::sleep(self.after).await;
            let mut decision = ToolCallDecision::default();
            match self.script {
                Script::Allow => {}
                Script::Block(reason) => {
                    decision.block = true;
                    decision.block_reason = reason.to_owned();
                }
                Script::Rewrite(params) => decision.params_json = Some(params.to_owned()),
                Script::Hang => std::future::pending::<()>().await,
            }
            armed.0 = None;
            Ok(decision)
        })
    }

    fn before_session_create(
        &self,
        _request: BeforeSessionCreateRequest,
        _deadline: Duration,
    ) -> Answer<'_, SessionDecision> {
        Box::pin(async { Ok(SessionDecision::default()) })
    }

    fn session_created(&self, _event: SessionCreatedEvent, _deadline: Duration) -> Answer<'_, Ack> {
        Box::pin(async { Ok(Ack {}) })
    }
}

fn participant(name: &str, stage: Stage, fake: &Arc<Fake>, timeout_ms: Option<u64>) -> Participant {
    Participant {
        answerer: fake.clone(),
        slot: Slot {
            plugin: Arc::from(name),
            stage,
            skip_on_failure: false,
        },
        timeout: timeout_ms.map(Duration::from_millis),
    }
}

fn call(params: &str) -> ToolCall {
    request::tool_call(ToolCallRequest {
        tool_name: "exec".into(),
        params_json: params.into(),
        ..Default::default()
    })
    .expect("a valid request")
}

const HOOK: HookConfig = HookConfig {
    timeout_ms: 5000,
    revalidate: true,
};

fn budget() -> Budget {
    Budget::new(None, &HOOK)
}

#[tokio::test(start_paused = true)]
async fn hooks_are_called_concurrently() {
    let fakes: Vec<_> = (0..3).map(|_| Fake::new(Script::Allow, 100)).collect();
    let lineup = Lineup {
        policies: vec![],
        hooks: fakes
            .iter()
            .enumerate()
            .map(|(i, f)| participant(&format!("h{i}"), Stage::Hook, f, None))
            .collect(),
        ..Lineup::default()
    };
    let started = Instant::now();
    let verdict = before_tool_call(&lineup, &HOOK, &call("{}"), budget()).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(100),
        "three 100 ms hooks at once"
    );
    assert_eq!(verdict.outcome(), Outcome::Allow);
    let names: Vec<_> = verdict.trace.iter().map(|r| r.plugin.as_str()).collect();
    assert_eq!(names, ["h0", "h1", "h2"]);
}

#[tokio::test(start_paused = true)]
async fn an_answerer_that_never_answers_fails_at_its_deadline_exactly() {
    let hang = Fake::new(Script::Hang, 0);
    let lineup = Lineup {
        policies: vec![],
        hooks: vec![participant("sleeper", Stage::Hook, &hang, Some(200))],
        ..Lineup::default()
    };
    let started = Instant::now();
    let verdict = before_tool_call(&lineup, &HOOK, &call("{}"), budget()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.block_kind(), BlockKind::Failure);
    assert_eq!(
        verdict.block_reason,
        "plugin 'sleeper' timed out after 200 ms"
    );
    assert_eq!(verdict.trace[0].failure(), Failure::Timeout);
}

#[tokio::test(start_paused = true)]
async fn the_host_deadline_less_its_margin_bounds_every_plugin() {
    let hang = Fake::new(Script::Hang, 0);
    let lineup = Lineup {
        policies: vec![participant("policy", Stage::Policy, &hang, None)],
        hooks: vec![],
        ..Lineup::default()
    };
    let started = Instant::now();
    let budget = Budget::new(Some(Duration::from_millis(300)), &HOOK);
    let verdict = before_tool_call(&lineup, &HOOK, &call("{}"), budget).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(285),
        "300 ms less 5 %"
    );
    assert_eq!(
        verdict.block_reason,
        "plugin 'policy' timed out after 285 ms"
    );
}

#[tokio::test(start_paused = true)]
async fn once_decided_the_calls_still_in_flight_are_cancelled() {
    let blocker = Fake::new(Script::Block("no"), 10);
    let slow = Fake::new(Script::Hang, 0);
    let lineup = Lineup {
        policies: vec![],
        hooks: vec![
            participant("blocker", Stage::Hook, &blocker, None),
            participant("slow", Stage::Hook, &slow, None),
        ],
        ..Lineup::default()
    };
    let started = Instant::now();
    let verdict = before_tool_call(&lineup, &HOOK, &call("{}"), budget()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(10));
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.decided_by, "blocker");
    assert_eq!(
        slow.cancelled.load(Ordering::SeqCst),
        1,
        "the slow call was dropped"
    );
    assert_eq!(verdict.trace[1].outcome(), Outcome::Unspecified);
    assert!(verdict.trace[1].detail.starts_with("cancelled"));
}

#[tokio::test(start_paused = true)]
async fn policies_chain_and_revalidate_the_hook_rewrite() {
    let policy = Fake::new(Script::Rewrite(r#"{"a":1,"b":2}"#), 5);
    let hook = Fake::new(Script::Rewrite(r#"{"c":3}"#), 5);
    let lineup = Lineup {
        policies: vec![participant("policy", Stage::Policy, &policy, None)],
        hooks: vec![participant("hook", Stage::Hook, &hook, None)],
        ..Lineup::default()
    };
    let verdict = before_tool_call(&lineup, &HOOK, &call(r#"{ "a" : 1 }"#), budget()).await;
    assert_eq!(verdict.outcome(), Outcome::Allow);
    // The policy saw the canonical host params, then (revalidation) the hook's rewrite merged
    // over its own; the hook saw what the policy left.
    assert_eq!(policy.seen(), [r#"{"a":1}"#, r#"{"a":1,"b":2,"c":3}"#]);
    assert_eq!(hook.seen(), [r#"{"a":1,"b":2}"#]);
    // The policy's second answer (the same rewrite) replaces the object whole.
    assert_eq!(verdict.params_json, r#"{"a":1,"b":2}"#);
    assert!(verdict.trace[2].revalidation);
}
