"""Turns handlers' answers into messages and their exceptions into gRPC statuses; shared by the
synchronous and the asyncio server."""

from __future__ import annotations

import inspect
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


def request_id(context: Any) -> str:
    """The request id the supervisor sends as `x-hookvisor-request-id` (`""` if none)."""
    for item in context.invocation_metadata() or ():
        if item[0] == "x-hookvisor-request-id":
            return str(item[1])
    return ""
