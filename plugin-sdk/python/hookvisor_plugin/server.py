"""The synchronous plugin process: `run` serves a `Plugin` on a bounded thread pool.

Concurrency: at most `max_concurrent_calls` RPCs (hook calls, `Describe` and health checks
together) are admitted at once, each on its own worker thread; past that a call is answered
`RESOURCE_EXHAUSTED` at once (which the supervisor counts as a failure). A thread running a
handler whose call was cancelled keeps its slot until the handler returns (Python cannot stop a
thread), so handlers that may be slow should watch `call.cancelled`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import _adapt, _process, _remote
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from ._proto.hookvisor.v1 import hookvisor_pb2_grpc as pb_grpc
from .call import SessionCreate, SessionCreated, ToolCall
from .info import Info
from .plugin import Plugin

#: Calls admitted at once (and worker threads) unless `run` is told otherwise.
DEFAULT_MAX_CONCURRENT_CALLS = 32

_SERVING = health_pb2.HealthCheckResponse.SERVING

T = TypeVar("T")


def run(
    plugin: Plugin | Callable[[], Plugin],
    *,
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
) -> NoReturn:
    """Runs `plugin` as a hookvisor plugin process; never returns.

    Checks `HOOKVISOR_MAGIC_COOKIE` (missing or wrong: one line on stderr, exit 1) and
    `HOOKVISOR_PLUGIN_SOCKET` (must be absolute, else exit 1). `plugin` may be a `Plugin` or a
    callable returning one (the class itself, or a function that reads configuration): it is
    called only after those checks, and an exception from it is printed as one line with exit 1
    (`ConfigError`'s message alone, others with their type). Then binds the socket (replacing a
    stale socket file), serves `hookvisor.v1.Plugin` and `grpc.health.v1.Health` until SIGTERM
    or SIGINT, drains for at most 1.5 s, removes the socket and exits 0. Bind errors: exit 2.

    With `HOOKVISOR_REMOTE_LISTEN` set it serves remotely instead, as `serve_remote` with
    `HOOKVISOR_TLS_CERT`, `HOOKVISOR_TLS_KEY` and `HOOKVISOR_TLS_CLIENT_CA` (contract §2.6).
    """
    target, name = _remote.from_env()
    built: Plugin
    built, info = _process.init(plugin, Plugin)
    raise SystemExit(
        _serve_until_signal(built, _process.describe(info, name), target, max_concurrent_calls)
    )


def serve_remote(
    plugin: Plugin | Callable[[], Plugin],
    *,
    listen: str,
    cert: _remote.PemSource,
    key: _remote.PemSource,
    client_ca: _remote.PemSource,
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
) -> NoReturn:
    """Serves `plugin` on TCP with mutual TLS, for a supervisor that names it by `endpoint`
    (contract §2.6); never returns.

    `listen` is `HOST:PORT` (port 0 picks one; IPv6 as `[ADDRESS]:PORT`); `cert` (the server's
    certificate chain), `key` (its private key) and `client_ca` (the CA every client's
    certificate must chain to: a client without one fails the handshake) are PEM files' paths,
    or their contents as `bytes`. A bad one: one line, exit 1; an address that cannot be bound:
    exit 2; hookvisor's magic cookie in the environment: exit 1 (a plugin it starts serves on its
    socket). Once listening, prints `hookvisor plugin listening on HOST:PORT (TLS, client
    certificates required)` on stderr with the address bound; otherwise as `run` (same
    services, limits, drain and exit codes), without the cookie or any socket file.
    """
    _remote.refuse_cookie()
    target = _remote.settings(listen, cert, key, client_ca)
    _process.line_buffered_stdout()
    built: Plugin
    built, info = _process.init(plugin, Plugin)
    raise SystemExit(_serve_until_signal(built, info, target, max_concurrent_calls))


def _serve_until_signal(
    plugin: Plugin, info: Info, target: str | _remote.Remote, limit: int
) -> int:
    wake = _process.signal_pipe()
    in_flight = _process.InFlight()
    executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="hookvisor-call")
    options = _remote.SERVER_OPTIONS if isinstance(target, _remote.Remote) else ()
    server = grpc.server(executor, maximum_concurrent_rpcs=limit, options=options)
    servicer = _Servicer(plugin, info.to_proto(), in_flight)
    pb_grpc.add_PluginServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_service = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    address = _remote.add_port(server, target)
    server.start()
    for service in ("", _process.PLUGIN_SERVICE):
        health_service.set(service, _SERVING)
    if address is not None:
        _remote.announce(address)

    _process.announce_stop(os.read(wake, 1)[0])
    health_service.enter_graceful_shutdown()
    # stop() refuses new calls at once and cancels those still running after the grace period;
    # the wait is bounded too, since a handler that ignores cancellation never returns.
    server.stop(grace=_process.DRAIN_LIMIT_S).wait(_process.DRAIN_LIMIT_S + 0.2)
    if isinstance(target, str):
        _process.remove_socket(target)
    if in_flight.count:
        limit_ms = int(_process.DRAIN_LIMIT_S * 1000)
        print(f"calls still running after {limit_ms} ms; exiting anyway", file=sys.stderr)
        _process.exit_now(0)
    executor.shutdown(wait=False)
    return 0


class _Servicer(pb_grpc.PluginServicer):
    """Turns the generated service's requests into the SDK's views and the answers back."""

    def __init__(self, plugin: Plugin, info: pb.PluginInfo, in_flight: _process.InFlight) -> None:
        self._plugin = plugin
        self._info = info
        self._in_flight = in_flight

    def Describe(self, request: pb.DescribeRequest, context: grpc.ServicerContext) -> pb.PluginInfo:
        return self._info

    def BeforeToolCall(
        self, request: pb.BeforeToolCallRequest, context: grpc.ServicerContext
    ) -> pb.ToolCallDecision:
        def answer() -> pb.ToolCallDecision:
            call = ToolCall.from_proto(
                request, *_adapt.call_ids(context), cancelled=_CallEnd(context)
            )
            return _adapt.tool_call_answer(self._plugin.before_tool_call(call))

        return self._answer("before_tool_call", context, answer)

    def BeforeSessionCreate(
        self, request: pb.BeforeSessionCreateRequest, context: grpc.ServicerContext
    ) -> pb.SessionDecision:
        def answer() -> pb.SessionDecision:
            session = SessionCreate.from_proto(
                request, *_adapt.call_ids(context), cancelled=_CallEnd(context)
            )
            return _adapt.session_answer(self._plugin.before_session_create(session))

        return self._answer("before_session_create", context, answer)

    def SessionCreated(
        self, request: pb.SessionCreatedEvent, context: grpc.ServicerContext
    ) -> pb.Ack:
        def answer() -> pb.Ack:
            event = SessionCreated.from_proto(
                request, *_adapt.call_ids(context), cancelled=_CallEnd(context)
            )
            self._plugin.session_created(event)
            return pb.Ack()

        return self._answer("session_created", context, answer)

    def _answer(self, hook: str, context: grpc.ServicerContext, answer: Callable[[], T]) -> T:
        with self._in_flight:
            try:
                return answer()
            except Exception as e:
                code, message = _adapt.failure(hook, e)
                context.abort(code, message)
                raise  # abort() always raises; this keeps type checkers sure of it


class _CallEnd(threading.Event):
    """A view's `cancelled`: set once the call ends (while the handler runs, that means
    cancelled).

    It asks grpc to be told of the end only when first read (`is_set`, `wait`): asking takes a
    lock grpc's serving thread takes for the same call, and runs a callback at its end, which
    together cost about as much server CPU per call as the rest of the SDK's own work, while most
    handlers never read it. Read after the call ended, it is set at once. Two threads reading it
    first at the same time may both ask, which only sets it twice.
    """

    def __init__(self, context: grpc.ServicerContext) -> None:
        super().__init__()
        self._context: grpc.ServicerContext | None = context

    def _watch(self) -> None:
        context, self._context = self._context, None
        if context is not None and not context.add_callback(self.set):
            self.set()

    def is_set(self) -> bool:
        self._watch()
        return super().is_set()

    def wait(self, timeout: float | None = None) -> bool:
        self._watch()
        return super().wait(timeout)
