"""The base class of a synchronous plugin (for coroutines see `hookvisor_plugin.aio.Plugin`)."""

from __future__ import annotations

import abc

from . import decision
from .call import SessionCreate, SessionCreated, ToolCall
from .decision import SessionDecision, ToolCallDecision
from .info import Info


class Plugin(abc.ABC):
    """A hookvisor plugin whose handlers are plain functions, run on a bounded thread pool.

    Every hook has a default that answers "no opinion", so a plugin overrides only the hooks it
    registers in `info()`. Handlers may run concurrently (one thread per call in flight): guard
    shared state with a lock. Raising makes the supervisor count the call as failed, which
    blocks; raise `StatusError` to choose the gRPC status.
    """

    @abc.abstractmethod
    def info(self) -> Info:
        """Name, version and hooks served; `Describe` answers it. Called once at start."""

    def before_tool_call(self, call: ToolCall) -> ToolCallDecision:
        """May this tool call run, with these params? Default: no opinion."""
        return decision.allow()

    def before_session_create(self, session: SessionCreate) -> SessionDecision:
        """May this session be created? Default: no opinion."""
        return decision.allow_session()

    def session_created(self, event: SessionCreated) -> None:
        """A session was created (observation only; never blocks). Default: ignore it."""
        return
