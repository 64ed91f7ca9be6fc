// Original file: proto/hookvisor/v1/hookvisor.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { HostReport as _hookvisor_v1_HostReport, HostReport__Output as _hookvisor_v1_HostReport__Output } from '../../hookvisor/v1/HostReport';
import type { HostReportReceipt as _hookvisor_v1_HostReportReceipt, HostReportReceipt__Output as _hookvisor_v1_HostReportReceipt__Output } from '../../hookvisor/v1/HostReportReceipt';
import type { SessionCreateRequest as _hookvisor_v1_SessionCreateRequest, SessionCreateRequest__Output as _hookvisor_v1_SessionCreateRequest__Output } from '../../hookvisor/v1/SessionCreateRequest';
import type { SessionCreatedNotice as _hookvisor_v1_SessionCreatedNotice, SessionCreatedNotice__Output as _hookvisor_v1_SessionCreatedNotice__Output } from '../../hookvisor/v1/SessionCreatedNotice';
import type { SessionCreatedReceipt as _hookvisor_v1_SessionCreatedReceipt, SessionCreatedReceipt__Output as _hookvisor_v1_SessionCreatedReceipt__Output } from '../../hookvisor/v1/SessionCreatedReceipt';
import type { SessionVerdict as _hookvisor_v1_SessionVerdict, SessionVerdict__Output as _hookvisor_v1_SessionVerdict__Output } from '../../hookvisor/v1/SessionVerdict';
import type { ToolCallRequest as _hookvisor_v1_ToolCallRequest, ToolCallRequest__Output as _hookvisor_v1_ToolCallRequest__Output } from '../../hookvisor/v1/ToolCallRequest';
import type { ToolCallVerdict as _hookvisor_v1_ToolCallVerdict, ToolCallVerdict__Output as _hookvisor_v1_ToolCallVerdict__Output } from '../../hookvisor/v1/ToolCallVerdict';

export interface HooksClient extends grpc.Client {
  BeforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_SessionCreateRequest, callback: grpc.requestCallback<_hookvisor_v1_SessionVerdict__Output>): grpc.ClientUnaryCall;
  
  BeforeToolCall(argument: _hookvisor_v1_ToolCallRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_ToolCallRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_ToolCallRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_ToolCallRequest, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_ToolCallRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_ToolCallRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_ToolCallRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_ToolCallRequest, callback: grpc.requestCallback<_hookvisor_v1_ToolCallVerdict__Output>): grpc.ClientUnaryCall;
  
  /**
   * Added: the host says who it is (a hello when its adapter loads) and keeps saying it (a
   * heartbeat every `interval_ms`), with how often each tool was asked about and how often it
   * ran. The supervisor keeps it for `Admin/ListHosts` and the metrics (contract §4.5).
   */
  ReportHost(argument: _hookvisor_v1_HostReport, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  ReportHost(argument: _hookvisor_v1_HostReport, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  ReportHost(argument: _hookvisor_v1_HostReport, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  ReportHost(argument: _hookvisor_v1_HostReport, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  /**
   * Added: the host says who it is (a hello when its adapter loads) and keeps saying it (a
   * heartbeat every `interval_ms`), with how often each tool was asked about and how often it
   * ran. The supervisor keeps it for `Admin/ListHosts` and the metrics (contract §4.5).
   */
  reportHost(argument: _hookvisor_v1_HostReport, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  reportHost(argument: _hookvisor_v1_HostReport, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  reportHost(argument: _hookvisor_v1_HostReport, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  reportHost(argument: _hookvisor_v1_HostReport, callback: grpc.requestCallback<_hookvisor_v1_HostReportReceipt__Output>): grpc.ClientUnaryCall;
  
  SessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedNotice, callback: grpc.requestCallback<_hookvisor_v1_SessionCreatedReceipt__Output>): grpc.ClientUnaryCall;
  
}

export interface HooksHandlers extends grpc.UntypedServiceImplementation {
  BeforeSessionCreate: grpc.handleUnaryCall<_hookvisor_v1_SessionCreateRequest__Output, _hookvisor_v1_SessionVerdict>;
  
  BeforeToolCall: grpc.handleUnaryCall<_hookvisor_v1_ToolCallRequest__Output, _hookvisor_v1_ToolCallVerdict>;
  
  /**
   * Added: the host says who it is (a hello when its adapter loads) and keeps saying it (a
   * heartbeat every `interval_ms`), with how often each tool was asked about and how often it
   * ran. The supervisor keeps it for `Admin/ListHosts` and the metrics (contract §4.5).
   */
  ReportHost: grpc.handleUnaryCall<_hookvisor_v1_HostReport__Output, _hookvisor_v1_HostReportReceipt>;
  
  SessionCreated: grpc.handleUnaryCall<_hookvisor_v1_SessionCreatedNotice__Output, _hookvisor_v1_SessionCreatedReceipt>;
  
}

export interface HooksDefinition extends grpc.ServiceDefinition {
  BeforeSessionCreate: MethodDefinition<_hookvisor_v1_SessionCreateRequest, _hookvisor_v1_SessionVerdict, _hookvisor_v1_SessionCreateRequest__Output, _hookvisor_v1_SessionVerdict__Output>
  BeforeToolCall: MethodDefinition<_hookvisor_v1_ToolCallRequest, _hookvisor_v1_ToolCallVerdict, _hookvisor_v1_ToolCallRequest__Output, _hookvisor_v1_ToolCallVerdict__Output>
  ReportHost: MethodDefinition<_hookvisor_v1_HostReport, _hookvisor_v1_HostReportReceipt, _hookvisor_v1_HostReport__Output, _hookvisor_v1_HostReportReceipt__Output>
  SessionCreated: MethodDefinition<_hookvisor_v1_SessionCreatedNotice, _hookvisor_v1_SessionCreatedReceipt, _hookvisor_v1_SessionCreatedNotice__Output, _hookvisor_v1_SessionCreatedReceipt__Output>
}
