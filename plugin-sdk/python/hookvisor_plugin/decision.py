"""Answers: for `before_tool_call` allow, block, rewrite or ask for approval; for
`before_session_create` allow, block or patch this plugin's metadata namespace.

The constructors below are the usual way to build an answer. The dataclasses' fields are public, so
a plugin that wants to combine answers (rewrite *and* ask) can use `dataclasses.replace`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import jsontext
from ._proto.hookvisor.v1 import hookvisor_pb2 as pb
from .call import JSONObject

#: Longest approval title the contract accepts, in characters (contract §8).
MAX_TITLE_CHARS = 80
#: Longest approval description the contract accepts, in characters (contract §8).
MAX_DESCRIPTION_CHARS = 512


class Severity(enum.IntEnum):
    """How serious an approval request is; unspecified is shown as WARNING."""

    UNSPECIFIED = pb.SEVERITY_UNSPECIFIED
    INFO = pb.SEVERITY_INFO
    WARNING = pb.SEVERITY_WARNING
    CRITICAL = pb.SEVERITY_CRITICAL


class ApprovalDecision(enum.IntEnum):
    """An answer a human may give to an approval request."""

    ALLOW_ONCE = pb.APPROVAL_DECISION_ALLOW_ONCE
    ALLOW_ALWAYS = pb.APPROVAL_DECISION_ALLOW_ALWAYS
    DENY = pb.APPROVAL_DECISION_DENY


@dataclass(frozen=True)
class Approval:
    """A request that a human approve the call before it runs."""

    title: str
    description: str = ""
    severity: Severity = Severity.UNSPECIFIED
    #: How long the host waits for a human: 1..600000 ms; 0 means 120000.
    timeout_ms: int = 0
    #: Empty means all three decisions.
    allowed_decisions: Sequence[ApprovalDecision] = ()

    def to_proto(self) -> pb.ApprovalRequest:
        """The `ApprovalRequest`, with title and description cut to the contract's limits."""
        title = self.title if self.title.strip() else "Approval required"
        return pb.ApprovalRequest(
            title=truncate(title, MAX_TITLE_CHARS),
            description=truncate(self.description, MAX_DESCRIPTION_CHARS),
            severity=self.severity.value,
            timeout_ms=self.timeout_ms,
            allowed_decisions=[d.value for d in self.allowed_decisions],
        )


@dataclass(frozen=True)
class ToolCallDecision:
    """An answer to `before_tool_call`; all fields unset means "no opinion"."""

    #: A rewrite of the params: the whole new object.
    params: JSONObject | None = None
    #: Stop the call.
    block: bool = False
    #: Shown to the agent and the operator when `block` is set.
    block_reason: str = ""
    #: Ask a human first.
    approval: Approval | None = None

    def to_proto(self) -> pb.ToolCallDecision:
        """The `ToolCallDecision` message; raises `TypeError`/`ValueError` for params that are
        not a JSON object (the call then fails, which blocks)."""
        msg = pb.ToolCallDecision(block=self.block, block_reason=self.block_reason)
        if self.params is not None:
            if not isinstance(self.params, Mapping):
                kind = type(self.params).__name__
                raise TypeError(f"a rewrite must be a JSON object (a dict), got {kind}")
            msg.params_json = _dumps(self.params)
        if self.approval is not None:
            msg.require_approval.CopyFrom(self.approval.to_proto())
        return msg


@dataclass(frozen=True)
class SessionDecision:
    """An answer to `before_session_create`; all fields unset means "no opinion"."""

    #: Refuse the session.
    block: bool = False
    #: Shown to the agent and the operator when `block` is set.
    block_reason: str = ""
    #: A JSON text that replaces this plugin's own metadata namespace; `None` leaves it.
    metadata_json: str | None = None

    def to_proto(self) -> pb.SessionDecision:
        """The `SessionDecision` message."""
        msg = pb.SessionDecision(block=self.block, block_reason=self.block_reason)
        if self.metadata_json is not None:
            msg.metadata_json = self.metadata_json
        return msg


def allow() -> ToolCallDecision:
    """No opinion: the call proceeds as far as this plugin is concerned."""
    return ToolCallDecision()


def block(reason: str) -> ToolCallDecision:
    """Block the call; `reason` is shown to the agent and the operator."""
    return ToolCallDecision(block=True, block_reason=reason)


def rewrite(params: Mapping[str, Any]) -> ToolCallDecision:
    """Replace the call's params with `params` (the whole object)."""
    return ToolCallDecision(params=dict(params))


def require_approval(
    title: str,
    description: str = "",
    *,
    severity: Severity = Severity.UNSPECIFIED,
    timeout_ms: int = 0,
    allowed_decisions: Iterable[ApprovalDecision] = (),
) -> ToolCallDecision:
    """Ask a human before the call runs.

    Title and description are cut to the contract's limits (80 and 512 characters) with a
    trailing `…`, so a long text never turns an approval into a failure; an empty title becomes
    `Approval required`.
    """
    approval = Approval(title, description, severity, timeout_ms, tuple(allowed_decisions))
    return ToolCallDecision(approval=approval)


def allow_session() -> SessionDecision:
    """No opinion: the session may be created and this plugin's metadata is left as it is."""
    return SessionDecision()


def block_session(reason: str) -> SessionDecision:
    """Refuse the session; `reason` is shown to the agent and the operator."""
    return SessionDecision(block=True, block_reason=reason)


def patch_session(value: Any) -> SessionDecision:
    """Replace this plugin's namespace of the session metadata with the JSON value `value`."""
    return SessionDecision(metadata_json=_dumps(value))


def truncate(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, ending in `…` when cut."""
    if len(text) <= max_chars:
        return text
    return text[: max(max_chars - 1, 0)] + "…"


def _dumps(value: Any) -> str:
    # Compact, no NaN/Infinity (not JSON: the supervisor would refuse them), and a Decimal written
    # with its digits, so the numbers of the params a plugin got go back exactly.
    return jsontext.dumps(value)
