"""The generated protobuf and gRPC modules for `hookvisor.v1`, for code that needs the raw
messages (tests, clients, or a server written without the SDK)."""

from ._proto.hookvisor.v1 import hookvisor_pb2 as pb2
from ._proto.hookvisor.v1 import hookvisor_pb2_grpc as pb2_grpc

__all__ = ["pb2", "pb2_grpc"]
