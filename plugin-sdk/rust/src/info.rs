//! What a plugin tells the supervisor about itself in `Describe`.

use crate::proto;
use crate::{Hook, Stage};

/// A plugin's name, version and hook registrations; becomes `PluginInfo`.
///
/// An empty name is replaced by the configured name (`HOOKVISOR_PLUGIN_NAME`) when served.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Info {
    /// The plugin's own name; hookvisor identifies it by its configured name regardless.
    pub name: String,
    /// The plugin's version, shown in status output.
    pub version: String,
    /// One registration per hook served.
    pub hooks: Vec<Registration>,
}

impl Info {
    /// A plugin that serves no hooks yet.
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            hooks: Vec::new(),
        }
    }

    /// Adds a hook registration.
    #[must_use]
    pub fn hook(mut self, registration: Registration) -> Self {
        self.hooks.push(registration);
        self
    }

    /// The `PluginInfo` answered by `Describe`, at protocol version 1.
    pub fn to_proto(&self) -> proto::PluginInfo {
        proto::PluginInfo {
            name: self.name.clone(),
            version: self.version.clone(),
            protocol_version: hookvisor_proto::PROTOCOL_VERSION,
            hooks: self.hooks.iter().map(Registration::to_proto).collect(),
        }
    }
}

/// One hook a plugin serves: which hook, stage, priority, tools and timeout.
///
/// The operator's configuration overrides `priority` and `timeout_ms`, and decides whether
/// [`Stage::Policy`] is accepted at all (only from plugins configured `trusted = true`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Registration {
    /// The hook served.
    pub hook: Hook,
    /// The stage to run in; [`Stage::Hook`] unless set.
    pub stage: Stage,
    /// Higher runs (and merges) first; 0 unless set.
    pub priority: i32,
    /// Exact tool names this applies to; empty means every tool.
    pub tools: Vec<String>,
    /// The plugin's own timeout in milliseconds; 0 leaves it to the configuration.
    pub timeout_ms: u32,
}

impl Registration {
    /// A registration for `hook` in the hook stage, priority 0, every tool, no timeout of its own.
    pub fn new(hook: Hook) -> Self {
        Self {
            hook,
            stage: Stage::Hook,
            priority: 0,
            tools: Vec::new(),
            timeout_ms: 0,
        }
    }

    /// Serve `before_tool_call`.
    pub fn before_tool_call() -> Self {
        Self::new(Hook::BeforeToolCall)
    }

    /// Serve `before_session_create`.
    pub fn before_session_create() -> Self {
        Self::new(Hook::BeforeSessionCreate)
    }

    /// Subscribe to `session_created`.
    pub fn session_created() -> Self {
        Self::new(Hook::SessionCreated)
    }

    /// Sets the stage.
    #[must_use]
    pub fn stage(mut self, stage: Stage) -> Self {
        self.stage = stage;
        self
    }

    /// Sets the priority (higher first).
    #[must_use]
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Limits the registration to these exact tool names (replacing any set before).
    #[must_use]
    pub fn tools<I, S>(mut self, tools: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.tools = tools.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the plugin's own timeout in milliseconds.
    #[must_use]
    pub fn timeout_ms(mut self, timeout_ms: u32) -> Self {
        self.timeout_ms = timeout_ms;
        self
    }

    /// The `HookRegistration` sent in `Describe`.
    pub fn to_proto(&self) -> proto::HookRegistration {
        proto::HookRegistration {
            hook: self.hook.into(),
            stage: self.stage.into(),
            priority: self.priority,
            tools: self.tools.clone(),
            timeout_ms: self.timeout_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_builder_sets_every_field() {
        let r = Registration::before_tool_call()
            .stage(Stage::Policy)
            .priority(100)
            .tools(["exec", "shell"])
            .timeout_ms(200)
            .to_proto();
        assert_eq!(r.hook, Hook::BeforeToolCall as i32);
        assert_eq!(r.stage, Stage::Policy as i32);
        assert_eq!(r.priority, 100);
        assert_eq!(r.tools, ["exec", "shell"]);
        assert_eq!(r.timeout_ms, 200);
    }

    #[test]
    fn registration_defaults_to_hook_stage_and_every_tool() {
        let r = Registration::session_created().to_proto();
        assert_eq!(r.hook, Hook::SessionCreated as i32);
        assert_eq!(r.stage, Stage::Hook as i32);
        assert!(r.tools.is_empty());
        assert_eq!((r.priority, r.timeout_ms), (0, 0));
    }

    #[test]
    fn info_describes_protocol_version_1_and_all_hooks() {
        let info = Info::new("tagger", "1.2.3")
            .hook(Registration::before_session_create())
            .hook(Registration::session_created())
            .to_proto();
        assert_eq!(info.name, "tagger");
        assert_eq!(info.version, "1.2.3");
        assert_eq!(info.protocol_version, 1);
        let hooks: Vec<i32> = info.hooks.iter().map(|h| h.hook).collect();
        assert_eq!(
            hooks,
            [
                Hook::BeforeSessionCreate as i32,
                Hook::SessionCreated as i32
            ]
        );
    }
}
