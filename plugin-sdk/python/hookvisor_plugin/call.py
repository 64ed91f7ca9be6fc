"""Parsed views of the requests a plugin answers: JSON decoded, context as plain dataclasses.

JSON is decoded by `jsontext.loads`, which keeps every number exactly: an integer is an `int`, a
number with a fraction or an exponent a `decimal.Decimal` (never a `float`).

Each view is built from its request by `from_proto`; a request whose JSON does not parse is the
supervisor's bug, answered with `INVALID_ARGUMENT` naming the field (the supervisor counts that as
a failure, which blocks).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import grpc

from . import jsontext
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from .errors import StatusError

#: A JSON object as Python sees it (numbers: `int` or `decimal.Decimal`, see `jsontext`).
JSONObject = dict[str, Any]


@dataclass(frozen=True)
class Requester:
    """Who asked the agent to act."""

    channel: str = ""
    account_id: str = ""
    sender_id: str = ""
    sender_is_owner: bool = False

    @classmethod
    def from_proto(cls, msg: pb.Requester) -> Requester:
        """The view of a `Requester` message."""
        return cls(msg.channel, msg.account_id, msg.sender_id, msg.sender_is_owner)


@dataclass(frozen=True)
class ToolCallContext:
    """Where a tool call happens; every field is `""` when the host did not say."""

    agent_id: str = ""
    session_key: str = ""
    session_id: str = ""
    run_id: str = ""
    tool_call_id: str = ""
    #: The agent's workspace on the host; path-checking plugins compare against it.
    workspace_dir: str = ""
    #: The workspace as seen inside a sandbox container, when there is one.
    container_workdir: str = ""
    channel_id: str = ""
    #: Who asked; `None` when the host did not say.
    requester: Requester | None = None

    @classmethod
    def from_proto(cls, msg: pb.ToolCallContext) -> ToolCallContext:
        """The view of a `ToolCallContext` message."""
        return cls(
            agent_id=msg.agent_id,
            session_key=msg.session_key,
            session_id=msg.session_id,
            run_id=msg.run_id,
            tool_call_id=msg.tool_call_id,
            workspace_dir=msg.workspace_dir,
            container_workdir=msg.container_workdir,
            channel_id=msg.channel_id,
            requester=Requester.from_proto(msg.requester) if msg.HasField("requester") else None,
        )


def _new_event() -> threading.Event:
    return threading.Event()


@dataclass(frozen=True)
class ToolCall:
    """A `before_tool_call` question: which tool, with which params, in which context."""

    #: The tool's name, e.g. `exec`.
    tool_name: str
    #: The params, a JSON object (for policies: as left by the previous policy). Numbers are kept
    #: exactly: `int` for an integer, `decimal.Decimal` for one with a fraction or an exponent.
    params: JSONObject
    #: Who is calling and where.
    context: ToolCallContext = field(default_factory=ToolCallContext)
    #: This plugin's namespace of the session metadata; `None` when absent (or JSON null).
    metadata: Any = None
    #: How long the supervisor will wait for the answer, in ms (0 if it did not say).
    deadline_ms: int = 0
    #: The host call's request id (`x-hookvisor-request-id`), for matching logs; `""` if none.
    request_id: str = ""
    #: The call's W3C trace context (`traceparent` metadata, `00-<trace id>-<parent id>-<flags>`)
    #: when the supervisor traces, to continue its trace; `""` if none (or not of that shape).
    traceparent: str = ""
    #: Set once the supervisor stopped waiting for this answer (it cancelled the call, the
    #: deadline passed, or the plugin is stopping). A slow synchronous handler can check it, or
    #: `wait()` on it, to give up early instead of holding a worker thread.
    cancelled: threading.Event = field(default_factory=_new_event, compare=False, repr=False)

    @property
    def workspace_dir(self) -> str:
        """The context's `workspace_dir` (`""` when absent)."""
        return self.context.workspace_dir

    @property
    def agent_id(self) -> str:
        """The context's `agent_id` (`""` when absent)."""
        return self.context.agent_id

    @property
    def session_key(self) -> str:
        """The context's `session_key` (`""` when absent)."""
        return self.context.session_key

    def param_str(self, key: str) -> str | None:
        """The param `key` if it is present and a string, else `None`."""
        value = self.params.get(key)
        return value if isinstance(value, str) else None

    @classmethod
    def from_proto(
        cls,
        msg: pb.BeforeToolCallRequest,
        request_id: str = "",
        traceparent: str = "",
        *,
        cancelled: threading.Event | None = None,
    ) -> ToolCall:
        """The view of a request; raises `StatusError(INVALID_ARGUMENT)` for bad JSON. `cancelled`:
        the event the server sets when the call ends (a new one if `None`)."""
        try:
            params = jsontext.loads(msg.params_json)
        except ValueError as e:
            raise _invalid(f"params_json is not valid JSON: {e}") from None
        if not isinstance(params, dict):
            raise _invalid(f"params_json must be a JSON object, got {_json_kind(params)}")
        return cls(
            tool_name=msg.tool_name,
            params=params,
            context=ToolCallContext.from_proto(msg.context),
            metadata=parse_metadata(msg.session_metadata_json),
            deadline_ms=msg.deadline_ms,
            request_id=request_id,
            traceparent=traceparent,
            cancelled=_new_event() if cancelled is None else cancelled,
        )


@dataclass(frozen=True)
class SessionCreate:
    """A `before_session_create` question: may this session be created?"""

    session_key: str = ""
    agent_id: str = ""
    #: The session's human label.
    label: str = ""
    model: str = ""
    #: `""` for a top-level session.
    parent_session_key: str = ""
    workspace_dir: str = ""
    #: Who asked for the session; `None` when the host did not say.
    requester: Requester | None = None
    #: This plugin's namespace of the session metadata; `None` when absent (or JSON null).
    metadata: Any = None
    #: How long the supervisor will wait for the answer, in ms (0 if it did not say).
    deadline_ms: int = 0
    #: The host call's request id (`x-hookvisor-request-id`); `""` if none.
    request_id: str = ""
    #: The call's W3C `traceparent` (see `ToolCall.traceparent`); `""` if none.
    traceparent: str = ""
    #: Set once the supervisor stopped waiting for this answer (see `ToolCall.cancelled`).
    cancelled: threading.Event = field(default_factory=_new_event, compare=False, repr=False)

    @classmethod
    def from_proto(
        cls,
        msg: pb.BeforeSessionCreateRequest,
        request_id: str = "",
        traceparent: str = "",
        *,
        cancelled: threading.Event | None = None,
    ) -> SessionCreate:
        """The view of a request; raises `StatusError(INVALID_ARGUMENT)` for bad metadata.
        `cancelled`: as for `ToolCall.from_proto`."""
        return cls(
            session_key=msg.session_key,
            agent_id=msg.agent_id,
            label=msg.label,
            model=msg.model,
            parent_session_key=msg.parent_session_key,
            workspace_dir=msg.workspace_dir,
            requester=Requester.from_proto(msg.requester) if msg.HasField("requester") else None,
            metadata=parse_metadata(msg.session_metadata_json),
            deadline_ms=msg.deadline_ms,
            request_id=request_id,
            traceparent=traceparent,
            cancelled=_new_event() if cancelled is None else cancelled,
        )


@dataclass(frozen=True)
class SessionCreated:
    """A `session_created` observation."""

    session_key: str = ""
    session_id: str = ""
    agent_id: str = ""
    #: This plugin's namespace of the session metadata; `None` when absent (or JSON null).
    metadata: Any = None
    #: The host call's request id (`x-hookvisor-request-id`); `""` if none.
    request_id: str = ""
    #: The call's W3C `traceparent` (see `ToolCall.traceparent`); `""` if none.
    traceparent: str = ""
    #: Set once the supervisor stopped waiting (see `ToolCall.cancelled`).
    cancelled: threading.Event = field(default_factory=_new_event, compare=False, repr=False)

    @classmethod
    def from_proto(
        cls,
        msg: pb.SessionCreatedEvent,
        request_id: str = "",
        traceparent: str = "",
        *,
        cancelled: threading.Event | None = None,
    ) -> SessionCreated:
        """The view of an event; raises `StatusError(INVALID_ARGUMENT)` for bad metadata.
        `cancelled`: as for `ToolCall.from_proto`."""
        return cls(
            session_key=msg.session_key,
            session_id=msg.session_id,
            agent_id=msg.agent_id,
            metadata=parse_metadata(msg.session_metadata_json),
            request_id=request_id,
            traceparent=traceparent,
            cancelled=_new_event() if cancelled is None else cancelled,
        )


def parse_metadata(text: str) -> Any:
    """`""` means no metadata (`None`); anything else must be one JSON value."""
    if not text:
        return None
    try:
        return jsontext.loads(text)
    except ValueError as e:
        raise _invalid(f"session_metadata_json is not valid JSON: {e}") from None


def _invalid(message: str) -> StatusError:
    return StatusError(grpc.StatusCode.INVALID_ARGUMENT, message)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"
