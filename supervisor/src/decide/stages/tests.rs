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
    /// Blocks when the params it was given contain this text, allows otherwise.
    BlockIf(&'static str),
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
        request: ToolAsk,
        _deadline: Duration,
    ) -> Answer<'_, ToolCallDecision> {
        let request = request.request();
        let matched = match self.script {
            Script::BlockIf(text) => request.params_json.contains(text),
            _ => false,
        };
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
                Script::BlockIf(_) if matched => {
                    decision.block = true;
                    decision.block_reason = "matched".to_owned();
                }
                Script::BlockIf(_) => {}
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
        speculative: false,
        rewrites_params: true,
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

// ---------------------------------------------------------------------------------------------
// Speculative hooks (§4.6)

fn speculative(mut p: Participant) -> Participant {
    p.speculative = true;
    p
}

fn keeps_params(mut p: Participant) -> Participant {
    p.rewrites_params = false;
    p
}

/// A lineup of one policy, configured `rewrites_params = false`, and `hooks`.
fn guarded(policy: &Arc<Fake>, hooks: Vec<Participant>) -> Lineup {
    Lineup {
        policies: vec![keeps_params(participant(
            "policy",
            Stage::Policy,
            policy,
            None,
        ))],
        hooks,
        ..Lineup::default()
    }
}

#[tokio::test(start_paused = true)]
async fn speculative_hooks_are_asked_beside_the_policy_stage() {
    let policy = Fake::new(Script::Allow, 10);
    let early = Fake::new(Script::Allow, 10);
    let late = Fake::new(Script::Allow, 10);
    let lineup = guarded(
        &policy,
        vec![
            speculative(participant("early", Stage::Hook, &early, None)),
            participant("late", Stage::Hook, &late, None),
        ],
    );
    let started = Instant::now();
    let verdict = before_tool_call(&lineup, &HOOK, &call(r#"{"a":1}"#), budget()).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(20),
        "the speculative hook answered during the policy stage; only the other one waited"
    );
    assert_eq!(verdict.outcome(), Outcome::Allow);
    let order: Vec<_> = verdict.trace.iter().map(|t| t.plugin.as_str()).collect();
    assert_eq!(
        order,
        ["policy", "early", "late"],
        "merge order is unchanged"
    );
    assert_eq!(early.seen(), [r#"{"a":1}"#]);
}

#[tokio::test(start_paused = true)]
async fn a_policy_block_cancels_the_speculative_hooks() {
    let policy = Fake::new(Script::Block("no"), 10);
    let early = Fake::new(Script::Hang, 0);
    let lineup = guarded(
        &policy,
        vec![speculative(participant("early", Stage::Hook, &early, None))],
    );
    let started = Instant::now();
    let verdict = before_tool_call(&lineup, &HOOK, &call("{}"), budget()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(10));
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.decided_by, "policy");
    assert_eq!(early.cancelled.load(Ordering::SeqCst), 1);
    assert_eq!(verdict.trace.len(), 1, "as if the hook was never asked");
}

#[tokio::test(start_paused = true)]
async fn a_rewrite_from_a_plugin_that_may_not_rewrite_is_an_invalid_answer() {
    let policy = Fake::new(Script::Rewrite(r#"{"redacted":true}"#), 1);
    let lineup = guarded(&policy, vec![]);
    let verdict = before_tool_call(&lineup, &HOOK, &call(r#"{"a":1}"#), budget()).await;
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.trace[0].failure(), Failure::InvalidResponse);
    assert_eq!(
        verdict.block_reason,
        "plugin 'policy' returned an invalid response: params_json is set, but the plugin is \
         configured with rewrites_params = false"
    );
    assert_eq!(verdict.params_json, r#"{"a":1}"#);
}

#[tokio::test(start_paused = true)]
async fn speculative_hooks_are_asked_again_when_a_policy_rewrote_after_all() {
    // Configuration refuses this lineup (a speculative hook after a policy that may rewrite);
    // the stages still give the sequential result.
    let policy = Fake::new(Script::Rewrite(r#"{"a":2}"#), 10);
    let early = Fake::new(Script::Allow, 5);
    let lineup = Lineup {
        policies: vec![participant("policy", Stage::Policy, &policy, None)],
        hooks: vec![speculative(participant("early", Stage::Hook, &early, None))],
        ..Lineup::default()
    };
    let verdict = before_tool_call(&lineup, &HOOK, &call(r#"{"a":1}"#), budget()).await;
    assert_eq!(early.seen(), [r#"{"a":1}"#, r#"{"a":2}"#]);
    assert_eq!(verdict.outcome(), Outcome::Allow);
    assert_eq!(verdict.params_json, r#"{"a":2}"#);
}

#[tokio::test(start_paused = true)]
async fn speculative_session_hooks_are_cancelled_by_a_policy_block() {
    #[derive(Debug)]
    struct Session {
        block: bool,
        after: Duration,
        asked: AtomicUsize,
    }
    impl Answerer for Session {
        fn before_tool_call(
            &self,
            _request: ToolAsk,
            _deadline: Duration,
        ) -> Answer<'_, ToolCallDecision> {
            Box::pin(async { Ok(ToolCallDecision::default()) })
        }
        fn before_session_create(
            &self,
            _request: BeforeSessionCreateRequest,
            _deadline: Duration,
        ) -> Answer<'_, SessionDecision> {
            self.asked.fetch_add(1, Ordering::SeqCst);
            Box::pin(async move {
                tokio::time::sleep(self.after).await;
                Ok(SessionDecision {
                    block: self.block,
                    block_reason: "no".into(),
                    ..SessionDecision::default()
                })
            })
        }
        fn session_created(
            &self,
            _event: SessionCreatedEvent,
            _deadline: Duration,
        ) -> Answer<'_, Ack> {
            Box::pin(async { Ok(Ack {}) })
        }
    }
    let answerer = |block: bool, ms: u64| -> Arc<Session> {
        Arc::new(Session {
            block,
            after: Duration::from_millis(ms),
            asked: AtomicUsize::new(0),
        })
    };
    let lineup_of = |policy: &Arc<Session>, hook: &Arc<Session>| Lineup {
        policies: vec![Participant {
            answerer: policy.clone(),
            slot: Slot {
                plugin: Arc::from("policy"),
                stage: Stage::Policy,
                skip_on_failure: false,
            },
            timeout: None,
            speculative: false,
            rewrites_params: false,
        }],
        hooks: vec![Participant {
            answerer: hook.clone(),
            slot: Slot {
                plugin: Arc::from("hook"),
                stage: Stage::Hook,
                skip_on_failure: false,
            },
            timeout: None,
            speculative: true,
            rewrites_params: true,
        }],
        ..Lineup::default()
    };
    let request = SessionCreateRequest::default();

    let (policy, hook) = (answerer(false, 10), answerer(false, 10));
    let started = Instant::now();
    let verdict = before_session_create(&lineup_of(&policy, &hook), &request, budget()).await;
    assert_eq!(started.elapsed(), Duration::from_millis(10), "side by side");
    assert_eq!(verdict.trace.len(), 2);
    assert_eq!(verdict.outcome(), Outcome::Allow);

    let (policy, hook) = (answerer(true, 10), answerer(false, 50));
    let started = Instant::now();
    let verdict = before_session_create(&lineup_of(&policy, &hook), &request, budget()).await;
    assert_eq!(
        started.elapsed(),
        Duration::from_millis(10),
        "not waited for"
    );
    assert_eq!(verdict.outcome(), Outcome::Block);
    assert_eq!(verdict.trace.len(), 1, "as if the hook was never asked");
    assert_eq!(hook.asked.load(Ordering::SeqCst), 1);
}

mod speculation {
    //! The merge result with speculative hooks equals the sequential one, over random answers,
    //! delays and failures (the property §4.6 promises).

    use proptest::prelude::*;

    use super::*;

    const REWRITES: [&str; 3] = [r#"{"a":2}"#, r#"{"b":true}"#, r#"{"a":1,"c":"x"}"#];

    fn script() -> impl Strategy<Value = Script> {
        prop_oneof![
            4 => Just(Script::Allow),
            2 => Just(Script::Block("no")),
            2 => (0..REWRITES.len()).prop_map(|i| Script::Rewrite(REWRITES[i])),
            // An answer that depends on the params seen: a hook asked with stale params answers
            // differently.
            2 => prop_oneof![Just("\"a\":1"), Just("\"a\":2"), Just("\"b\"")].prop_map(Script::BlockIf),
            1 => Just(Script::Hang),
        ]
    }

    /// One plugin: what it answers, after how long, and (hooks) whether it is speculative.
    fn plugin() -> impl Strategy<Value = (Script, u64, bool)> {
        (script(), 0u64..40, any::<bool>())
    }

    fn lineup(
        policies: &[(Script, u64, bool)],
        hooks: &[(Script, u64, bool)],
        speculate: bool,
        keep_params: bool,
    ) -> Lineup {
        let made = |name: String, stage: Stage, (script, after, spec): &(Script, u64, bool)| {
            // Every plugin has a timeout of its own, shorter than the budget, so that a hang
            // fails after the same time whenever it was asked.
            let mut p = participant(&name, stage, &Fake::new(script.clone(), *after), Some(30));
            p.speculative = speculate && *spec && stage == Stage::Hook;
            p.rewrites_params = !(keep_params && stage == Stage::Policy);
            p
        };
        Lineup {
            policies: policies
                .iter()
                .enumerate()
                .map(|(i, p)| made(format!("p{i}"), Stage::Policy, p))
                .collect(),
            hooks: hooks
                .iter()
                .enumerate()
                .map(|(i, p)| made(format!("h{i}"), Stage::Hook, p))
                .collect(),
            ..Lineup::default()
        }
    }

    fn verdict(lineup: &Lineup) -> ToolCallVerdict {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .expect("a runtime");
        let mut verdict = runtime.block_on(async {
            before_tool_call(lineup, &HOOK, &call(r#"{"a":1}"#), budget()).await
        });
        for entry in &mut verdict.trace {
            entry.latency_us = 0; // when each was asked differs; nothing else may
        }
        verdict
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        #[test]
        fn speculative_equals_sequential(
            policies in proptest::collection::vec(plugin(), 0..3),
            hooks in proptest::collection::vec(plugin(), 0..5),
            keep_params in any::<bool>(),
        ) {
            let sequential = verdict(&lineup(&policies, &hooks, false, keep_params));
            let speculative = verdict(&lineup(&policies, &hooks, true, keep_params));
            prop_assert_eq!(speculative, sequential);
        }
    }
}

#[test]
fn a_tool_ask_encodes_as_the_request_it_stands_for() {
    let mut call = call(r#"{"command":"ls -la"}"#);
    call.request.context = Some(hookvisor_proto::v1::ToolCallContext {
        agent_id: "main".into(),
        session_key: "agent:main".into(),
        workspace_dir: "/w".into(),
        ..Default::default()
    });
    let cases = [
        (call.request.params_json.clone(), String::new(), 0),
        (r#"{"a":1}"#.to_owned(), r#"{"tag":"x"}"#.to_owned(), 1500),
        (String::new(), String::new(), u32::MAX),
    ];
    for (params_json, session_metadata_json, deadline_ms) in cases {
        let expected = BeforeToolCallRequest {
            tool_name: call.request.tool_name.clone(),
            params_json: params_json.clone(),
            context: call.request.context.clone(),
            session_metadata_json: session_metadata_json.clone(),
            deadline_ms,
        };
        let ask = ToolAsk {
            shared: ToolAsk::shared(&call, &params_json),
            session_metadata_json,
            deadline_ms,
        };
        assert_eq!(ask.encoded_len(), expected.encoded_len());
        assert_eq!(
            ask.encode_to_vec(),
            expected.encode_to_vec(),
            "the same bytes"
        );
        assert_eq!(ask.request(), expected);
    }
}
