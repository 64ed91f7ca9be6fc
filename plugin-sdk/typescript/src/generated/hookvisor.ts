import type * as grpc from '@grpc/grpc-js';
import type { EnumTypeDefinition, MessageTypeDefinition } from '@grpc/proto-loader';

import type { Ack as _hookvisor_v1_Ack, Ack__Output as _hookvisor_v1_Ack__Output } from './hookvisor/v1/Ack';
import type { ApprovalRequest as _hookvisor_v1_ApprovalRequest, ApprovalRequest__Output as _hookvisor_v1_ApprovalRequest__Output } from './hookvisor/v1/ApprovalRequest';
import type { BeforeSessionCreateRequest as _hookvisor_v1_BeforeSessionCreateRequest, BeforeSessionCreateRequest__Output as _hookvisor_v1_BeforeSessionCreateRequest__Output } from './hookvisor/v1/BeforeSessionCreateRequest';
import type { BeforeToolCallRequest as _hookvisor_v1_BeforeToolCallRequest, BeforeToolCallRequest__Output as _hookvisor_v1_BeforeToolCallRequest__Output } from './hookvisor/v1/BeforeToolCallRequest';
import type { DescribeRequest as _hookvisor_v1_DescribeRequest, DescribeRequest__Output as _hookvisor_v1_DescribeRequest__Output } from './hookvisor/v1/DescribeRequest';
import type { HookRegistration as _hookvisor_v1_HookRegistration, HookRegistration__Output as _hookvisor_v1_HookRegistration__Output } from './hookvisor/v1/HookRegistration';
import type { HooksClient as _hookvisor_v1_HooksClient, HooksDefinition as _hookvisor_v1_HooksDefinition } from './hookvisor/v1/Hooks';
import type { HostReport as _hookvisor_v1_HostReport, HostReport__Output as _hookvisor_v1_HostReport__Output } from './hookvisor/v1/HostReport';
import type { HostReportReceipt as _hookvisor_v1_HostReportReceipt, HostReportReceipt__Output as _hookvisor_v1_HostReportReceipt__Output } from './hookvisor/v1/HostReportReceipt';
import type { PluginClient as _hookvisor_v1_PluginClient, PluginDefinition as _hookvisor_v1_PluginDefinition } from './hookvisor/v1/Plugin';
import type { PluginInfo as _hookvisor_v1_PluginInfo, PluginInfo__Output as _hookvisor_v1_PluginInfo__Output } from './hookvisor/v1/PluginInfo';
import type { PluginResult as _hookvisor_v1_PluginResult, PluginResult__Output as _hookvisor_v1_PluginResult__Output } from './hookvisor/v1/PluginResult';
import type { Requester as _hookvisor_v1_Requester, Requester__Output as _hookvisor_v1_Requester__Output } from './hookvisor/v1/Requester';
import type { SessionCreateRequest as _hookvisor_v1_SessionCreateRequest, SessionCreateRequest__Output as _hookvisor_v1_SessionCreateRequest__Output } from './hookvisor/v1/SessionCreateRequest';
import type { SessionCreatedEvent as _hookvisor_v1_SessionCreatedEvent, SessionCreatedEvent__Output as _hookvisor_v1_SessionCreatedEvent__Output } from './hookvisor/v1/SessionCreatedEvent';
import type { SessionCreatedNotice as _hookvisor_v1_SessionCreatedNotice, SessionCreatedNotice__Output as _hookvisor_v1_SessionCreatedNotice__Output } from './hookvisor/v1/SessionCreatedNotice';
import type { SessionCreatedReceipt as _hookvisor_v1_SessionCreatedReceipt, SessionCreatedReceipt__Output as _hookvisor_v1_SessionCreatedReceipt__Output } from './hookvisor/v1/SessionCreatedReceipt';
import type { SessionDecision as _hookvisor_v1_SessionDecision, SessionDecision__Output as _hookvisor_v1_SessionDecision__Output } from './hookvisor/v1/SessionDecision';
import type { SessionVerdict as _hookvisor_v1_SessionVerdict, SessionVerdict__Output as _hookvisor_v1_SessionVerdict__Output } from './hookvisor/v1/SessionVerdict';
import type { ToolCallContext as _hookvisor_v1_ToolCallContext, ToolCallContext__Output as _hookvisor_v1_ToolCallContext__Output } from './hookvisor/v1/ToolCallContext';
import type { ToolCallDecision as _hookvisor_v1_ToolCallDecision, ToolCallDecision__Output as _hookvisor_v1_ToolCallDecision__Output } from './hookvisor/v1/ToolCallDecision';
import type { ToolCallRequest as _hookvisor_v1_ToolCallRequest, ToolCallRequest__Output as _hookvisor_v1_ToolCallRequest__Output } from './hookvisor/v1/ToolCallRequest';
import type { ToolCallVerdict as _hookvisor_v1_ToolCallVerdict, ToolCallVerdict__Output as _hookvisor_v1_ToolCallVerdict__Output } from './hookvisor/v1/ToolCallVerdict';
import type { ToolCount as _hookvisor_v1_ToolCount, ToolCount__Output as _hookvisor_v1_ToolCount__Output } from './hookvisor/v1/ToolCount';

type SubtypeConstructor<Constructor extends new (...args: any) => any, Subtype> = {
  new(...args: ConstructorParameters<Constructor>): Subtype;
};

export interface ProtoGrpcType {
  hookvisor: {
    v1: {
      Ack: MessageTypeDefinition<_hookvisor_v1_Ack, _hookvisor_v1_Ack__Output>
      ApprovalDecision: EnumTypeDefinition
      ApprovalRequest: MessageTypeDefinition<_hookvisor_v1_ApprovalRequest, _hookvisor_v1_ApprovalRequest__Output>
      BeforeSessionCreateRequest: MessageTypeDefinition<_hookvisor_v1_BeforeSessionCreateRequest, _hookvisor_v1_BeforeSessionCreateRequest__Output>
      BeforeToolCallRequest: MessageTypeDefinition<_hookvisor_v1_BeforeToolCallRequest, _hookvisor_v1_BeforeToolCallRequest__Output>
      BlockKind: EnumTypeDefinition
      DescribeRequest: MessageTypeDefinition<_hookvisor_v1_DescribeRequest, _hookvisor_v1_DescribeRequest__Output>
      Failure: EnumTypeDefinition
      Hook: EnumTypeDefinition
      HookRegistration: MessageTypeDefinition<_hookvisor_v1_HookRegistration, _hookvisor_v1_HookRegistration__Output>
      Hooks: SubtypeConstructor<typeof grpc.Client, _hookvisor_v1_HooksClient> & { service: _hookvisor_v1_HooksDefinition }
      HostReport: MessageTypeDefinition<_hookvisor_v1_HostReport, _hookvisor_v1_HostReport__Output>
      HostReportReceipt: MessageTypeDefinition<_hookvisor_v1_HostReportReceipt, _hookvisor_v1_HostReportReceipt__Output>
      Outcome: EnumTypeDefinition
      Plugin: SubtypeConstructor<typeof grpc.Client, _hookvisor_v1_PluginClient> & { service: _hookvisor_v1_PluginDefinition }
      PluginInfo: MessageTypeDefinition<_hookvisor_v1_PluginInfo, _hookvisor_v1_PluginInfo__Output>
      PluginResult: MessageTypeDefinition<_hookvisor_v1_PluginResult, _hookvisor_v1_PluginResult__Output>
      Requester: MessageTypeDefinition<_hookvisor_v1_Requester, _hookvisor_v1_Requester__Output>
      SessionCreateRequest: MessageTypeDefinition<_hookvisor_v1_SessionCreateRequest, _hookvisor_v1_SessionCreateRequest__Output>
      SessionCreatedEvent: MessageTypeDefinition<_hookvisor_v1_SessionCreatedEvent, _hookvisor_v1_SessionCreatedEvent__Output>
      SessionCreatedNotice: MessageTypeDefinition<_hookvisor_v1_SessionCreatedNotice, _hookvisor_v1_SessionCreatedNotice__Output>
      SessionCreatedReceipt: MessageTypeDefinition<_hookvisor_v1_SessionCreatedReceipt, _hookvisor_v1_SessionCreatedReceipt__Output>
      SessionDecision: MessageTypeDefinition<_hookvisor_v1_SessionDecision, _hookvisor_v1_SessionDecision__Output>
      SessionVerdict: MessageTypeDefinition<_hookvisor_v1_SessionVerdict, _hookvisor_v1_SessionVerdict__Output>
      Severity: EnumTypeDefinition
      Stage: EnumTypeDefinition
      ToolCallContext: MessageTypeDefinition<_hookvisor_v1_ToolCallContext, _hookvisor_v1_ToolCallContext__Output>
      ToolCallDecision: MessageTypeDefinition<_hookvisor_v1_ToolCallDecision, _hookvisor_v1_ToolCallDecision__Output>
      ToolCallRequest: MessageTypeDefinition<_hookvisor_v1_ToolCallRequest, _hookvisor_v1_ToolCallRequest__Output>
      ToolCallVerdict: MessageTypeDefinition<_hookvisor_v1_ToolCallVerdict, _hookvisor_v1_ToolCallVerdict__Output>
      ToolCount: MessageTypeDefinition<_hookvisor_v1_ToolCount, _hookvisor_v1_ToolCount__Output>
    }
  }
}

