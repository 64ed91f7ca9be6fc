"""Plugins whose handlers are coroutines, served with grpc.aio on one asyncio event loop.

    import hookvisor_plugin.aio

    class MyPlugin(hookvisor_plugin.aio.Plugin):
        def info(self) -> Info: ...
        async def before_tool_call(self, call: ToolCall) -> ToolCallDecision: ...

    hookvisor_plugin.aio.run(MyPlugin)

Concurrency: at most `max_concurrent_calls` RPCs (hook calls, `Describe` and health checks
together) are admitted at once; past that a call is answered `RESOURCE_EXHAUSTED` at once. When
the supervisor cancels a call (its deadline passed, or the verdict was already decided), the
handler's task is cancelled: `asyncio.CancelledError` is raised at its current `await`.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import NoReturn, TypeVar

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import _adapt, _process, _remote, decision
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from ._proto.hookvisor.v1 import hookvisor_pb2_grpc as pb_grpc
from .call import SessionCreate, SessionCreated, ToolCall
from .decision import SessionDecision, ToolCallDecision
from .info import Info

#: Calls admitted at once unless `run` is told otherwise.
DEFAULT_MAX_CONCURRENT_CALLS = 128

_SERVING = health_pb2.HealthCheckResponse.SERVING

T = TypeVar("T")


class Plugin(abc.ABC):
    """A hookvisor plugin whose handlers are coroutines, run on one event loop.

    Like `hookvisor_plugin.Plugin`, every hook defaults to "no opinion". A handler must not block
    the loop (use `asyncio.to_thread` for blocking work): every other call waits while it does.
    """

    @abc.abstractmethod
    def info(self) -> Info:
        """Name, version and hooks served; `Describe` answers it. Called once at start."""

    async def before_tool_call(self, call: ToolCall) -> ToolCallDecision:
        """May this tool call run, with these params? Default: no opinion."""
        return decision.allow()

    async def before_session_create(self, session: SessionCreate) -> SessionDecision:
        """May this session be created? Default: no opinion."""
        return decision.allow_session()

    async def session_created(self, event: SessionCreated) -> None:
        """A session was created (observation only; never blocks). Default: ignore it."""
        return


def run(
    plugin: Plugin | Callable[[], Plugin],
    *,
    max_concurrent_calls: int = DEFAULT_MAX_CONCURRENT_CALLS,
) -> NoReturn:
    """Runs `plugin` as a hookvisor plugin process; never returns.

    The same process contract as `hookvisor_plugin.run` (cookie, init, socket, health, signals,
    1.5 s drain, exit codes, remote mode with `HOOKVISOR_REMOTE_LISTEN`), with the handlers
    awaited on an asyncio event loop. The factory form runs before the loop starts.
    """
    target, name = _remote.from_env()
    built: Plugin
    built, info = _process.init(plugin, Plugin)
    described = _process.describe(info, name)
    wake = _process.signal_pipe()
    raise SystemExit(
        asyncio.run(_serve_until_signal(built, described, target, max_concurrent_calls, wake))
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
    """Serves `plugin` on TCP with mutual TLS; never returns. The arguments, checks, line and
    exit codes of `hookvisor_plugin.serve_remote`, with the handlers awaited as in `run`."""
    _remote.refuse_cookie()
    target = _remote.settings(listen, cert, key, client_ca)
    _process.line_buffered_stdout()
    built: Plugin
    built, info = _process.init(plugin, Plugin)
    wake = _process.signal_pipe()
    raise SystemExit(
        asyncio.run(_serve_until_signal(built, info, target, max_concurrent_calls, wake))
    )


async def _serve_until_signal(
    plugin: Plugin,
    info: Info,
    target: str | _remote.Remote,
    limit: int,
    wake: int,
) -> int:
    loop = asyncio.get_running_loop()
    received: asyncio.Future[int] = loop.create_future()

    def on_signal() -> None:
        signum = os.read(wake, 1)[0]
        if not received.done():
            received.set_result(signum)

    loop.add_reader(wake, on_signal)

    in_flight = _process.InFlight()
    options = _remote.SERVER_OPTIONS if isinstance(target, _remote.Remote) else ()
    server = grpc.aio.server(maximum_concurrent_rpcs=limit, options=options)
    servicer = _Servicer(plugin, info.to_proto(), in_flight)
    pb_grpc.add_PluginServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    health_service = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_service, server)
    address = _remote.add_port(server, target)
    await server.start()
    for service in ("", _process.PLUGIN_SERVICE):
        await health_service.set(service, _SERVING)
    if address is not None:
        _remote.announce(address)

    _process.announce_stop(await received)
    await health_service.enter_graceful_shutdown()
    # stop() refuses new calls at once and cancels the handlers still running after the grace.
    # (asyncio.TimeoutError is not the builtin TimeoutError before Python 3.11.)
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(
            server.stop(grace=_process.DRAIN_LIMIT_S), _process.DRAIN_LIMIT_S + 0.2
        )
    if isinstance(target, str):
        _process.remove_socket(target)
    if in_flight.count:
        limit_ms = int(_process.DRAIN_LIMIT_S * 1000)
        print(f"calls still running after {limit_ms} ms; exiting anyway", file=sys.stderr)
        # A handler that swallowed its cancellation would keep asyncio.run's cleanup waiting.
        _process.exit_now(0)
    return 0


class _Servicer(pb_grpc.PluginServicer):
    """Turns the generated service's requests into the SDK's views and the answers back."""

    def __init__(self, plugin: Plugin, info: pb.PluginInfo, in_flight: _process.InFlight) -> None:
        self._plugin = plugin
        self._info = info
        self._in_flight = in_flight

    async def Describe(
        self, request: pb.DescribeRequest, context: grpc.aio.ServicerContext
    ) -> pb.PluginInfo:
        return self._info

    async def BeforeToolCall(
        self, request: pb.BeforeToolCallRequest, context: grpc.aio.ServicerContext
    ) -> pb.ToolCallDecision:
        async def answer() -> pb.ToolCallDecision:
            call = ToolCall.from_proto(request, *_adapt.call_ids(context))
            _watch(context, call.cancelled)
            return _adapt.tool_call_answer(await self._plugin.before_tool_call(call))

        return await self._answer("before_tool_call", context, answer)

    async def BeforeSessionCreate(
        self, request: pb.BeforeSessionCreateRequest, context: grpc.aio.ServicerContext
    ) -> pb.SessionDecision:
        async def answer() -> pb.SessionDecision:
            session = SessionCreate.from_proto(request, *_adapt.call_ids(context))
            _watch(context, session.cancelled)
            return _adapt.session_answer(await self._plugin.before_session_create(session))

        return await self._answer("before_session_create", context, answer)

    async def SessionCreated(
        self, request: pb.SessionCreatedEvent, context: grpc.aio.ServicerContext
    ) -> pb.Ack:
        async def answer() -> pb.Ack:
            event = SessionCreated.from_proto(request, *_adapt.call_ids(context))
            _watch(context, event.cancelled)
            await self._plugin.session_created(event)
            return pb.Ack()

        return await self._answer("session_created", context, answer)

    async def _answer(
        self, hook: str, context: grpc.aio.ServicerContext, answer: Callable[[], Awaitable[T]]
    ) -> T:
        with self._in_flight:
            try:
                return await answer()
            except Exception as e:
                code, message = _adapt.failure(hook, e)
                await context.abort(code, message)
                raise  # abort() always raises; this keeps type checkers sure of it


def _watch(context: grpc.aio.ServicerContext, cancelled: threading.Event) -> None:
    """Sets `cancelled` once the call ends; while the handler runs, that means cancelled."""
    context.add_done_callback(lambda _context: cancelled.set())
