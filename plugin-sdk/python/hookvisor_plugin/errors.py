"""Errors a handler may raise to choose the gRPC status the supervisor sees."""

from __future__ import annotations

import grpc


class StatusError(Exception):
    """Raised by a handler (or the SDK) to answer with a specific non-OK gRPC status.

    Any other exception from a handler is answered with `UNKNOWN`. Either way the supervisor
    counts the call as failed (`FAILURE_ERROR`), which blocks unless the operator configured
    `on_failure = "skip"`.
    """

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ConfigError(Exception):
    """Raised by a plugin's init code for a bad configuration: printed as one line, exit 1."""
