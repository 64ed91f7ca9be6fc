"""Turns handlers' answers into messages and their exceptions into gRPC statuses; shared by the
synchronous and the asyncio server."""

from __future__ import annotations

import inspect
import re
import sys
import traceback
from typing import Any

import grpc

from . import _process
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from .decision import SessionDecision, ToolCallDecision
from .errors import StatusError


def tool_call_answer(result: object) -> pb.ToolCallDecision:
    """The message for a `before_tool_call` handler's result.

    Anything but a `ToolCallDecision` (`None` from a forgotten `return`, a dict, a string, the
    generated message, a `SessionDecision`, a coroutine...) raises `TypeError`: the call fails,
    which blocks, rather than being read as "no opinion".
    """
    if not isinstance(result, ToolCallDecision):
        raise TypeError(f"before_tool_call must return a ToolCallDecision, got {_kind(result)}")
    return result.to_proto()


def session_answer(result: object) -> pb.SessionDecision:
    """The message for a `before_session_create` handler's result (see `tool_call_answer`)."""
    if not isinstance(result, SessionDecision):
        raise TypeError(f"before_session_create must return a SessionDecision, got {_kind(result)}")
    return result.to_proto()


def failure(hook: str, error: Exception) -> tuple[grpc.StatusCode, str]:
    """The status to answer for `error` raised while answering `hook`; logs unexpected errors."""
    if isinstance(error, StatusError):
        return error.code, error.message
    what = _process.describe_exception(error)
    frames = traceback.extract_tb(error.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    print(f"{hook} failed: {what}{where}", file=sys.stderr, flush=True)
    return grpc.StatusCode.UNKNOWN, f"{hook} raised {what}"


def _kind(value: object) -> str:
    """`value`'s type, qualified unless built in (the generated `ToolCallDecision` message is not
    the SDK's)."""
    if value is None:
        return "None"
    if inspect.iscoroutine(value):
        value.close()  # never awaited on purpose: no "never awaited" warning on stderr
        return "coroutine (a missing await, or an async def in a synchronous Plugin)"
    kind = type(value)
    if kind.__module__ == "builtins":
        return kind.__qualname__
    return f"{kind.__module__}.{kind.__qualname__}"


#: The W3C trace context's `traceparent` (version, trace id, parent id, flags), and nothing else.
_TRACEPARENT = re.compile(r"[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}")


def call_ids(context: Any) -> tuple[str, str]:
    """The call's `x-hookvisor-request-id` and its `traceparent` (each `""` if none; a
    `traceparent` not of the W3C shape counts as none, so a handler never sees junk). The first
    of each counts."""
    found_id: str | None = None
    found_trace: str | None = None
    for key, value in context.invocation_metadata() or ():
        if key == "x-hookvisor-request-id" and found_id is None:
            found_id = str(value)
        elif key == "traceparent" and found_trace is None:
            found_trace = valid_traceparent(value)
    return found_id or "", found_trace or ""


def valid_traceparent(value: object) -> str:
    """`value` if it is a W3C `traceparent` (55 bytes, lowercase hex), else `""`."""
    if isinstance(value, str) and len(value) <= 55 and _TRACEPARENT.fullmatch(value):
        return value
    return ""
