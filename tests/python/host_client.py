"""A hookvisor host in Python: calls Hooks.BeforeToolCall over the supervisor's Unix socket with
grpcio's DEFAULT channel options (no grpc.default_authority override) and prints the verdict as
one JSON object on stdout.

usage: host_client.py STUBS_DIR SOCKET_PATH TOOL PARAMS_JSON
"""

import json
import sys


def main() -> int:
    stubs, socket, tool, params = sys.argv[1:5]
    sys.path.insert(0, stubs)
    import grpc
    from google.protobuf import json_format
    from hookvisor.v1 import hookvisor_pb2, hookvisor_pb2_grpc

    with grpc.insecure_channel(f"unix:{socket}") as channel:
        stub = hookvisor_pb2_grpc.HooksStub(channel)
        request = hookvisor_pb2.ToolCallRequest(
            tool_name=tool,
            params_json=params,
            context=hookvisor_pb2.ToolCallContext(
                agent_id="agent-py", workspace_dir="/srv/agent/workspace"
            ),
        )
        verdict = stub.BeforeToolCall(request, timeout=10)
    print(
        json.dumps(
            json_format.MessageToDict(
                verdict, preserving_proto_field_name=True, use_integers_for_enums=False
            )
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
