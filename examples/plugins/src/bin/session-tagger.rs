//! `session-tagger`: labels new sessions and keeps some agents from starting them.
//!
//! Registers `before_session_create` and `session_created`, both in the hook stage. Before a
//! session is created it blocks agents on the block list (`agent 'X' may not start sessions`);
//! otherwise it sets its own metadata namespace to
//! `{"labels": [...], "agent_id": "...", "model": "..."}`. When a session has been created it
//! prints one line about it to stdout, which hookvisor logs under the plugin's name.
//!
//! Configuration (environment):
//! - `SESSION_TAGGER_BLOCK_AGENTS`: comma-separated agent ids that may not start sessions;
//!   default none.
//! - `SESSION_TAGGER_LABELS`: comma-separated labels to attach; default `hookvisor`.
use std::process::ExitCode;

use hookvisor_examples::env_list;
use hookvisor_plugin::serde_json::{Value, json};
use hookvisor_plugin::{
    Info, Plugin, Registration, SessionCreate, SessionCreated, Stage, Status, proto, session,
};

struct SessionTagger {
    blocked_agents: Vec<String>,
    labels: Vec<String>,
}

impl SessionTagger {
    fn from_env() -> Self {
        Self {
            blocked_agents: env_list("SESSION_TAGGER_BLOCK_AGENTS", ""),
            labels: env_list("SESSION_TAGGER_LABELS", "hookvisor"),
        }
    }

    /// Block reason for this agent, or the metadata to set.
    fn decide(&self, agent_id: &str, model: &str) -> Result<Value, String> {
        if self.blocked_agents.iter().any(|a| a == agent_id) {
            return Err(format!("agent '{agent_id}' may not start sessions"));
        }
        Ok(json!({ "labels": self.labels, "agent_id": agent_id, "model": model }))
    }
}

impl Plugin for SessionTagger {
    fn info(&self) -> Info {
        Info::new("session-tagger", env!("CARGO_PKG_VERSION"))
            .hook(Registration::before_session_create().stage(Stage::Hook))
            .hook(Registration::session_created().stage(Stage::Hook))
    }

    async fn before_session_create(
        &self,
        new: SessionCreate,
    ) -> Result<proto::SessionDecision, Status> {
        Ok(match self.decide(&new.agent_id, &new.model) {
            Ok(metadata) => session::patch(metadata),
            Err(reason) => session::block(reason),
        })
    }

    async fn session_created(&self, event: SessionCreated) -> Result<(), Status> {
        let labels = event
            .metadata
            .as_ref()
            .and_then(|m| m.get("labels"))
            .cloned()
            .unwrap_or_default();
        println!(
            "session created: key={} id={} agent={} labels={labels}",
            event.session_key, event.session_id, event.agent_id
        );
        Ok(())
    }
}

fn main() -> ExitCode {
    hookvisor_plugin::run(SessionTagger::from_env())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hookvisor_examples::comma_list;

    fn tagger(blocked: &str, labels: &str) -> SessionTagger {
        SessionTagger {
            blocked_agents: comma_list(blocked),
            labels: comma_list(labels),
        }
    }

    #[test]
    fn comma_lists_drop_blanks_and_spaces() {
        assert_eq!(comma_list(" a, b ,,c "), ["a", "b", "c"]);
        assert!(comma_list("").is_empty());
    }

    #[test]
    fn blocks_listed_agents() {
        let t = tagger("intern,guest", "x");
        assert_eq!(
            t.decide("guest", "m").unwrap_err(),
            "agent 'guest' may not start sessions"
        );
        assert!(t.decide("main", "m").is_ok());
    }

    #[test]
    fn patches_labels_agent_and_model() {
        let t = tagger("", "hookvisor,prod");
        assert_eq!(
            t.decide("main", "gpt").unwrap(),
            json!({"labels": ["hookvisor", "prod"], "agent_id": "main", "model": "gpt"})
        );
    }
}
