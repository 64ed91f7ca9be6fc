"""examples/python/budget_guard.py, run as hookvisor runs it."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from conftest import EXAMPLES, Running, plugin_env, run_to_exit

from hookvisor_plugin.proto import pb2

BUDGET_GUARD = EXAMPLES / "budget_guard.py"
Start = Callable[..., Running]


def in_session(key: str) -> pb2.ToolCallContext:
    return pb2.ToolCallContext(session_key=key)


@pytest.mark.parametrize("value", [None, "", "0", "-3", "many", "1.5"])
def test_an_invalid_budget_is_an_init_error(workdir: str, value: str | None) -> None:
    env = plugin_env(os.path.join(workdir, "s.sock"))
    if value is not None:
        env["BUDGET_MAX_CALLS"] = value
    status, err = run_to_exit(BUDGET_GUARD, [], env)
    assert status == 1
    assert err == f"BUDGET_MAX_CALLS must be a positive integer, got {value or ''!r}\n"


def test_blocks_a_session_past_its_budget(start: Start) -> None:
    plugin = start(BUDGET_GUARD, BUDGET_MAX_CALLS="2")
    info = plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5)
    assert info.name == "budget-guard" and list(info.hooks[0].tools) == []
    for _ in range(2):
        assert not plugin.call("exec", context=in_session("abc")).block
    for _ in range(2):
        blocked = plugin.call("exec", context=in_session("abc"))
        assert blocked.block
        assert blocked.block_reason == "session 'abc' used its budget of 2 tool calls"
    # Other sessions have their own budget; calls without a session and the probe are free.
    assert not plugin.call("exec", context=in_session("other")).block
    for _ in range(5):
        assert not plugin.call("exec").block
        assert not plugin.call("hookvisor-noop-probe", context=in_session("abc")).block


def test_counts_only_the_listed_tools(start: Start) -> None:
    plugin = start(BUDGET_GUARD, BUDGET_MAX_CALLS="1", BUDGET_TOOLS="exec, write,")
    info = plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5)
    assert list(info.hooks[0].tools) == ["exec", "write"]
    assert not plugin.call("write", context=in_session("s")).block
    assert not plugin.call("read", context=in_session("s")).block
    assert plugin.call("exec", context=in_session("s")).block
