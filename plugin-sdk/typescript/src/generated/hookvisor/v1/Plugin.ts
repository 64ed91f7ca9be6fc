// Original file: proto/hookvisor/v1/hookvisor.proto

import type * as grpc from '@grpc/grpc-js'
import type { MethodDefinition } from '@grpc/proto-loader'
import type { Ack as _hookvisor_v1_Ack, Ack__Output as _hookvisor_v1_Ack__Output } from '../../hookvisor/v1/Ack';
import type { BeforeSessionCreateRequest as _hookvisor_v1_BeforeSessionCreateRequest, BeforeSessionCreateRequest__Output as _hookvisor_v1_BeforeSessionCreateRequest__Output } from '../../hookvisor/v1/BeforeSessionCreateRequest';
import type { BeforeToolCallRequest as _hookvisor_v1_BeforeToolCallRequest, BeforeToolCallRequest__Output as _hookvisor_v1_BeforeToolCallRequest__Output } from '../../hookvisor/v1/BeforeToolCallRequest';
import type { DescribeRequest as _hookvisor_v1_DescribeRequest, DescribeRequest__Output as _hookvisor_v1_DescribeRequest__Output } from '../../hookvisor/v1/DescribeRequest';
import type { PluginInfo as _hookvisor_v1_PluginInfo, PluginInfo__Output as _hookvisor_v1_PluginInfo__Output } from '../../hookvisor/v1/PluginInfo';
import type { SessionCreatedEvent as _hookvisor_v1_SessionCreatedEvent, SessionCreatedEvent__Output as _hookvisor_v1_SessionCreatedEvent__Output } from '../../hookvisor/v1/SessionCreatedEvent';
import type { SessionDecision as _hookvisor_v1_SessionDecision, SessionDecision__Output as _hookvisor_v1_SessionDecision__Output } from '../../hookvisor/v1/SessionDecision';
import type { ToolCallDecision as _hookvisor_v1_ToolCallDecision, ToolCallDecision__Output as _hookvisor_v1_ToolCallDecision__Output } from '../../hookvisor/v1/ToolCallDecision';

export interface PluginClient extends grpc.Client {
  BeforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  BeforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  beforeSessionCreate(argument: _hookvisor_v1_BeforeSessionCreateRequest, callback: grpc.requestCallback<_hookvisor_v1_SessionDecision__Output>): grpc.ClientUnaryCall;
  
  BeforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  BeforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  beforeToolCall(argument: _hookvisor_v1_BeforeToolCallRequest, callback: grpc.requestCallback<_hookvisor_v1_ToolCallDecision__Output>): grpc.ClientUnaryCall;
  
  /**
   * Who the plugin is and which hooks it serves. Called once at start; must answer
   * protocol_version 1.
   */
  Describe(argument: _hookvisor_v1_DescribeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  Describe(argument: _hookvisor_v1_DescribeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  Describe(argument: _hookvisor_v1_DescribeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  Describe(argument: _hookvisor_v1_DescribeRequest, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  /**
   * Who the plugin is and which hooks it serves. Called once at start; must answer
   * protocol_version 1.
   */
  describe(argument: _hookvisor_v1_DescribeRequest, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  describe(argument: _hookvisor_v1_DescribeRequest, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  describe(argument: _hookvisor_v1_DescribeRequest, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  describe(argument: _hookvisor_v1_DescribeRequest, callback: grpc.requestCallback<_hookvisor_v1_PluginInfo__Output>): grpc.ClientUnaryCall;
  
  SessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  SessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, metadata: grpc.Metadata, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, metadata: grpc.Metadata, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, options: grpc.CallOptions, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  sessionCreated(argument: _hookvisor_v1_SessionCreatedEvent, callback: grpc.requestCallback<_hookvisor_v1_Ack__Output>): grpc.ClientUnaryCall;
  
}

export interface PluginHandlers extends grpc.UntypedServiceImplementation {
  BeforeSessionCreate: grpc.handleUnaryCall<_hookvisor_v1_BeforeSessionCreateRequest__Output, _hookvisor_v1_SessionDecision>;
  
  BeforeToolCall: grpc.handleUnaryCall<_hookvisor_v1_BeforeToolCallRequest__Output, _hookvisor_v1_ToolCallDecision>;
  
  /**
   * Who the plugin is and which hooks it serves. Called once at start; must answer
   * protocol_version 1.
   */
  Describe: grpc.handleUnaryCall<_hookvisor_v1_DescribeRequest__Output, _hookvisor_v1_PluginInfo>;
  
  SessionCreated: grpc.handleUnaryCall<_hookvisor_v1_SessionCreatedEvent__Output, _hookvisor_v1_Ack>;
  
}

export interface PluginDefinition extends grpc.ServiceDefinition {
  BeforeSessionCreate: MethodDefinition<_hookvisor_v1_BeforeSessionCreateRequest, _hookvisor_v1_SessionDecision, _hookvisor_v1_BeforeSessionCreateRequest__Output, _hookvisor_v1_SessionDecision__Output>
  BeforeToolCall: MethodDefinition<_hookvisor_v1_BeforeToolCallRequest, _hookvisor_v1_ToolCallDecision, _hookvisor_v1_BeforeToolCallRequest__Output, _hookvisor_v1_ToolCallDecision__Output>
  Describe: MethodDefinition<_hookvisor_v1_DescribeRequest, _hookvisor_v1_PluginInfo, _hookvisor_v1_DescribeRequest__Output, _hookvisor_v1_PluginInfo__Output>
  SessionCreated: MethodDefinition<_hookvisor_v1_SessionCreatedEvent, _hookvisor_v1_Ack, _hookvisor_v1_SessionCreatedEvent__Output, _hookvisor_v1_Ack__Output>
}
