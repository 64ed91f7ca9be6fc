"""Starts plugin processes the way hookvisor does (cleared environment, cookie, socket in a fresh
private directory) and calls them over gRPC on that Unix socket."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hookvisor_plugin.proto import pb2, pb2_grpc

COOKIE = "d7f0c2a4-hookvisor-plugin-v1"
NOT_BY_HAND = (
    "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), "
    "not run by hand"
)
FIXTURES = Path(__file__).parent / "fixtures"
REPO = Path(__file__).resolve().parents[3]
EXAMPLES = REPO / "examples" / "python"


def plugin_env(socket: str, **extra: str) -> dict[str, str]:
    """The environment hookvisor gives a plugin, plus `extra`."""
    return {
        "HOOKVISOR_MAGIC_COOKIE": COOKIE,
        "HOOKVISOR_PLUGIN_SOCKET": socket,
        "HOOKVISOR_PLUGIN_NAME": "sample",
        "HOOKVISOR_PROTOCOL_VERSION": "1",
        **extra,
    }


@dataclass
class Running:
    """A plugin process serving on `socket`, with stubs for its two services."""

    proc: subprocess.Popen[str]
    socket: str
    channel: grpc.Channel
    plugin: pb2_grpc.PluginStub
    health: health_pb2_grpc.HealthStub

    def call(self, tool: str, params: str = "{}", **kwargs: object) -> pb2.ToolCallDecision:
        request = pb2.BeforeToolCallRequest(tool_name=tool, params_json=params, **kwargs)
        return self.plugin.BeforeToolCall(request, timeout=5)

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 5) -> tuple[int, str]:
        """Sends `signum`, waits for the exit; returns the status and stderr."""
        status, _, err = self.stop_with_output(signum, timeout)
        return status, err

    def stop_with_output(
        self, signum: int = signal.SIGTERM, timeout: float = 5
    ) -> tuple[int, str, str]:
        """Sends `signum`, waits for the exit; returns the status, stdout and stderr."""
        self.proc.send_signal(signum)
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def connect(socket: str) -> grpc.Channel:
    # C-core clients send the socket path as :authority unless told otherwise.
    options = [
        ("grpc.default_authority", "localhost"),
        # The plugin may not be listening yet: retry soon rather than after the default 1 s.
        ("grpc.initial_reconnect_backoff_ms", 20),
        ("grpc.min_reconnect_backoff_ms", 20),
        ("grpc.max_reconnect_backoff_ms", 100),
    ]
    return grpc.insecure_channel(f"unix:{socket}", options=options)


def wait_ready(proc: subprocess.Popen[str], channel: grpc.Channel, timeout: float = 10) -> None:
    """Waits until Describe answers, as hookvisor's readiness check does."""
    stub = pb2_grpc.PluginStub(channel)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"plugin exited with {proc.returncode} before ready: {err}")
        try:
            stub.Describe(pb2.DescribeRequest(protocol_version=1), timeout=0.5)
            return
        except grpc.RpcError:
            time.sleep(0.02)
    raise AssertionError("plugin not ready in time")


@pytest.fixture
def workdir() -> Iterator[str]:
    # Short, so the socket path fits a Unix socket address.
    path = tempfile.mkdtemp(prefix="hvpy-", dir="/tmp")
    os.chmod(path, 0o700)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def start(workdir: str) -> Iterator[Callable[..., Running]]:
    """`start(script, *args, **env)` runs a plugin and waits until it is ready."""
    started: list[Running] = []

    def start_plugin(script: Path, args: Sequence[str] = (), **env: str) -> Running:
        socket = os.path.join(workdir, f"p{len(started)}.sock")
        proc = spawn(script, args, plugin_env(socket, **env))
        channel = connect(socket)
        running = Running(
            proc,
            socket,
            channel,
            pb2_grpc.PluginStub(channel),
            health_pb2_grpc.HealthStub(channel),
        )
        started.append(running)
        wait_ready(proc, channel)
        return running

    yield start_plugin
    for running in started:
        running.channel.close()
        if running.proc.poll() is None:
            running.proc.kill()
        running.proc.communicate()


def spawn(script: Path, args: Sequence[str], env: dict[str, str]) -> subprocess.Popen[str]:
    """Starts `script` with the venv's Python, a cleared environment plus `env`, and its own
    session, as hookvisor does."""
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def run_to_exit(script: Path, args: Sequence[str], env: dict[str, str]) -> tuple[int, str]:
    """Runs `script` to its exit (it must exit by itself); returns the status and stderr."""
    proc = spawn(script, args, env)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def health_status(running: Running, service: str) -> int:
    request = health_pb2.HealthCheckRequest(service=service)
    return running.health.Check(request, timeout=5).status
