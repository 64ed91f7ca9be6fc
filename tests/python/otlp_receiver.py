"""A minimal OTLP/gRPC trace receiver for tests/tests/tracing.rs, built from the official protos
(PyPI `opentelemetry-proto`) with grpcio.

Serves `opentelemetry.proto.collector.trace.v1.TraceService/Export` on 127.0.0.1 (port 0: any),
prints the port on stdout once it listens, and appends each received span to the file named on
the command line as one JSON line: trace id, span id, parent span id (hex, "" for none), name,
kind, start and end (Unix nanoseconds), attributes (key to value), status code, and the
resource's `service.name`. Runs until it is killed.
"""

import json
import sys
import threading
from concurrent import futures

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)


def value(any_value):
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(getattr(any_value, kind))
    return getattr(any_value, kind)


def attributes(pairs):
    return {kv.key: value(kv.value) for kv in pairs}


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()

    def Export(self, request, context):
        lines = []
        for resource_spans in request.resource_spans:
            service = attributes(resource_spans.resource.attributes).get("service.name")
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    lines.append(
                        json.dumps(
                            {
                                "trace_id": span.trace_id.hex(),
                                "span_id": span.span_id.hex(),
                                "parent_span_id": span.parent_span_id.hex(),
                                "name": span.name,
                                "kind": span.kind,
                                "start": span.start_time_unix_nano,
                                "end": span.end_time_unix_nano,
                                "attributes": attributes(span.attributes),
                                "status": span.status.code,
                                "service": service,
                                "scope": scope_spans.scope.name,
                            }
                        )
                    )
        with self.lock, open(self.path, "a", encoding="utf-8") as out:
            for line in lines:
                out.write(line + "\n")
        return trace_service_pb2.ExportTraceServiceResponse()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: otlp_receiver.py SPANS_FILE")
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Receiver(sys.argv[1]), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
