"""The fixture plugins other tests rely on do what they promise: misbehave and broken.py MODE."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import grpc
import pytest
from conftest import (
    FIXTURES,
    NOT_BY_HAND,
    Running,
    health_status,
    plugin_env,
    run_to_exit,
    spawn,
)
from grpc_health.v1 import health_pb2

from hookvisor_plugin.proto import pb2

MISBEHAVE = FIXTURES / "misbehave.py"
BROKEN = FIXTURES / "broken.py"
SERVING = health_pb2.HealthCheckResponse.SERVING
Start = Callable[..., Running]


def test_misbehave_answers_other_tools_while_hang_me_hangs(start: Start) -> None:
    plugin = start(MISBEHAVE)
    info = plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5)
    assert info.name == "misbehave" and info.hooks[0].hook == pb2.HOOK_BEFORE_TOOL_CALL
    hung = plugin.plugin.BeforeToolCall.future(
        pb2.BeforeToolCallRequest(tool_name="hang-me", params_json="{}"), timeout=1
    )
    assert plugin.call("other") == pb2.ToolCallDecision()
    with pytest.raises(grpc.RpcError) as raised:
        hung.result()
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert plugin.call("other") == pb2.ToolCallDecision()
    status, _ = plugin.stop()
    assert status == 0


def test_misbehave_crash_me_exits_101_without_answering(start: Start) -> None:
    plugin = start(MISBEHAVE)
    with pytest.raises(grpc.RpcError) as raised:
        plugin.call("crash-me")
    assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    assert plugin.proc.wait(5) == 101


def test_misbehave_needs_the_cookie(workdir: str) -> None:
    env = plugin_env(os.path.join(workdir, "s.sock"))
    del env["HOOKVISOR_MAGIC_COOKIE"]
    assert run_to_exit(MISBEHAVE, [], env) == (1, NOT_BY_HAND + "\n")


def test_broken_no_cookie_runs_without_it(workdir: str) -> None:
    socket = os.path.join(workdir, "s.sock")
    env = plugin_env(socket)
    del env["HOOKVISOR_MAGIC_COOKIE"]
    proc = spawn(BROKEN, ["no-cookie"], env)
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(socket):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0


def test_broken_protocol_2(start: Start) -> None:
    plugin = start(BROKEN, ["protocol-2"])
    assert plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5).protocol_version == 2
    assert health_status(plugin, "") == SERVING
    assert plugin.stop()[0] == 0


def test_broken_bad_decision(start: Start) -> None:
    plugin = start(BROKEN, ["bad-decision"])
    assert plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5).protocol_version == 1
    assert plugin.call("any").params_json == "[1,2]"


def test_broken_ignore_sigterm(start: Start) -> None:
    plugin = start(BROKEN, ["ignore-sigterm"])
    plugin.proc.send_signal(signal.SIGTERM)
    time.sleep(2.5)
    assert plugin.proc.poll() is None
    assert plugin.call("any") == pb2.ToolCallDecision()


def test_broken_hang(start: Start) -> None:
    plugin = start(BROKEN, ["hang"])
    assert health_status(plugin, "hookvisor.v1.Plugin") == SERVING
    assert [h.hook for h in plugin.plugin.Describe(pb2.DescribeRequest(), timeout=5).hooks] == [
        pb2.HOOK_BEFORE_TOOL_CALL,
        pb2.HOOK_BEFORE_SESSION_CREATE,
        pb2.HOOK_SESSION_CREATED,
    ]
    calls = [
        lambda: plugin.plugin.BeforeToolCall(
            pb2.BeforeToolCallRequest(params_json="{}"), timeout=0.3
        ),
        lambda: plugin.plugin.BeforeSessionCreate(pb2.BeforeSessionCreateRequest(), timeout=0.3),
        lambda: plugin.plugin.SessionCreated(pb2.SessionCreatedEvent(), timeout=0.3),
    ]
    for call in calls:
        with pytest.raises(grpc.RpcError) as raised:
            call()
        assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert health_status(plugin, "") == SERVING
    assert plugin.stop()[0] == 0


def test_broken_dies_after_cancel(start: Start) -> None:
    plugin = start(BROKEN, ["dies-after-cancel"])
    started = time.monotonic()
    assert plugin.call("any") == pb2.ToolCallDecision()
    assert time.monotonic() - started >= 1.9
    with pytest.raises(grpc.RpcError):
        plugin.plugin.BeforeToolCall(pb2.BeforeToolCallRequest(params_json="{}"), timeout=0.3)
    assert plugin.proc.wait(5) == 3


def test_broken_without_a_mode_is_a_usage_error(workdir: str) -> None:
    status, err = run_to_exit(BROKEN, ["nonsense"], plugin_env(os.path.join(workdir, "s.sock")))
    assert status == 64 and "usage: broken.py MODE" in err
