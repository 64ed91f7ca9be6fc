"""Remote mode (contract §2.6), for both servers: a real plugin process serving on TCP with
mutual TLS, certificates made at test time (trustme), called by real gRPC clients. Also the
`traceparent` a handler sees."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket as socketlib
import ssl
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import trustme
from conftest import COOKIE, FIXTURES, spawn
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hookvisor_plugin.proto import pb2, pb2_grpc

SAMPLE = FIXTURES / "sample.py"
LISTENING = re.compile(
    r"hookvisor plugin listening on (\S+):(\d+) \(TLS, client certificates required\)"
)
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

pytestmark = pytest.mark.parametrize("mode", ["sync", "aio"])


@dataclass
class Pki:
    """PEM files: the server's chain and key, the CA clients must chain to, a client of that CA
    and a client of another CA."""

    dir: Path
    server_cert: Path
    server_key: Path
    ca: Path
    client_cert: bytes
    client_key: bytes
    stranger_cert: bytes
    stranger_key: bytes

    def env(self, listen: str = "127.0.0.1:0") -> dict[str, str]:
        return {
            "HOOKVISOR_REMOTE_LISTEN": listen,
            "HOOKVISOR_TLS_CERT": str(self.server_cert),
            "HOOKVISOR_TLS_KEY": str(self.server_key),
            "HOOKVISOR_TLS_CLIENT_CA": str(self.ca),
        }


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    client = ca.issue_cert("supervisor.test")
    stranger = other_ca.issue_cert("supervisor.test")
    d = tmp_path_factory.mktemp("pki")
    server.cert_chain_pems[0].write_to_path(str(d / "server.pem"))
    server.private_key_pem.write_to_path(str(d / "server.key"))
    ca.cert_pem.write_to_path(str(d / "ca.pem"))
    return Pki(
        d,
        d / "server.pem",
        d / "server.key",
        d / "ca.pem",
        client.cert_chain_pems[0].bytes(),
        client.private_key_pem.bytes(),
        stranger.cert_chain_pems[0].bytes(),
        stranger.private_key_pem.bytes(),
    )


@dataclass
class Remote:
    """A plugin serving remotely at `host:port`, and the rest of its stderr as it comes."""

    proc: subprocess.Popen[str]
    host: str
    port: int
    lines: queue.Queue[str]

    def channel(self, pki: Pki, cert: bytes | None, key: bytes | None) -> grpc.Channel:
        creds = grpc.ssl_channel_credentials(
            root_certificates=pki.ca.read_bytes(), private_key=key, certificate_chain=cert
        )
        options = [("grpc.ssl_target_name_override", "localhost")]
        return grpc.secure_channel(f"{self.host}:{self.port}", creds, options=options)

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM, then the exit status, stdout and the rest of stderr."""
        self.proc.send_signal(signal.SIGTERM)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        status = self.proc.wait(timeout=5)
        rest = []
        while (line := self.lines.get(timeout=5)) != "":
            rest.append(line)
        return status, out, "".join(rest)

    def echo(self, channel: grpc.Channel, metadata: Sequence[tuple[str, str]] = ()) -> dict:  # type: ignore[type-arg]
        request = pb2.BeforeToolCallRequest(tool_name="echo", params_json='{"n":1}')
        answer = pb2_grpc.PluginStub(channel).BeforeToolCall(
            request, timeout=5, metadata=tuple(metadata)
        )
        return json.loads(answer.block_reason)  # type: ignore[no-any-return]


def read_lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """stderr's lines, read by a thread so a test can wait for one with a deadline."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_listening(proc: subprocess.Popen[str], timeout: float = 10) -> Remote:
    lines = read_lines(proc)
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        seen.append(line)
        if match := LISTENING.fullmatch(line.rstrip("\n")):
            return Remote(proc, match.group(1), int(match.group(2)), lines)
        if line == "":
            break
    raise AssertionError(f"no listening line; exit {proc.poll()}, stderr: {''.join(seen)!r}")


@pytest.fixture
def start(pki: Pki) -> Iterator[Callable[..., Remote]]:
    started: list[subprocess.Popen[str]] = []

    def start_remote(args: Sequence[str], env: dict[str, str]) -> Remote:
        proc = spawn(SAMPLE, args, env)
        started.append(proc)
        return wait_listening(proc)

    yield start_remote
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def run_to_exit(mode: str, env: dict[str, str]) -> tuple[int, str]:
    proc = spawn(SAMPLE, [mode], env)
    _, err = proc.communicate(timeout=10)
    return proc.returncode, err


def test_serves_describe_health_and_calls_over_mutual_tls(
    mode: str, pki: Pki, start: Callable[..., Remote]
) -> None:
    plugin = start([mode], pki.env())
    assert plugin.host == "127.0.0.1" and plugin.port != 0
    channel = plugin.channel(pki, pki.client_cert, pki.client_key)
    info = pb2_grpc.PluginStub(channel).Describe(pb2.DescribeRequest(protocol_version=1), timeout=5)
    # HOOKVISOR_PLUGIN_NAME is optional in remote mode: the plugin's own name, here none.
    assert (info.name, info.version, info.protocol_version) == ("", "1.2.3", 1)
    health = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service="hookvisor.v1.Plugin"), timeout=5
    )
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    seen = plugin.echo(channel, [("x-hookvisor-request-id", "req-7")])
    assert (seen["params"], seen["request_id"]) == ({"n": 1}, "req-7")
    channel.close()
    status, out, err = plugin.stop()
    assert (status, err) == (0, "")
    assert out == "received SIGTERM; finishing calls in flight and exiting\n"


def test_a_client_without_a_certificate_or_of_another_ca_is_refused(
    mode: str, pki: Pki, start: Callable[..., Remote]
) -> None:
    plugin = start([mode], pki.env())
    for cert, key in ((None, None), (pki.stranger_cert, pki.stranger_key)):
        channel = plugin.channel(pki, cert, key)
        with pytest.raises(grpc.RpcError) as refused:
            pb2_grpc.PluginStub(channel).Describe(pb2.DescribeRequest(), timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()
    # Refusing them took nothing away from a client with a good certificate.
    good = plugin.channel(pki, pki.client_cert, pki.client_key)
    assert pb2_grpc.PluginStub(good).Describe(pb2.DescribeRequest(), timeout=5).version == "1.2.3"
    good.close()


def test_a_plain_tls_handshake_without_a_certificate_fails(
    mode: str, pki: Pki, start: Callable[..., Remote]
) -> None:
    """Below gRPC: the server itself ends the handshake of a client that has no certificate."""
    plugin = start([mode], pki.env())
    context = ssl.create_default_context(cafile=str(pki.ca))
    context.set_alpn_protocols(["h2"])
    with (
        socketlib.create_connection((plugin.host, plugin.port), timeout=5) as raw,
        pytest.raises((ssl.SSLError, ConnectionResetError)),
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        # TLS 1.3: the client's side completes first; the server's alert comes with the first
        # read.
        tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        if tls.recv(1) == b"":
            raise ConnectionResetError("closed by the server")


def test_the_handler_sees_a_valid_traceparent_and_never_junk(
    mode: str, pki: Pki, start: Callable[..., Remote]
) -> None:
    plugin = start([mode], pki.env())
    channel = plugin.channel(pki, pki.client_cert, pki.client_key)
    assert plugin.echo(channel, [("traceparent", TRACEPARENT)])["traceparent"] == TRACEPARENT
    for junk in (
        TRACEPARENT.upper(),
        TRACEPARENT + "-00",
        TRACEPARENT[:-1],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "not a trace",
        TRACEPARENT.replace("-", "_"),
    ):
        assert plugin.echo(channel, [("traceparent", junk)])["traceparent"] == "", junk
    assert plugin.echo(channel)["traceparent"] == ""
    channel.close()


@pytest.mark.parametrize("how", ["paths", "bytes"])
def test_serve_remote_takes_paths_or_bytes_and_ipv6(
    mode: str, how: str, pki: Pki, start: Callable[..., Remote]
) -> None:
    files = [str(pki.server_cert), str(pki.server_key), str(pki.ca)]
    plugin = start([mode, "remote", how, "[::1]:0", *files], {})
    assert plugin.host == "[::1]" and plugin.port != 0
    channel = plugin.channel(pki, pki.client_cert, pki.client_key)
    seen = plugin.echo(channel, [("traceparent", TRACEPARENT)])
    assert seen["traceparent"] == TRACEPARENT
    channel.close()


def test_the_cookie_and_remote_mode_together_exit_1(mode: str, pki: Pki) -> None:
    env = {**pki.env(), "HOOKVISOR_MAGIC_COOKIE": COOKIE, "SAMPLE_INIT_ERROR": "x"}
    status, err = run_to_exit(mode, env)
    assert status == 1 and err.count("\n") == 1
    assert "HOOKVISOR_MAGIC_COOKIE and HOOKVISOR_REMOTE_LISTEN are both set" in err
    files = [str(pki.server_cert), str(pki.server_key), str(pki.ca)]
    proc = spawn(SAMPLE, [mode, "remote", "paths", "127.0.0.1:0", *files], env)
    _, err = proc.communicate(timeout=10)
    assert proc.returncode == 1 and "both set" in err and err.count("\n") == 1


@pytest.mark.parametrize(
    "var", ["HOOKVISOR_TLS_CERT", "HOOKVISOR_TLS_KEY", "HOOKVISOR_TLS_CLIENT_CA"]
)
def test_a_missing_tls_variable_exits_1_naming_it(mode: str, var: str, pki: Pki) -> None:
    env = pki.env()
    del env[var]
    status, err = run_to_exit(mode, env)
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"{var} is not set; remote mode (HOOKVISOR_REMOTE_LISTEN) needs")


def test_an_unreadable_or_bad_pem_file_exits_1_naming_the_variable_and_file(
    mode: str, pki: Pki
) -> None:
    missing = pki.dir / "missing.pem"
    junk = pki.dir / "junk.pem"
    junk.write_text("-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n")
    cases = {
        "HOOKVISOR_TLS_CERT": (missing, "cannot read HOOKVISOR_TLS_CERT file"),
        "HOOKVISOR_TLS_KEY": (pki.ca, "HOOKVISOR_TLS_KEY file"),
        "HOOKVISOR_TLS_CLIENT_CA": (junk, "HOOKVISOR_TLS_CLIENT_CA file"),
    }
    for var, (path, expected) in cases.items():
        status, err = run_to_exit(mode, {**pki.env(), var: str(path)})
        assert status == 1 and err.count("\n") == 1, err
        assert expected in err and str(path) in err, err
    # A key that is not the certificate's.
    other = trustme.CA().issue_cert("localhost")
    other_key = pki.dir / "other.key"
    other.private_key_pem.write_to_path(str(other_key))
    status, err = run_to_exit(mode, {**pki.env(), "HOOKVISOR_TLS_KEY": str(other_key)})
    assert status == 1 and err.count("\n") == 1
    assert err.startswith(f"HOOKVISOR_TLS_KEY file {other_key} is not the key of ")


def test_a_bad_address_exits_1_and_one_that_cannot_be_bound_exits_2(mode: str, pki: Pki) -> None:
    status, err = run_to_exit(mode, pki.env("8443"))
    assert status == 1 and err.startswith("HOOKVISOR_REMOTE_LISTEN must be HOST:PORT")
    with socketlib.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        status, err = run_to_exit(mode, pki.env(listen))
    assert (status, err) == (2, f"cannot listen on {listen}: Address already in use\n")


def test_remote_mode_makes_no_socket_file(
    mode: str, pki: Pki, start: Callable[..., Remote], tmp_path: Path
) -> None:
    socket = tmp_path / "p.sock"
    plugin = start([mode], {**pki.env(), "HOOKVISOR_PLUGIN_SOCKET": str(socket)})
    assert plugin.stop()[0] == 0
    assert os.listdir(tmp_path) == []
