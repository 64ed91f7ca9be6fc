"""`call.cancelled` in the thread-pool server, which asks grpc about the call's end only when a
handler first reads it: read during the call it is clear, read after the supervisor gave up it is
set, whenever the handler first looks."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import grpc
import pytest
from conftest import FIXTURES, Running

from hookvisor_plugin.proto import pb2

SAMPLE = FIXTURES / "sample.py"
Start = Callable[..., Running]


def late(plugin: Running, sleep: float, report: str, timeout: float) -> pb2.ToolCallDecision:
    params = json.dumps({"sleep": str(sleep), "report": report})
    request = pb2.BeforeToolCallRequest(tool_name="late", params_json=params)
    return plugin.plugin.BeforeToolCall(request, timeout=timeout)


def read_when_written(path: str, limit: float = 5) -> str:
    deadline = time.monotonic() + limit
    while not os.path.exists(path) or os.path.getsize(path) == 0:
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.02)
    with open(path) as f:
        return f.read()


def test_read_during_the_call_it_is_clear(start: Start, workdir: str) -> None:
    plugin = start(SAMPLE, ["sync"])
    report = os.path.join(workdir, "report")
    assert late(plugin, 0.05, report, timeout=5).block_reason == "running"
    assert read_when_written(report) == "running"


def test_first_read_after_the_deadline_passed_it_is_set(start: Start, workdir: str) -> None:
    plugin = start(SAMPLE, ["sync"])
    report = os.path.join(workdir, "report")
    with pytest.raises(grpc.RpcError) as raised:
        late(plugin, 0.6, report, timeout=0.2)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert read_when_written(report) == "cancelled"
    # The plugin keeps answering.
    assert plugin.call("block").block
