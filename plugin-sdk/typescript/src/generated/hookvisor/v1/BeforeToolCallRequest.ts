// Original file: proto/hookvisor/v1/hookvisor.proto

import type { ToolCallContext as _hookvisor_v1_ToolCallContext, ToolCallContext__Output as _hookvisor_v1_ToolCallContext__Output } from '../../hookvisor/v1/ToolCallContext';

export interface BeforeToolCallRequest {
  'tool_name'?: (string);
  /**
   * The call's params, a JSON object (for policies: as left by the previous policy).
   */
  'params_json'?: (string);
  'context'?: (_hookvisor_v1_ToolCallContext | null);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json'?: (string);
  /**
   * What the supervisor will wait, in ms.
   */
  'deadline_ms'?: (number);
}

export interface BeforeToolCallRequest__Output {
  'tool_name': (string);
  /**
   * The call's params, a JSON object (for policies: as left by the previous policy).
   */
  'params_json': (string);
  'context': (_hookvisor_v1_ToolCallContext__Output | null);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json': (string);
  /**
   * What the supervisor will wait, in ms.
   */
  'deadline_ms': (number);
}
