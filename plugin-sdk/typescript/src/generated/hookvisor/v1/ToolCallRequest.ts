// Original file: proto/hookvisor/v1/hookvisor.proto

import type { ToolCallContext as _hookvisor_v1_ToolCallContext, ToolCallContext__Output as _hookvisor_v1_ToolCallContext__Output } from '../../hookvisor/v1/ToolCallContext';

export interface ToolCallRequest {
  'tool_name'?: (string);
  /**
   * A JSON object within the limits of contract §8, or the call is refused with INVALID_ARGUMENT.
   */
  'params_json'?: (string);
  'context'?: (_hookvisor_v1_ToolCallContext | null);
  /**
   * Namespace (plugin name) -> JSON value. Each plugin sees only its own namespace.
   */
  'session_metadata'?: ({[key: string]: string});
  /**
   * Added: this call only dispatches another tool call, which the host asks about on its own
   * (OpenClaw's tool search `tool_call`). It is decided like any call; the supervisor counts it
   * apart so that per-tool figures are not doubled (contract §4.5).
   */
  'dispatch'?: (boolean);
}

export interface ToolCallRequest__Output {
  'tool_name': (string);
  /**
   * A JSON object within the limits of contract §8, or the call is refused with INVALID_ARGUMENT.
   */
  'params_json': (string);
  'context': (_hookvisor_v1_ToolCallContext__Output | null);
  /**
   * Namespace (plugin name) -> JSON value. Each plugin sees only its own namespace.
   */
  'session_metadata': ({[key: string]: string});
  /**
   * Added: this call only dispatches another tool call, which the host asks about on its own
   * (OpenClaw's tool search `tool_call`). It is decided like any call; the supervisor counts it
   * apart so that per-tool figures are not doubled (contract §4.5).
   */
  'dispatch': (boolean);
}
