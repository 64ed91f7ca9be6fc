"""What a plugin tells the supervisor about itself in `Describe`: `Info` and its `Registration`s."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from ._proto.hookvisor.v1 import hookvisor_pb2 as pb

#: The protocol version every plugin answers in `Describe` (contract §2.4).
PROTOCOL_VERSION = 1


class Hook(enum.IntEnum):
    """The event a registration serves (values are the proto's `Hook`)."""

    BEFORE_TOOL_CALL = pb.HOOK_BEFORE_TOOL_CALL
    BEFORE_SESSION_CREATE = pb.HOOK_BEFORE_SESSION_CREATE
    SESSION_CREATED = pb.HOOK_SESSION_CREATED


class Stage(enum.IntEnum):
    """Where a registration runs: trusted policies first, then ordinary hooks (contract §4)."""

    POLICY = pb.STAGE_POLICY
    HOOK = pb.STAGE_HOOK


@dataclass(frozen=True)
class Registration:
    """One hook a plugin serves.

    The operator's configuration overrides `priority` and `timeout_ms`, and decides whether
    `Stage.POLICY` is accepted at all (only from plugins configured `trusted = true`).
    """

    hook: Hook
    #: The stage to run in.
    stage: Stage = Stage.HOOK
    #: Higher runs (and merges) first.
    priority: int = 0
    #: Exact tool names this applies to; empty means every tool.
    tools: Sequence[str] = ()
    #: The plugin's own timeout in milliseconds; 0 leaves it to the configuration.
    timeout_ms: int = 0

    def __post_init__(self) -> None:
        # A lone string is a sequence of characters, never what the author meant.
        if isinstance(self.tools, str):
            raise TypeError(f"tools must be a list of tool names, not the string {self.tools!r}")
        object.__setattr__(self, "tools", tuple(self.tools))

    @classmethod
    def before_tool_call(
        cls,
        *,
        tools: Sequence[str] = (),
        stage: Stage = Stage.HOOK,
        priority: int = 0,
        timeout_ms: int = 0,
    ) -> Registration:
        """Serve `before_tool_call`, for `tools` (empty: every tool)."""
        return cls(Hook.BEFORE_TOOL_CALL, stage, priority, tools, timeout_ms)

    @classmethod
    def before_session_create(
        cls, *, stage: Stage = Stage.HOOK, priority: int = 0, timeout_ms: int = 0
    ) -> Registration:
        """Serve `before_session_create`."""
        return cls(Hook.BEFORE_SESSION_CREATE, stage, priority, (), timeout_ms)

    @classmethod
    def session_created(cls, *, priority: int = 0, timeout_ms: int = 0) -> Registration:
        """Subscribe to `session_created` (an observation: it never blocks)."""
        return cls(Hook.SESSION_CREATED, Stage.HOOK, priority, (), timeout_ms)

    def to_proto(self) -> pb.HookRegistration:
        """The `HookRegistration` sent in `Describe`."""
        return pb.HookRegistration(
            hook=self.hook.value,
            stage=self.stage.value,
            priority=self.priority,
            tools=list(self.tools),
            timeout_ms=self.timeout_ms,
        )


@dataclass(frozen=True)
class Info:
    """A plugin's name, version and registrations; `Describe` answers it.

    An empty name is replaced by the configured name (`HOOKVISOR_PLUGIN_NAME`) when served.
    """

    name: str = ""
    version: str = ""
    #: One registration per hook served.
    hooks: Sequence[Registration] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "hooks", tuple(self.hooks))

    def to_proto(self) -> pb.PluginInfo:
        """The `PluginInfo` answered by `Describe`, at protocol version 1."""
        return pb.PluginInfo(
            name=self.name,
            version=self.version,
            protocol_version=PROTOCOL_VERSION,
            hooks=[r.to_proto() for r in self.hooks],
        )
