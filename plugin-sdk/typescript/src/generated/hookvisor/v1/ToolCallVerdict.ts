// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Outcome as _hookvisor_v1_Outcome, Outcome__Output as _hookvisor_v1_Outcome__Output } from '../../hookvisor/v1/Outcome';
import type { BlockKind as _hookvisor_v1_BlockKind, BlockKind__Output as _hookvisor_v1_BlockKind__Output } from '../../hookvisor/v1/BlockKind';
import type { ApprovalRequest as _hookvisor_v1_ApprovalRequest, ApprovalRequest__Output as _hookvisor_v1_ApprovalRequest__Output } from '../../hookvisor/v1/ApprovalRequest';
import type { PluginResult as _hookvisor_v1_PluginResult, PluginResult__Output as _hookvisor_v1_PluginResult__Output } from '../../hookvisor/v1/PluginResult';

export interface ToolCallVerdict {
  'outcome'?: (_hookvisor_v1_Outcome);
  /**
   * The final params, always set.
   */
  'params_json'?: (string);
  /**
   * Whether the final params differ from the request's.
   */
  'params_changed'?: (boolean);
  /**
   * Set when outcome is BLOCK; names the plugin.
   */
  'block_reason'?: (string);
  'block_kind'?: (_hookvisor_v1_BlockKind);
  /**
   * The plugin whose answer or failure blocked.
   */
  'decided_by'?: (string);
  /**
   * The winning approval request, when outcome is REQUIRE_APPROVAL (kept for information on BLOCK).
   */
  'approval'?: (_hookvisor_v1_ApprovalRequest | null);
  /**
   * The configured name of the plugin that asked for approval, stamped by the supervisor.
   */
  'approval_plugin'?: (string);
  /**
   * Every plugin called, in merge order.
   */
  'trace'?: (_hookvisor_v1_PluginResult)[];
}

export interface ToolCallVerdict__Output {
  'outcome': (_hookvisor_v1_Outcome__Output);
  /**
   * The final params, always set.
   */
  'params_json': (string);
  /**
   * Whether the final params differ from the request's.
   */
  'params_changed': (boolean);
  /**
   * Set when outcome is BLOCK; names the plugin.
   */
  'block_reason': (string);
  'block_kind': (_hookvisor_v1_BlockKind__Output);
  /**
   * The plugin whose answer or failure blocked.
   */
  'decided_by': (string);
  /**
   * The winning approval request, when outcome is REQUIRE_APPROVAL (kept for information on BLOCK).
   */
  'approval': (_hookvisor_v1_ApprovalRequest__Output | null);
  /**
   * The configured name of the plugin that asked for approval, stamped by the supervisor.
   */
  'approval_plugin': (string);
  /**
   * Every plugin called, in merge order.
   */
  'trace': (_hookvisor_v1_PluginResult__Output)[];
}
