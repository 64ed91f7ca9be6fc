// Original file: proto/hookvisor/v1/hookvisor.proto

import type { ApprovalRequest as _hookvisor_v1_ApprovalRequest, ApprovalRequest__Output as _hookvisor_v1_ApprovalRequest__Output } from '../../hookvisor/v1/ApprovalRequest';

/**
 * All fields unset means "no opinion".
 */
export interface ToolCallDecision {
  /**
   * A rewrite of the params: a whole JSON object.
   */
  'params_json'?: (string);
  /**
   * Stop the call.
   */
  'block'?: (boolean);
  /**
   * Shown to the host when block is set.
   */
  'block_reason'?: (string);
  /**
   * Ask a human first.
   */
  'require_approval'?: (_hookvisor_v1_ApprovalRequest | null);
  '_params_json'?: "params_json";
}

/**
 * All fields unset means "no opinion".
 */
export interface ToolCallDecision__Output {
  /**
   * A rewrite of the params: a whole JSON object.
   */
  'params_json'?: (string);
  /**
   * Stop the call.
   */
  'block': (boolean);
  /**
   * Shown to the host when block is set.
   */
  'block_reason': (string);
  /**
   * Ask a human first.
   */
  'require_approval': (_hookvisor_v1_ApprovalRequest__Output | null);
  '_params_json'?: "params_json";
}
