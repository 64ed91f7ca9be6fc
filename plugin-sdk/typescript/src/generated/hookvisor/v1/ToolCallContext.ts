// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Requester as _hookvisor_v1_Requester, Requester__Output as _hookvisor_v1_Requester__Output } from '../../hookvisor/v1/Requester';

/**
 * Where a tool call happens. Passed through to plugins unchanged.
 */
export interface ToolCallContext {
  'agent_id'?: (string);
  'session_key'?: (string);
  'session_id'?: (string);
  'run_id'?: (string);
  'tool_call_id'?: (string);
  /**
   * The agent's workspace on the host; path-checking plugins compare against it.
   */
  'workspace_dir'?: (string);
  /**
   * The workspace as seen inside a sandbox container, when there is one.
   */
  'container_workdir'?: (string);
  'channel_id'?: (string);
  'requester'?: (_hookvisor_v1_Requester | null);
}

/**
 * Where a tool call happens. Passed through to plugins unchanged.
 */
export interface ToolCallContext__Output {
  'agent_id': (string);
  'session_key': (string);
  'session_id': (string);
  'run_id': (string);
  'tool_call_id': (string);
  /**
   * The agent's workspace on the host; path-checking plugins compare against it.
   */
  'workspace_dir': (string);
  /**
   * The workspace as seen inside a sandbox container, when there is one.
   */
  'container_workdir': (string);
  'channel_id': (string);
  'requester': (_hookvisor_v1_Requester__Output | null);
}
