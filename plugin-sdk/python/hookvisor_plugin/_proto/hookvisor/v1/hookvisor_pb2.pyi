from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Hook(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOOK_UNSPECIFIED: _ClassVar[Hook]
    HOOK_BEFORE_TOOL_CALL: _ClassVar[Hook]
    HOOK_BEFORE_SESSION_CREATE: _ClassVar[Hook]
    HOOK_SESSION_CREATED: _ClassVar[Hook]

class Stage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STAGE_UNSPECIFIED: _ClassVar[Stage]
    STAGE_POLICY: _ClassVar[Stage]
    STAGE_HOOK: _ClassVar[Stage]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_ALLOW: _ClassVar[Outcome]
    OUTCOME_BLOCK: _ClassVar[Outcome]
    OUTCOME_REQUIRE_APPROVAL: _ClassVar[Outcome]

class BlockKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLOCK_KIND_UNSPECIFIED: _ClassVar[BlockKind]
    BLOCK_KIND_POLICY: _ClassVar[BlockKind]
    BLOCK_KIND_FAILURE: _ClassVar[BlockKind]

class Failure(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_NONE: _ClassVar[Failure]
    FAILURE_TIMEOUT: _ClassVar[Failure]
    FAILURE_CRASHED: _ClassVar[Failure]
    FAILURE_UNAVAILABLE: _ClassVar[Failure]
    FAILURE_INVALID_RESPONSE: _ClassVar[Failure]
    FAILURE_ERROR: _ClassVar[Failure]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_CRITICAL: _ClassVar[Severity]

class ApprovalDecision(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    APPROVAL_DECISION_UNSPECIFIED: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_ALLOW_ONCE: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_ALLOW_ALWAYS: _ClassVar[ApprovalDecision]
    APPROVAL_DECISION_DENY: _ClassVar[ApprovalDecision]
HOOK_UNSPECIFIED: Hook
HOOK_BEFORE_TOOL_CALL: Hook
HOOK_BEFORE_SESSION_CREATE: Hook
HOOK_SESSION_CREATED: Hook
STAGE_UNSPECIFIED: Stage
STAGE_POLICY: Stage
STAGE_HOOK: Stage
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_ALLOW: Outcome
OUTCOME_BLOCK: Outcome
OUTCOME_REQUIRE_APPROVAL: Outcome
BLOCK_KIND_UNSPECIFIED: BlockKind
BLOCK_KIND_POLICY: BlockKind
BLOCK_KIND_FAILURE: BlockKind
FAILURE_NONE: Failure
FAILURE_TIMEOUT: Failure
FAILURE_CRASHED: Failure
FAILURE_UNAVAILABLE: Failure
FAILURE_INVALID_RESPONSE: Failure
FAILURE_ERROR: Failure
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_CRITICAL: Severity
APPROVAL_DECISION_UNSPECIFIED: ApprovalDecision
APPROVAL_DECISION_ALLOW_ONCE: ApprovalDecision
APPROVAL_DECISION_ALLOW_ALWAYS: ApprovalDecision
APPROVAL_DECISION_DENY: ApprovalDecision

class Requester(_message.Message):
    __slots__ = ("channel", "account_id", "sender_id", "sender_is_owner")
    CHANNEL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_ID_FIELD_NUMBER: _ClassVar[int]
    SENDER_IS_OWNER_FIELD_NUMBER: _ClassVar[int]
    channel: str
    account_id: str
    sender_id: str
    sender_is_owner: bool
    def __init__(self, channel: _Optional[str] = ..., account_id: _Optional[str] = ..., sender_id: _Optional[str] = ..., sender_is_owner: _Optional[bool] = ...) -> None: ...

class ToolCallContext(_message.Message):
    __slots__ = ("agent_id", "session_key", "session_id", "run_id", "tool_call_id", "workspace_dir", "container_workdir", "channel_id", "requester")
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_ID_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_DIR_FIELD_NUMBER: _ClassVar[int]
    CONTAINER_WORKDIR_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    agent_id: str
    session_key: str
    session_id: str
    run_id: str
    tool_call_id: str
    workspace_dir: str
    container_workdir: str
    channel_id: str
    requester: Requester
    def __init__(self, agent_id: _Optional[str] = ..., session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., run_id: _Optional[str] = ..., tool_call_id: _Optional[str] = ..., workspace_dir: _Optional[str] = ..., container_workdir: _Optional[str] = ..., channel_id: _Optional[str] = ..., requester: _Optional[_Union[Requester, _Mapping]] = ...) -> None: ...

class ApprovalRequest(_message.Message):
    __slots__ = ("title", "description", "severity", "timeout_ms", "allowed_decisions")
    TITLE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_DECISIONS_FIELD_NUMBER: _ClassVar[int]
    title: str
    description: str
    severity: Severity
    timeout_ms: int
    allowed_decisions: _containers.RepeatedScalarFieldContainer[ApprovalDecision]
    def __init__(self, title: _Optional[str] = ..., description: _Optional[str] = ..., severity: _Optional[_Union[Severity, str]] = ..., timeout_ms: _Optional[int] = ..., allowed_decisions: _Optional[_Iterable[_Union[ApprovalDecision, str]]] = ...) -> None: ...

class DescribeRequest(_message.Message):
    __slots__ = ("protocol_version",)
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    protocol_version: int
    def __init__(self, protocol_version: _Optional[int] = ...) -> None: ...

class PluginInfo(_message.Message):
    __slots__ = ("name", "version", "protocol_version", "hooks")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    HOOKS_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    protocol_version: int
    hooks: _containers.RepeatedCompositeFieldContainer[HookRegistration]
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., protocol_version: _Optional[int] = ..., hooks: _Optional[_Iterable[_Union[HookRegistration, _Mapping]]] = ...) -> None: ...

class HookRegistration(_message.Message):
    __slots__ = ("hook", "stage", "priority", "tools", "timeout_ms")
    HOOK_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    hook: Hook
    stage: Stage
    priority: int
    tools: _containers.RepeatedScalarFieldContainer[str]
    timeout_ms: int
    def __init__(self, hook: _Optional[_Union[Hook, str]] = ..., stage: _Optional[_Union[Stage, str]] = ..., priority: _Optional[int] = ..., tools: _Optional[_Iterable[str]] = ..., timeout_ms: _Optional[int] = ...) -> None: ...

class BeforeToolCallRequest(_message.Message):
    __slots__ = ("tool_name", "params_json", "context", "session_metadata_json", "deadline_ms")
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    params_json: str
    context: ToolCallContext
    session_metadata_json: str
    deadline_ms: int
    def __init__(self, tool_name: _Optional[str] = ..., params_json: _Optional[str] = ..., context: _Optional[_Union[ToolCallContext, _Mapping]] = ..., session_metadata_json: _Optional[str] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class ToolCallDecision(_message.Message):
    __slots__ = ("params_json", "block", "block_reason", "require_approval")
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    REQUIRE_APPROVAL_FIELD_NUMBER: _ClassVar[int]
    params_json: str
    block: bool
    block_reason: str
    require_approval: ApprovalRequest
    def __init__(self, params_json: _Optional[str] = ..., block: _Optional[bool] = ..., block_reason: _Optional[str] = ..., require_approval: _Optional[_Union[ApprovalRequest, _Mapping]] = ...) -> None: ...

class BeforeSessionCreateRequest(_message.Message):
    __slots__ = ("session_key", "agent_id", "label", "model", "parent_session_key", "workspace_dir", "requester", "session_metadata_json", "deadline_ms")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_DIR_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    DEADLINE_MS_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    label: str
    model: str
    parent_session_key: str
    workspace_dir: str
    requester: Requester
    session_metadata_json: str
    deadline_ms: int
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., label: _Optional[str] = ..., model: _Optional[str] = ..., parent_session_key: _Optional[str] = ..., workspace_dir: _Optional[str] = ..., requester: _Optional[_Union[Requester, _Mapping]] = ..., session_metadata_json: _Optional[str] = ..., deadline_ms: _Optional[int] = ...) -> None: ...

class SessionDecision(_message.Message):
    __slots__ = ("block", "block_reason", "metadata_json")
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    block: bool
    block_reason: str
    metadata_json: str
    def __init__(self, block: _Optional[bool] = ..., block_reason: _Optional[str] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class SessionCreatedEvent(_message.Message):
    __slots__ = ("session_key", "session_id", "agent_id", "session_metadata_json")
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    session_id: str
    agent_id: str
    session_metadata_json: str
    def __init__(self, session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., session_metadata_json: _Optional[str] = ...) -> None: ...

class Ack(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ToolCallRequest(_message.Message):
    __slots__ = ("tool_name", "params_json", "context", "session_metadata", "dispatch")
    class SessionMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    TOOL_NAME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_FIELD_NUMBER: _ClassVar[int]
    DISPATCH_FIELD_NUMBER: _ClassVar[int]
    tool_name: str
    params_json: str
    context: ToolCallContext
    session_metadata: _containers.ScalarMap[str, str]
    dispatch: bool
    def __init__(self, tool_name: _Optional[str] = ..., params_json: _Optional[str] = ..., context: _Optional[_Union[ToolCallContext, _Mapping]] = ..., session_metadata: _Optional[_Mapping[str, str]] = ..., dispatch: _Optional[bool] = ...) -> None: ...

class PluginResult(_message.Message):
    __slots__ = ("plugin", "stage", "outcome", "failure", "detail", "latency_us", "params_changed", "revalidation", "shadow")
    PLUGIN_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    FAILURE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    LATENCY_US_FIELD_NUMBER: _ClassVar[int]
    PARAMS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    REVALIDATION_FIELD_NUMBER: _ClassVar[int]
    SHADOW_FIELD_NUMBER: _ClassVar[int]
    plugin: str
    stage: Stage
    outcome: Outcome
    failure: Failure
    detail: str
    latency_us: int
    params_changed: bool
    revalidation: bool
    shadow: bool
    def __init__(self, plugin: _Optional[str] = ..., stage: _Optional[_Union[Stage, str]] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., failure: _Optional[_Union[Failure, str]] = ..., detail: _Optional[str] = ..., latency_us: _Optional[int] = ..., params_changed: _Optional[bool] = ..., revalidation: _Optional[bool] = ..., shadow: _Optional[bool] = ...) -> None: ...

class ToolCallVerdict(_message.Message):
    __slots__ = ("outcome", "params_json", "params_changed", "block_reason", "block_kind", "decided_by", "approval", "approval_plugin", "trace")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    PARAMS_JSON_FIELD_NUMBER: _ClassVar[int]
    PARAMS_CHANGED_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KIND_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_FIELD_NUMBER: _ClassVar[int]
    APPROVAL_PLUGIN_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    params_json: str
    params_changed: bool
    block_reason: str
    block_kind: BlockKind
    decided_by: str
    approval: ApprovalRequest
    approval_plugin: str
    trace: _containers.RepeatedCompositeFieldContainer[PluginResult]
    def __init__(self, outcome: _Optional[_Union[Outcome, str]] = ..., params_json: _Optional[str] = ..., params_changed: _Optional[bool] = ..., block_reason: _Optional[str] = ..., block_kind: _Optional[_Union[BlockKind, str]] = ..., decided_by: _Optional[str] = ..., approval: _Optional[_Union[ApprovalRequest, _Mapping]] = ..., approval_plugin: _Optional[str] = ..., trace: _Optional[_Iterable[_Union[PluginResult, _Mapping]]] = ...) -> None: ...

class SessionCreateRequest(_message.Message):
    __slots__ = ("session_key", "agent_id", "label", "model", "parent_session_key", "workspace_dir", "requester", "session_metadata")
    class SessionMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PARENT_SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    WORKSPACE_DIR_FIELD_NUMBER: _ClassVar[int]
    REQUESTER_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    agent_id: str
    label: str
    model: str
    parent_session_key: str
    workspace_dir: str
    requester: Requester
    session_metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_key: _Optional[str] = ..., agent_id: _Optional[str] = ..., label: _Optional[str] = ..., model: _Optional[str] = ..., parent_session_key: _Optional[str] = ..., workspace_dir: _Optional[str] = ..., requester: _Optional[_Union[Requester, _Mapping]] = ..., session_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SessionVerdict(_message.Message):
    __slots__ = ("outcome", "block_reason", "block_kind", "decided_by", "session_metadata", "trace")
    class SessionMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    BLOCK_REASON_FIELD_NUMBER: _ClassVar[int]
    BLOCK_KIND_FIELD_NUMBER: _ClassVar[int]
    DECIDED_BY_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_FIELD_NUMBER: _ClassVar[int]
    TRACE_FIELD_NUMBER: _ClassVar[int]
    outcome: Outcome
    block_reason: str
    block_kind: BlockKind
    decided_by: str
    session_metadata: _containers.ScalarMap[str, str]
    trace: _containers.RepeatedCompositeFieldContainer[PluginResult]
    def __init__(self, outcome: _Optional[_Union[Outcome, str]] = ..., block_reason: _Optional[str] = ..., block_kind: _Optional[_Union[BlockKind, str]] = ..., decided_by: _Optional[str] = ..., session_metadata: _Optional[_Mapping[str, str]] = ..., trace: _Optional[_Iterable[_Union[PluginResult, _Mapping]]] = ...) -> None: ...

class SessionCreatedNotice(_message.Message):
    __slots__ = ("session_key", "session_id", "agent_id", "session_metadata")
    class SessionMetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SESSION_KEY_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    AGENT_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_METADATA_FIELD_NUMBER: _ClassVar[int]
    session_key: str
    session_id: str
    agent_id: str
    session_metadata: _containers.ScalarMap[str, str]
    def __init__(self, session_key: _Optional[str] = ..., session_id: _Optional[str] = ..., agent_id: _Optional[str] = ..., session_metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class SessionCreatedReceipt(_message.Message):
    __slots__ = ("trace",)
    TRACE_FIELD_NUMBER: _ClassVar[int]
    trace: _containers.RepeatedCompositeFieldContainer[PluginResult]
    def __init__(self, trace: _Optional[_Iterable[_Union[PluginResult, _Mapping]]] = ...) -> None: ...

class HostReport(_message.Message):
    __slots__ = ("host", "kind", "version", "policy_id", "adapter_version", "interval_ms", "tools", "stopping")
    HOST_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    ADAPTER_VERSION_FIELD_NUMBER: _ClassVar[int]
    INTERVAL_MS_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    STOPPING_FIELD_NUMBER: _ClassVar[int]
    host: str
    kind: str
    version: str
    policy_id: str
    adapter_version: str
    interval_ms: int
    tools: _containers.RepeatedCompositeFieldContainer[ToolCount]
    stopping: bool
    def __init__(self, host: _Optional[str] = ..., kind: _Optional[str] = ..., version: _Optional[str] = ..., policy_id: _Optional[str] = ..., adapter_version: _Optional[str] = ..., interval_ms: _Optional[int] = ..., tools: _Optional[_Iterable[_Union[ToolCount, _Mapping]]] = ..., stopping: _Optional[bool] = ...) -> None: ...

class ToolCount(_message.Message):
    __slots__ = ("tool", "asked", "ran")
    TOOL_FIELD_NUMBER: _ClassVar[int]
    ASKED_FIELD_NUMBER: _ClassVar[int]
    RAN_FIELD_NUMBER: _ClassVar[int]
    tool: str
    asked: int
    ran: int
    def __init__(self, tool: _Optional[str] = ..., asked: _Optional[int] = ..., ran: _Optional[int] = ...) -> None: ...

class HostReportReceipt(_message.Message):
    __slots__ = ("version", "plugins", "plugins_ready")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_FIELD_NUMBER: _ClassVar[int]
    PLUGINS_READY_FIELD_NUMBER: _ClassVar[int]
    version: str
    plugins: int
    plugins_ready: int
    def __init__(self, version: _Optional[str] = ..., plugins: _Optional[int] = ..., plugins_ready: _Optional[int] = ...) -> None: ...
