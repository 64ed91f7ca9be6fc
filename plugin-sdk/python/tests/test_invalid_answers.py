"""Handlers that return what is not an answer: the call fails with UNKNOWN naming what came back
(which the supervisor counts as a failure, so it blocks), never an empty decision ("no opinion",
which allows). Both servers, over real processes and sockets."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from conftest import FIXTURES, Running

from hookvisor_plugin.proto import pb2

INVALID = FIXTURES / "invalid.py"
Start = Callable[..., Running]

pytestmark = pytest.mark.parametrize("mode", ["sync", "aio"])

COROUTINE = "coroutine (a missing await, or an async def in a synchronous Plugin)"
# What each key of the fixture's WRONG returns, as the refusal names it.
KINDS = {
    "none": "None",
    "number": "int",
    "string": "str",
    "boolean": "bool",
    "list": "list",
    "empty-dict": "dict",
    "blocked": "dict",
    "block": "dict",
    "message": "hookvisor.v1.hookvisor_pb2.ToolCallDecision",
    "coroutine": COROUTINE,
}
TOOL_CASES = {**KINDS, "session-answer": "hookvisor_plugin.decision.SessionDecision"}
SESSION_CASES = {**KINDS, "tool-answer": "hookvisor_plugin.decision.ToolCallDecision"}


@pytest.mark.parametrize("tool", sorted(TOOL_CASES))
def test_before_tool_call_refuses_what_is_not_a_tool_call_decision(
    mode: str, tool: str, start: Start
) -> None:
    plugin = start(INVALID, [mode])
    with pytest.raises(grpc.RpcError) as raised:
        plugin.call(tool)
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert raised.value.details() == (
        "before_tool_call raised TypeError: before_tool_call must return a ToolCallDecision, "
        f"got {TOOL_CASES[tool]}"
    )


@pytest.mark.parametrize("agent", sorted(SESSION_CASES))
def test_before_session_create_refuses_what_is_not_a_session_decision(
    mode: str, agent: str, start: Start
) -> None:
    plugin = start(INVALID, [mode])
    with pytest.raises(grpc.RpcError) as raised:
        plugin.plugin.BeforeSessionCreate(pb2.BeforeSessionCreateRequest(agent_id=agent), timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert raised.value.details() == (
        "before_session_create raised TypeError: before_session_create must return a "
        f"SessionDecision, got {SESSION_CASES[agent]}"
    )


def test_a_decision_with_a_field_of_the_wrong_type_fails(mode: str, start: Start) -> None:
    plugin = start(INVALID, [mode])
    with pytest.raises(grpc.RpcError) as raised:
        plugin.call("wrong-type")
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert raised.value.details().startswith("before_tool_call raised TypeError: ")


def test_refusals_are_logged_and_the_plugin_keeps_serving(mode: str, start: Start) -> None:
    plugin = start(INVALID, [mode])
    for tool in ("none", "coroutine"):
        with pytest.raises(grpc.RpcError):
            plugin.call(tool)
    assert plugin.call("other") == pb2.ToolCallDecision()
    session = plugin.plugin.BeforeSessionCreate(
        pb2.BeforeSessionCreateRequest(agent_id="main"), timeout=5
    )
    assert session == pb2.SessionDecision()
    # session_created's return value is ignored (its contract is None).
    event = pb2.SessionCreatedEvent(session_key="k")
    assert plugin.plugin.SessionCreated(event, timeout=5) == pb2.Ack()
    status, err = plugin.stop()
    assert status == 0
    assert (
        "before_tool_call failed: TypeError: before_tool_call must return a ToolCallDecision, "
        "got None (at " in err
    )
    assert "never awaited" not in err
