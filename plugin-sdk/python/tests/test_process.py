"""The SDK's process contract, for both servers: real processes, real Unix sockets, real gRPC."""

from __future__ import annotations

import json
import os
import signal
import socket as socketlib
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable

import grpc
import pytest
from conftest import (
    FIXTURES,
    NOT_BY_HAND,
    Running,
    connect,
    health_status,
    plugin_env,
    run_to_exit,
    wait_ready,
)
from grpc_health.v1 import health_pb2

from hookvisor_plugin.proto import pb2

SAMPLE = FIXTURES / "sample.py"
SERVING = health_pb2.HealthCheckResponse.SERVING
Start = Callable[..., Running]

pytestmark = pytest.mark.parametrize("mode", ["sync", "aio"])


def test_without_the_cookie_it_exits_1_with_one_line(mode: str, workdir: str) -> None:
    env = plugin_env(os.path.join(workdir, "s.sock"))
    del env["HOOKVISOR_MAGIC_COOKIE"]
    for cookie in (None, "wrong"):
        if cookie:
            env["HOOKVISOR_MAGIC_COOKIE"] = cookie
        # SAMPLE_INIT_ERROR proves the check comes before the plugin's init code.
        status, err = run_to_exit(SAMPLE, [mode], {**env, "SAMPLE_INIT_ERROR": "x"})
        assert (status, err) == (1, NOT_BY_HAND + "\n")
    assert os.listdir(workdir) == []


def test_a_missing_or_relative_socket_exits_1(mode: str) -> None:
    env = plugin_env("relative.sock")
    status, err = run_to_exit(SAMPLE, [mode], env)
    assert status == 1
    assert err == "HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got 'relative.sock'\n"
    del env["HOOKVISOR_PLUGIN_SOCKET"]
    status, err = run_to_exit(SAMPLE, [mode], env)
    assert status == 1 and err.count("\n") == 1 and "HOOKVISOR_PLUGIN_SOCKET is not set" in err


def test_an_init_error_exits_1_with_its_message(mode: str, workdir: str) -> None:
    env = plugin_env(os.path.join(workdir, "s.sock"), SAMPLE_INIT_ERROR="oops")
    status, err = run_to_exit(SAMPLE, [mode], env)
    assert (status, err) == (1, "sample: bad configuration 'oops'\n")


def test_describe_answers_protocol_1_with_the_configured_name(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    info = plugin.plugin.Describe(pb2.DescribeRequest(protocol_version=1), timeout=5)
    assert (info.name, info.version, info.protocol_version) == ("sample", "1.2.3", 1)
    assert [h.hook for h in info.hooks] == [
        pb2.HOOK_BEFORE_TOOL_CALL,
        pb2.HOOK_BEFORE_SESSION_CREATE,
        pb2.HOOK_SESSION_CREATED,
    ]
    assert (info.hooks[0].priority, info.hooks[0].timeout_ms) == (5, 300)
    named = start(SAMPLE, [mode], SAMPLE_NAME="own-name")
    assert named.plugin.Describe(pb2.DescribeRequest(), timeout=5).name == "own-name"


def test_health_reports_serving(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    assert health_status(plugin, "") == SERVING
    assert health_status(plugin, "hookvisor.v1.Plugin") == SERVING
    with pytest.raises(grpc.RpcError) as raised:
        health_status(plugin, "no.such.Service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_block_rewrite_approval_and_no_opinion(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    assert plugin.call("other") == pb2.ToolCallDecision()
    blocked = plugin.call("block")
    assert (blocked.block, blocked.block_reason) == (True, "blocked by sample")
    rewritten = plugin.call("rewrite", '{"path":"a"}')
    assert json.loads(rewritten.params_json) == {"path": "a", "rewritten": True}
    approval = plugin.call("approve").require_approval
    assert approval.title == "Run it?" and len(approval.description) == 512
    assert approval.severity == pb2.SEVERITY_WARNING and approval.timeout_ms == 30000
    assert list(approval.allowed_decisions) == [
        pb2.APPROVAL_DECISION_ALLOW_ONCE,
        pb2.APPROVAL_DECISION_DENY,
    ]


def test_the_handler_sees_the_parsed_request(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    context = pb2.ToolCallContext(session_key="s1", workspace_dir="/ws", agent_id="a")
    echoed = plugin.call(
        "echo",
        '{"command":"ls"}',
        context=context,
        session_metadata_json='{"n":1}',
        deadline_ms=123,
    )
    seen = json.loads(echoed.block_reason)
    assert seen["params"] == {"command": "ls"} and seen["command"] == "ls"
    assert seen["metadata"] == {"n": 1} and seen["deadline_ms"] == 123
    assert seen["session_key"] == "s1" and seen["context"]["workspace_dir"] == "/ws"
    assert seen["context"]["requester"] is None


def test_the_handler_sees_the_request_id(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    request = pb2.BeforeToolCallRequest(tool_name="echo", params_json="{}")
    echoed = plugin.plugin.BeforeToolCall(
        request, timeout=5, metadata=(("x-hookvisor-request-id", "req-42"),)
    )
    assert json.loads(echoed.block_reason)["request_id"] == "req-42"
    assert json.loads(plugin.call("echo").block_reason)["request_id"] == ""


def test_bad_json_is_invalid_argument_naming_the_field(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    for params, metadata, field in (
        ("[1,2]", "", "params_json"),
        ("{}", "{", "session_metadata_json"),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            plugin.call("other", params, session_metadata_json=metadata)
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in raised.value.details()


def test_handler_errors_become_statuses_and_the_plugin_keeps_serving(
    mode: str, start: Start
) -> None:
    plugin = start(SAMPLE, [mode])
    expected = {
        "raise": (grpc.StatusCode.UNKNOWN, "before_tool_call raised RuntimeError: boom"),
        "status": (grpc.StatusCode.PERMISSION_DENIED, "not for you"),
        "forget": (
            grpc.StatusCode.UNKNOWN,
            "before_tool_call raised TypeError: before_tool_call must return a "
            "ToolCallDecision, got None",
        ),
    }
    for tool, (code, details) in expected.items():
        with pytest.raises(grpc.RpcError) as raised:
            plugin.call(tool)
        assert (raised.value.code(), raised.value.details()) == (code, details)
    event = pb2.SessionCreatedEvent(session_key="raise")
    with pytest.raises(grpc.RpcError) as raised:
        plugin.plugin.SessionCreated(event, timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert plugin.call("block").block
    assert plugin.proc.poll() is None
    status, err = plugin.stop()
    assert status == 0
    assert "before_tool_call failed: RuntimeError: boom (at " in err
    assert "session_created failed: ValueError: cannot observe" in err


def test_session_hooks(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    guest = plugin.plugin.BeforeSessionCreate(
        pb2.BeforeSessionCreateRequest(agent_id="guest"), timeout=5
    )
    assert (guest.block, guest.block_reason) == (True, "guests may not start sessions")
    patched = plugin.plugin.BeforeSessionCreate(
        pb2.BeforeSessionCreateRequest(agent_id="main", session_metadata_json='{"a":1}'), timeout=5
    )
    assert not patched.block
    assert json.loads(patched.metadata_json) == {"agent": "main", "seen": {"a": 1}}
    ack = plugin.plugin.SessionCreated(pb2.SessionCreatedEvent(session_key="k"), timeout=5)
    assert ack == pb2.Ack()


def test_sigterm_drains_removes_the_socket_and_exits_0(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    assert stat.S_ISSOCK(os.lstat(plugin.socket).st_mode)
    started = time.monotonic()
    status, out, err = plugin.stop_with_output(signal.SIGTERM)
    assert status == 0
    assert time.monotonic() - started < 1.0
    # On stdout, which hookvisor logs at info: a stop it asked for is no warning.
    assert (out, err) == ("received SIGTERM; finishing calls in flight and exiting\n", "")
    assert not os.path.exists(plugin.socket)


def test_sigint_too(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    status, out, err = plugin.stop_with_output(signal.SIGINT)
    assert (status, out, err) == (0, "received SIGINT; finishing calls in flight and exiting\n", "")


def test_a_call_still_running_after_the_drain_is_a_warning_on_stderr(
    mode: str, start: Start, workdir: str
) -> None:
    plugin = start(SAMPLE, [mode])
    marker = os.path.join(workdir, "started")
    params = json.dumps({"started": marker})
    stuck = plugin.plugin.BeforeToolCall.future(
        pb2.BeforeToolCallRequest(tool_name="stuck", params_json=params), timeout=10
    )
    deadline = time.monotonic() + 5
    while not os.path.exists(marker):
        assert time.monotonic() < deadline, "the stuck handler never started"
        time.sleep(0.02)
    status, out, err = plugin.stop_with_output(signal.SIGTERM)
    assert status == 0
    assert out == "received SIGTERM; finishing calls in flight and exiting\n"
    assert err == "calls still running after 1500 ms; exiting anyway\n"
    assert stuck.exception(timeout=5) is not None


@pytest.mark.parametrize("stdout", ["reader gone", "closed"])
def test_a_stdout_nobody_reads_never_fails_the_stop(mode: str, stdout: str, workdir: str) -> None:
    socket = os.path.join(workdir, "s.sock")
    # "reader gone": a pipe whose read end is closed, so the line fails with EPIPE; "closed":
    # no descriptor 1 at all.
    command = [sys.executable, str(SAMPLE), mode]
    if stdout == "closed":
        command = ["/bin/sh", "-c", 'exec "$@" >&-', "sh", *command]
    proc = subprocess.Popen(
        command,
        env=plugin_env(socket),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()
    channel = connect(socket)
    try:
        wait_ready(proc, channel)
    finally:
        channel.close()
    proc.send_signal(signal.SIGTERM)
    try:
        err = proc.stderr.read()
        assert (proc.wait(timeout=5), err) == (0, "")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not os.path.exists(socket)


def test_a_call_in_flight_at_sigterm_ends_within_the_drain_limit(mode: str, start: Start) -> None:
    plugin = start(SAMPLE, [mode])
    errors: list[grpc.StatusCode] = []

    def slow_call() -> None:
        try:
            plugin.call("slow")
        except grpc.RpcError as e:
            errors.append(e.code())

    caller = threading.Thread(target=slow_call)
    caller.start()
    time.sleep(0.3)
    started = time.monotonic()
    status, _ = plugin.stop(signal.SIGTERM)
    elapsed = time.monotonic() - started
    caller.join(5)
    assert status == 0
    assert 1.3 < elapsed < 2.0, elapsed
    assert errors and errors[0] != grpc.StatusCode.OK
    assert not os.path.exists(plugin.socket)


def test_calls_past_the_bound_are_refused_and_cancelled_calls_free_their_slot(
    mode: str, start: Start
) -> None:
    plugin = start(SAMPLE, [mode], SAMPLE_MAX_CALLS="2")
    holders: list[grpc.Future] = [
        plugin.plugin.BeforeToolCall.future(
            pb2.BeforeToolCallRequest(tool_name="slow", params_json="{}"), timeout=10
        )
        for _ in range(2)
    ]
    time.sleep(0.3)
    with pytest.raises(grpc.RpcError) as raised:
        plugin.call("other")
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    for holder in holders:
        holder.cancel()
    # The handlers see the cancellation (sync: `call.cancelled`; aio: the task is cancelled)
    # and give their slots back.
    deadline = time.monotonic() + 3
    while True:
        try:
            assert plugin.call("block").block
            break
        except grpc.RpcError as e:
            assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert time.monotonic() < deadline, "slots never freed"
            time.sleep(0.05)


def test_a_missing_directory_exits_2_with_one_line(mode: str, workdir: str) -> None:
    path = os.path.join(workdir, "missing", "s.sock")
    status, err = run_to_exit(SAMPLE, [mode], plugin_env(path))
    assert (status, err) == (
        2,
        f"cannot bind the plugin socket {path}: No such file or directory\n",
    )


def test_a_stale_socket_is_replaced(mode: str, start: Start, workdir: str) -> None:
    stale = os.path.join(workdir, "p0.sock")
    left = socketlib.socket(socketlib.AF_UNIX)
    left.bind(stale)
    left.close()
    plugin = start(SAMPLE, [mode])
    assert plugin.socket == stale
    assert plugin.call("block").block


def test_a_file_in_the_way_is_kept_and_exits_2(mode: str, workdir: str) -> None:
    path = os.path.join(workdir, "s.sock")
    with open(path, "w") as f:
        f.write("keep me")
    status, err = run_to_exit(SAMPLE, [mode], plugin_env(path))
    assert status == 2
    assert err == (
        f"cannot bind the plugin socket {path}: "
        "a file that is not a socket is in the way (left untouched)\n"
    )
    with open(path) as f:
        assert f.read() == "keep me"
