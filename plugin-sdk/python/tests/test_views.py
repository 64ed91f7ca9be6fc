"""The pure parts: parsing requests into views, answers into messages, info into PluginInfo."""

from __future__ import annotations

import dataclasses

import grpc
import pytest

from hookvisor_plugin import (
    ApprovalDecision,
    Hook,
    Info,
    Registration,
    SessionCreate,
    SessionCreated,
    Severity,
    Stage,
    StatusError,
    ToolCall,
    decision,
)
from hookvisor_plugin.proto import pb2


def tool_request(params: str, metadata: str = "") -> pb2.BeforeToolCallRequest:
    return pb2.BeforeToolCallRequest(
        tool_name="exec",
        params_json=params,
        context=pb2.ToolCallContext(
            workspace_dir="/srv/ws",
            agent_id="main",
            session_key="s1",
            requester=pb2.Requester(channel="telegram", sender_is_owner=True),
        ),
        session_metadata_json=metadata,
        deadline_ms=250,
    )


def test_tool_call_parses_params_metadata_context_and_deadline() -> None:
    call = ToolCall.from_proto(tool_request('{"command":"ls","n":1}', '{"seen":2}'))
    assert call.tool_name == "exec"
    assert call.param_str("command") == "ls"
    assert call.param_str("n") is None
    assert call.param_str("missing") is None
    assert call.params["n"] == 1
    assert call.metadata == {"seen": 2}
    assert call.deadline_ms == 250
    assert (call.workspace_dir, call.agent_id, call.session_key) == ("/srv/ws", "main", "s1")
    assert call.context.requester is not None
    assert call.context.requester.channel == "telegram"
    assert call.context.requester.sender_is_owner
    assert not call.cancelled.is_set()


def test_missing_context_and_metadata_read_as_empty() -> None:
    call = ToolCall.from_proto(pb2.BeforeToolCallRequest(tool_name="x", params_json="{}"))
    assert call.metadata is None
    assert call.workspace_dir == ""
    assert call.context.requester is None


@pytest.mark.parametrize("bad", ["[1,2]", '"x"', "null", "", "{not json", "1", "true"])
def test_params_that_are_not_an_object_are_invalid_argument(bad: str) -> None:
    with pytest.raises(StatusError) as raised:
        ToolCall.from_proto(tool_request(bad))
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "params_json" in raised.value.message


def test_invalid_metadata_is_invalid_argument() -> None:
    for parse in (
        lambda: ToolCall.from_proto(tool_request("{}", "{oops")),
        lambda: SessionCreate.from_proto(pb2.BeforeSessionCreateRequest(session_metadata_json="{")),
        lambda: SessionCreated.from_proto(pb2.SessionCreatedEvent(session_metadata_json="[")),
    ):
        with pytest.raises(StatusError) as raised:
            parse()
        assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "session_metadata_json" in raised.value.message


def test_session_views() -> None:
    create = SessionCreate.from_proto(
        pb2.BeforeSessionCreateRequest(
            agent_id="main", model="m", session_metadata_json="[1]", deadline_ms=5
        )
    )
    assert (create.agent_id, create.model, create.metadata, create.deadline_ms) == (
        "main",
        "m",
        [1],
        5,
    )
    assert create.requester is None
    created = SessionCreated.from_proto(pb2.SessionCreatedEvent(session_id="s1"))
    assert (created.session_id, created.metadata) == ("s1", None)


def test_tool_call_decisions() -> None:
    assert decision.allow().to_proto() == pb2.ToolCallDecision()
    assert not decision.allow().to_proto().HasField("params_json")
    blocked = decision.block("no").to_proto()
    assert (blocked.block, blocked.block_reason) == (True, "no")
    rewritten = decision.rewrite({"path": "/a", "é": [1, None]}).to_proto()
    assert rewritten.params_json == '{"path":"/a","é":[1,null]}'
    assert not rewritten.block


def test_rewrite_must_be_an_object_of_json() -> None:
    with pytest.raises(TypeError):
        dataclasses.replace(decision.allow(), params=[1, 2]).to_proto()  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        decision.rewrite({"n": float("nan")}).to_proto()


def test_approval_sets_every_field_and_cuts_texts() -> None:
    asked = decision.require_approval(
        "t" * 200,
        "é" * 1000,
        severity=Severity.CRITICAL,
        timeout_ms=30_000,
        allowed_decisions=[ApprovalDecision.ALLOW_ONCE, ApprovalDecision.DENY],
    ).to_proto()
    approval = asked.require_approval
    assert len(approval.title) == 80 and approval.title.endswith("…")
    assert len(approval.description) == 512
    assert approval.severity == pb2.SEVERITY_CRITICAL
    assert approval.timeout_ms == 30_000
    assert list(approval.allowed_decisions) == [1, 3]
    assert decision.require_approval("").to_proto().require_approval.title == "Approval required"


def test_rewrite_and_approval_combine() -> None:
    both = dataclasses.replace(decision.require_approval("ok?"), params={"a": 1}).to_proto()
    assert both.params_json == '{"a":1}'
    assert both.require_approval.title == "ok?"


def test_session_decisions() -> None:
    assert decision.allow_session().to_proto() == pb2.SessionDecision()
    blocked = decision.block_session("nope").to_proto()
    assert (blocked.block, blocked.block_reason) == (True, "nope")
    patched = decision.patch_session({"labels": ["a"]}).to_proto()
    assert patched.metadata_json == '{"labels":["a"]}'
    assert decision.patch_session(None).to_proto().metadata_json == "null"


def test_truncate_counts_characters() -> None:
    assert decision.truncate("abc", 3) == "abc"
    assert decision.truncate("abcd", 3) == "ab…"
    assert decision.truncate("ééé", 3) == "ééé"
    assert decision.truncate("abc", 0) == "…"


def test_info_and_registrations() -> None:
    info = Info(
        "tagger",
        "1.2.3",
        [
            Registration.before_tool_call(
                tools=["exec", "shell"], stage=Stage.POLICY, priority=100, timeout_ms=200
            ),
            Registration.session_created(),
        ],
    ).to_proto()
    assert (info.name, info.version, info.protocol_version) == ("tagger", "1.2.3", 1)
    first, second = info.hooks
    assert first.hook == pb2.HOOK_BEFORE_TOOL_CALL and first.stage == pb2.STAGE_POLICY
    assert list(first.tools) == ["exec", "shell"]
    assert (first.priority, first.timeout_ms) == (100, 200)
    assert second.hook == pb2.HOOK_SESSION_CREATED and second.stage == pb2.STAGE_HOOK
    assert Registration(Hook.BEFORE_SESSION_CREATE).stage == Stage.HOOK


def test_tools_must_be_a_list_not_a_string() -> None:
    with pytest.raises(TypeError):
        Registration.before_tool_call(tools="exec")
