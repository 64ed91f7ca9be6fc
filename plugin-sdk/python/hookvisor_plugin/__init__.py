"""Write a hookvisor plugin in Python: subclass `Plugin`, call `run` at the bottom of the script.

hookvisor starts every plugin as a child process and speaks gRPC (`hookvisor.v1.Plugin`) to it over
a Unix socket. This package owns everything except the policy itself: the magic-cookie check,
binding the socket, `Describe`, the `grpc.health.v1.Health` service, JSON parsing of params and
metadata, SIGTERM/SIGINT and exit codes. A plugin only says which hooks it serves (`Info`,
`Registration`) and answers them (`decision`).

Layout:

- `plugin`: `Plugin`, the base class of a synchronous plugin; every hook defaults to "no opinion".
- `aio`: `aio.Plugin`, `aio.run` and `aio.serve_remote`, the same for handlers that are
  coroutines (grpc.aio).
- `info`: `Info`, `Registration`, `Hook`, `Stage`, which become `PluginInfo` in `Describe`.
- `call`: `ToolCall`, `SessionCreate`, `SessionCreated`, parsed views of the requests.
- `decision`: the answers and their constructors (`allow`, `block`, `rewrite`, ...).
- `jsontext`: `loads` and `dumps`, JSON with every number kept exactly (`int`, `Decimal`).
- `server`: `run`, the whole process for a synchronous plugin; `serve_remote`, the same on TCP
  with mutual TLS (also chosen by `run` when `HOOKVISOR_REMOTE_LISTEN` is set).
- `errors`: `StatusError` (answer with a chosen gRPC status) and `ConfigError` (init failed).
- `proto`: the generated messages, for code that needs them raw.
"""

from . import decision, jsontext
from .call import JSONObject, Requester, SessionCreate, SessionCreated, ToolCall, ToolCallContext
from .decision import (
    Approval,
    ApprovalDecision,
    SessionDecision,
    Severity,
    ToolCallDecision,
)
from .errors import ConfigError, StatusError
from .info import PROTOCOL_VERSION, Hook, Info, Registration, Stage
from .plugin import Plugin
from .server import run, serve_remote

__version__ = "0.1.0"

__all__ = [
    "PROTOCOL_VERSION",
    "Approval",
    "ApprovalDecision",
    "ConfigError",
    "Hook",
    "Info",
    "JSONObject",
    "Plugin",
    "Registration",
    "Requester",
    "SessionCreate",
    "SessionCreated",
    "SessionDecision",
    "Severity",
    "Stage",
    "StatusError",
    "ToolCall",
    "ToolCallContext",
    "ToolCallDecision",
    "__version__",
    "decision",
    "jsontext",
    "run",
    "serve_remote",
]
