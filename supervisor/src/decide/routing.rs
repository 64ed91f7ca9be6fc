//! Who takes part in a call (contract §3), pure: the trust rule and the registration limits
//! applied to what a plugin described, and the lineup of one call worked out from each plugin's
//! configuration and accepted registrations. No I/O, no clock.

use std::sync::Arc;
use std::time::Duration;

use hookvisor_proto::v1::{Hook, HookRegistration, Stage};

use crate::decide::limits::MAX_TOOL_NAME_BYTES;
use crate::decide::merge::Slot;
use crate::decide::stages::{Answerer, Lineup, Participant};
use crate::files::config::{OnFailure, PluginConfig, PluginMode};

pub use hookvisor_proto::limits::{MAX_REGISTERED_TOOLS, MAX_REGISTRATIONS};

/// Applies §3's trust rule and the registration limits to what `Describe` said, narrowed by the
/// configured `hooks`: the registrations that count, or why the whole plugin is rejected.
pub fn accept(
    config: &PluginConfig,
    described: &[HookRegistration],
) -> Result<Arc<[HookRegistration]>, String> {
    let name = &config.name;
    check_limits(name, described)?;
    if !config.trusted && described.iter().any(|r| r.stage == Stage::Policy as i32) {
        return Err(format!(
            "plugin '{name}' requested the policy stage but is not trusted"
        ));
    }
    let mut accepted = Vec::with_capacity(described.len());
    for r in described {
        match Hook::try_from(r.hook) {
            Ok(Hook::Unspecified) | Err(_) => {
                tracing::warn!(plugin = %name, hook = r.hook, "ignoring a registration for an unknown hook");
            }
            Ok(hook) if config.hooks.as_ref().is_some_and(|h| !h.contains(&hook)) => {}
            Ok(_) => accepted.push(r.clone()),
        }
    }
    Ok(accepted.into())
}

/// Bounds what one `Describe` may cost every later call (lineups are worked out per call).
fn check_limits(name: &str, described: &[HookRegistration]) -> Result<(), String> {
    if described.len() > MAX_REGISTRATIONS {
        return Err(format!(
            "plugin '{name}' described {} registrations (limit {MAX_REGISTRATIONS})",
            described.len()
        ));
    }
    let tools: usize = described.iter().map(|r| r.tools.len()).sum();
    if tools > MAX_REGISTERED_TOOLS {
        return Err(format!(
            "plugin '{name}' registered {tools} tool names (limit {MAX_REGISTERED_TOOLS})"
        ));
    }
    if let Some(long) = described
        .iter()
        .flat_map(|r| &r.tools)
        .find(|t| t.is_empty() || t.len() > MAX_TOOL_NAME_BYTES)
    {
        return Err(format!(
            "plugin '{name}' registered a tool name of {} bytes (allowed 1..={MAX_TOOL_NAME_BYTES})",
            long.len()
        ));
    }
    Ok(())
}

/// One configured plugin as routing sees it.
pub struct Candidate<'a> {
    /// Its configuration.
    pub config: &'a PluginConfig,
    /// Its configured name.
    pub name: &'a Arc<str>,
    /// Its accepted registrations; `None` until its first accepted `Describe`, during which it
    /// counts as registered for every blocking hook and every tool (its absence blocks).
    pub registrations: Option<Arc<[HookRegistration]>>,
    /// Who answers for it.
    pub answerer: Arc<dyn Answerer>,
}

/// The plugins taking part in `hook` for `tool`, split into the policy stage and the hook stage,
/// each by priority descending, ties in configuration order (`candidates` is in configuration
/// order). A plugin takes part at most once per stage.
pub fn lineup<'a>(
    candidates: impl IntoIterator<Item = Candidate<'a>>,
    hook: Hook,
    tool: Option<&str>,
) -> Lineup {
    let mut policy: Vec<(i32, Participant)> = Vec::new();
    let mut hooks: Vec<(i32, Participant)> = Vec::new();
    let mut shadows: Vec<(i32, Participant)> = Vec::new();
    for candidate in candidates {
        let config = candidate.config;
        if config
            .hooks
            .as_ref()
            .is_some_and(|allowed| !allowed.contains(&hook))
        {
            continue;
        }
        let configured_timeout = config.timeout_ms.map(|ms| Duration::from_millis(ms.into()));
        // A shadow is asked like a hook and never merged (§4.4); an observation has nothing to
        // merge, so there it is an ordinary subscriber.
        let shadow = config.mode == PluginMode::Shadow && hook != Hook::SessionCreated;
        let mut add = |stage: Stage, priority: i32, timeout: Option<Duration>| {
            let (stage, list) = if shadow {
                (Stage::Hook, &mut shadows)
            } else if stage == Stage::Policy {
                (stage, &mut policy)
            } else {
                (stage, &mut hooks)
            };
            if list.iter().any(|(_, p)| p.slot.plugin == *candidate.name) {
                return;
            }
            list.push((
                priority,
                Participant {
                    answerer: candidate.answerer.clone(),
                    slot: Slot {
                        plugin: candidate.name.clone(),
                        stage,
                        skip_on_failure: config.on_failure == OnFailure::Skip && !config.trusted,
                    },
                    timeout,
                    speculative: config.speculative && stage == Stage::Hook && !shadow,
                    rewrites_params: config.rewrites_params,
                },
            ));
        };
        match &candidate.registrations {
            None if hook != Hook::SessionCreated => {
                let stage = if config.trusted {
                    Stage::Policy
                } else {
                    Stage::Hook
                };
                add(stage, config.priority.unwrap_or(0), configured_timeout);
            }
            None => {}
            Some(registrations) => {
                for r in registrations.iter().filter(|r| r.hook == hook as i32) {
                    if tool.is_some_and(|t| !r.tools.is_empty() && !r.tools.iter().any(|x| x == t))
                    {
                        continue;
                    }
                    let stage = match r.stage() {
                        Stage::Policy => Stage::Policy,
                        Stage::Hook | Stage::Unspecified => Stage::Hook,
                    };
                    let own =
                        (r.timeout_ms > 0).then(|| Duration::from_millis(r.timeout_ms.into()));
                    add(
                        stage,
                        config.priority.unwrap_or(r.priority),
                        configured_timeout.or(own),
                    );
                }
            }
        }
    }
    // A stable sort keeps configuration order among equal priorities.
    let order = |mut list: Vec<(i32, Participant)>| {
        list.sort_by_key(|(priority, _)| std::cmp::Reverse(*priority));
        list.into_iter().map(|(_, p)| p).collect()
    };
    Lineup {
        policies: order(policy),
        hooks: order(hooks),
        shadows: order(shadows),
    }
}
