"""Measures the Python SDK's trivial plugin against the bare grpcio servers, with one client.

    .venv/bin/python bench/bare/python/measure.py [--rounds 5] [--calls 2000] [--spaced 20]
        [--only bare_thread,bare_aio,sdk,sdk_aio,rust] [--json]

Starts each server the way hookvisor starts a plugin (cleared environment, cookie, socket in a
private directory, own session; ready once `Describe` answers): `bare_thread` and `bare_aio`
(`bare.py thread|aio`), `sdk` (the SDK's `misbehave` fixture on `hookvisor_plugin.run`, no
opinion on ordinary tools), `sdk_aio` (its `sample.py aio` fixture on `hookvisor_plugin.aio.run`,
the same answer) and, when asked, `rust` (the Rust `allow-all` example, for reference). Then, in
rounds, each server in turn (the order rotates every round): `--calls` `BeforeToolCall`s back to
back (p50, p99), then `--spaced` calls each after a `--gap` pause (p50); `cpu_per_call` is the
server process's CPU time (all threads) per back-to-back call. The client is one grpcio channel
per server, calls made one at a time from this thread, with 256-byte params and the context
`hookvisor bench` sends. Prints each figure's median over the rounds, and each SDK server's ratio
to the faster bare server and to the bare server of its own mode (medians of the rounds' own
ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from hookvisor_plugin.proto import pb2, pb2_grpc

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
FIXTURES = REPO / "plugin-sdk" / "python" / "tests" / "fixtures"
COOKIE = "d7f0c2a4-hookvisor-plugin-v1"
BARE = ("bare_thread", "bare_aio")
PYTHON = sys.executable
SERVERS = {
    "bare_thread": [PYTHON, str(HERE / "bare.py"), "thread"],
    "bare_aio": [PYTHON, str(HERE / "bare.py"), "aio"],
    "sdk": [PYTHON, str(FIXTURES / "misbehave.py")],
    # The SDK's coroutine plugin (`hookvisor_plugin.aio`); no opinion on ordinary tools.
    "sdk_aio": [PYTHON, str(FIXTURES / "sample.py"), "aio"],
    # Not Python: the Rust example plugin (`cargo build --release -p hookvisor-examples`), to see
    # how much of each figure is this client's and the kernel's rather than the server's.
    "rust": [str(REPO / "target" / "release" / "allow-all")],
}
DEFAULT = "bare_thread,bare_aio,sdk,sdk_aio"
#: Which bare server serves in the same mode as each SDK server.
SAME_MODE = {"sdk": "bare_thread", "sdk_aio": "bare_aio"}
FIGURES = ("p50", "p99", "spaced_p50", "cpu_per_call")
PARAMS = json.dumps({"command": "echo " + "x" * 236})
#: The context `hookvisor bench` sends with every call.
CONTEXT = pb2.ToolCallContext(
    agent_id="main", session_key="agent:main:bench", workspace_dir="/home/agent/project"
)


@dataclass
class Server:
    name: str
    proc: subprocess.Popen[bytes]
    channel: grpc.Channel
    stub: pb2_grpc.PluginStub
    figures: dict[str, list[float]] = field(default_factory=dict)

    def call(self) -> int:
        request = pb2.BeforeToolCallRequest(
            tool_name="exec", params_json=PARAMS, context=CONTEXT, deadline_ms=5000
        )
        started = time.perf_counter_ns()
        answer = self.stub.BeforeToolCall(request, timeout=5)
        elapsed = time.perf_counter_ns() - started
        if answer.block or answer.HasField("params_json"):
            raise AssertionError(f"{self.name} answered {answer}, not no opinion")
        return elapsed

    def cpu_ns(self) -> int:
        """The server process's CPU time so far (user and system, all its threads)."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // os.sysconf("SC_CLK_TCK")

    def add(self, figure: str, value: float) -> None:
        self.figures.setdefault(figure, []).append(value)


def start(name: str, args: list[str], workdir: str) -> Server:
    socket = os.path.join(workdir, f"{name}.sock")
    env = {
        "HOOKVISOR_MAGIC_COOKIE": COOKIE,
        "HOOKVISOR_PLUGIN_SOCKET": socket,
        "HOOKVISOR_PLUGIN_NAME": name,
        "HOOKVISOR_PROTOCOL_VERSION": "1",
    }
    if not os.path.exists(args[0]):
        raise SystemExit(f"{name}: {args[0]} is missing (build it first)")
    proc = subprocess.Popen(
        args,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    options = [
        ("grpc.default_authority", "localhost"),
        ("grpc.initial_reconnect_backoff_ms", 20),
        ("grpc.min_reconnect_backoff_ms", 20),
        ("grpc.max_reconnect_backoff_ms", 100),
    ]
    channel = grpc.insecure_channel(f"unix:{socket}", options=options)
    stub = pb2_grpc.PluginStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 10
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"{name} exited with {proc.returncode} before ready")
        try:
            stub.Describe(pb2.DescribeRequest(protocol_version=1), timeout=0.5)
            break
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise SystemExit(f"{name} not ready in 10 s") from None
            time.sleep(0.02)
    return Server(name, proc, channel, stub)


def percentile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000


def measure(servers: list[Server], rounds: int, calls: int, spaced: int, gap: float) -> None:
    for server in servers:
        for _ in range(200):
            server.call()
    for r in range(rounds):
        order = servers[r % len(servers) :] + servers[: r % len(servers)]
        for server in order:
            cpu = server.cpu_ns()
            times = [server.call() for _ in range(calls)]
            server.add("cpu_per_call", (server.cpu_ns() - cpu) / calls / 1000)
            server.add("p50", percentile(times, 0.5))
            server.add("p99", percentile(times, 0.99))
        for server in order:
            times = []
            for _ in range(spaced):
                time.sleep(gap)
                times.append(server.call())
            server.add("spaced_p50", percentile(times, 0.5))
        print(f"round {r + 1}/{rounds} done", file=sys.stderr, flush=True)


def ratios(values: list[float], floors: list[float]) -> float:
    """The median of the rounds' own ratios."""
    return round(statistics.median(v / f for v, f in zip(values, floors, strict=True)), 3)


def report(servers: list[Server], as_json: bool) -> None:
    by_name = {s.name: s for s in servers}
    result: dict[str, float] = {}
    for figure in FIGURES:
        for server in servers:
            result[f"{server.name}_{figure}_us"] = round(statistics.median(server.figures[figure]))
        bare = [by_name[name].figures[figure] for name in BARE if name in by_name]
        if not bare:
            continue
        # The faster bare server of each round (of those measured).
        faster = [min(values) for values in zip(*bare, strict=True)]
        for server in servers:
            if server.name in SAME_MODE:
                # Against the faster bare server of each round, and against the bare server of
                # the same mode.
                result[f"ratio_{server.name}_{figure}"] = ratios(server.figures[figure], faster)
                same = by_name.get(SAME_MODE[server.name])
                if same is not None:
                    result[f"ratio_same_mode_{server.name}_{figure}"] = ratios(
                        server.figures[figure], same.figures[figure]
                    )
    result["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
    if as_json:
        print(json.dumps(result, indent=2))
        return
    names = [s.name for s in servers]
    print(f"{'figure':<12}" + "".join(f"{n:>14}" for n in names) + "   ratio to faster bare")
    for figure in FIGURES:
        row = "".join(f"{result[f'{n}_{figure}_us']:>11} µs" for n in names)
        against = ", ".join(
            f"{n} {result[f'ratio_{n}_{figure}']}"
            + (
                f" (same mode {mode})"
                if (mode := result.get(f"ratio_same_mode_{n}_{figure}"))
                else ""
            )
            for n in names
            if f"ratio_{n}_{figure}" in result
        )
        print(f"{figure:<12}{row}   {against}")
    print(f"load average (1 min) at the end: {result['loadavg_1m']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2000, help="back-to-back calls per block")
    parser.add_argument("--spaced", type=int, default=20, help="spaced calls per block")
    parser.add_argument("--gap", type=float, default=0.1, help="pause before a spaced call, s")
    parser.add_argument("--only", default=DEFAULT, help="servers, comma-separated")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    workdir = tempfile.mkdtemp(prefix="hvbare-", dir="/tmp")
    servers: list[Server] = []
    try:
        for name in args.only.split(","):
            servers.append(start(name, SERVERS[name], workdir))
        measure(servers, args.rounds, args.calls, args.spaced, args.gap)
        report(servers, args.json)
    finally:
        for server in servers:
            server.channel.close()
            server.proc.terminate()
        for server in servers:
            try:
                server.proc.wait(5)
            except subprocess.TimeoutExpired:
                server.proc.kill()
                server.proc.wait()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
