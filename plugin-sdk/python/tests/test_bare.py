"""The bare grpcio server `hookvisor bench` measures the SDK against (bench/bare/python/bare.py):
it starts as a plugin does and answers `Describe` and "no opinion", in both serving modes."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from conftest import REPO, Running, run_to_exit

from hookvisor_plugin.proto import pb2

BARE = REPO / "bench" / "bare" / "python" / "bare.py"
Start = Callable[..., Running]


@pytest.mark.parametrize("mode", ["thread", "aio"])
def test_bare_describes_itself_and_has_no_opinion(mode: str, start: Start) -> None:
    bare = start(BARE, [mode])
    info = bare.plugin.Describe(pb2.DescribeRequest(protocol_version=1), timeout=5)
    assert info.protocol_version == 1
    assert [h.hook for h in info.hooks] == [pb2.HOOK_BEFORE_TOOL_CALL]
    answer = bare.call("exec", '{"command":"ls"}')
    assert answer == pb2.ToolCallDecision()
    assert bare.proc.poll() is None


def test_bare_without_a_mode_is_a_usage_error(start: Start) -> None:
    with pytest.raises(
        AssertionError, match=r"exited with 1 before ready: usage: bare\.py thread\|aio"
    ):
        start(BARE)


def test_bare_without_a_socket_exits_1(workdir: str) -> None:
    env = {"HOOKVISOR_PROTOCOL_VERSION": "1"}
    status, err = run_to_exit(BARE, ["thread"], env)
    assert (status, err) == (1, "HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got ''\n")
