"""Turns handlers' answers into messages and their exceptions into gRPC statuses; shared by the
synchronous and the asyncio server."""

from __future__ import annotations

import sys
import traceback
from typing import Any

import grpc

from . import _process
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from .decision import SessionDecision, ToolCallDecision
from .errors import StatusError


def tool_call_answer(result: object) -> pb.ToolCallDecision:
    """The message for a `before_tool_call` handler's result."""
    if not isinstance(result, ToolCallDecision):
        # Most often a forgotten `return`: fail (which blocks) rather than read it as "allow".
        raise TypeError(f"before_tool_call must return a ToolCallDecision, got {_kind(result)}")
    return result.to_proto()


def session_answer(result: object) -> pb.SessionDecision:
    """The message for a `before_session_create` handler's result."""
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
    return "None" if value is None else type(value).__name__


def request_id(context: Any) -> str:
    """The request id the supervisor sends as `x-hookvisor-request-id` (`""` if none)."""
    for item in context.invocation_metadata() or ():
        if item[0] == "x-hookvisor-request-id":
            return str(item[1])
    return ""
