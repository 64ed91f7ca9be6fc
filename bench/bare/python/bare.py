"""A bare grpcio plugin server, the floor the Python SDK is measured against: `bare.py thread|aio`.

Serves `hookvisor.v1.Plugin` on the Unix socket named by `HOOKVISOR_PLUGIN_SOCKET`, written
directly on grpcio and the SDK's generated modules (none of the SDK's server code): `Describe`
answers a fixed `PluginInfo`, `BeforeToolCall` answers "no opinion" (an empty
`ToolCallDecision`). `thread` serves on grpcio's thread-pool server, `aio` on `grpc.aio`.
No cookie check, no health service, no drain: SIGTERM ends it.
"""

from __future__ import annotations

import asyncio
import os
import sys
from concurrent.futures import ThreadPoolExecutor

import grpc

from hookvisor_plugin._proto.hookvisor.v1 import hookvisor_pb2 as pb
from hookvisor_plugin._proto.hookvisor.v1 import hookvisor_pb2_grpc as pb_grpc

INFO = pb.PluginInfo(
    name="bare-python",
    version="0.1.0",
    protocol_version=1,
    hooks=[pb.HookRegistration(hook=pb.HOOK_BEFORE_TOOL_CALL, stage=pb.STAGE_HOOK)],
)
NO_OPINION = pb.ToolCallDecision()


class Thread(pb_grpc.PluginServicer):
    def Describe(self, request: pb.DescribeRequest, context: object) -> pb.PluginInfo:
        return INFO

    def BeforeToolCall(
        self, request: pb.BeforeToolCallRequest, context: object
    ) -> pb.ToolCallDecision:
        return NO_OPINION


class Aio(pb_grpc.PluginServicer):
    async def Describe(self, request: pb.DescribeRequest, context: object) -> pb.PluginInfo:
        return INFO

    async def BeforeToolCall(
        self, request: pb.BeforeToolCallRequest, context: object
    ) -> pb.ToolCallDecision:
        return NO_OPINION


def address() -> str:
    socket = os.environ.get("HOOKVISOR_PLUGIN_SOCKET", "")
    if not os.path.isabs(socket):
        sys.exit(f"HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got {socket!r}")
    if os.path.exists(socket):
        os.unlink(socket)
    return f"unix:{socket}"


def serve_thread() -> None:
    server = grpc.server(ThreadPoolExecutor(max_workers=32))
    pb_grpc.add_PluginServicer_to_server(Thread(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(address())
    server.start()
    server.wait_for_termination()


async def serve_aio() -> None:
    server = grpc.aio.server()
    pb_grpc.add_PluginServicer_to_server(Aio(), server)  # type: ignore[no-untyped-call]
    server.add_insecure_port(address())
    await server.start()
    await server.wait_for_termination()


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) == 2 else ""
    if mode == "thread":
        serve_thread()
    elif mode == "aio":
        asyncio.run(serve_aio())
    else:
        sys.exit("usage: bare.py thread|aio")
