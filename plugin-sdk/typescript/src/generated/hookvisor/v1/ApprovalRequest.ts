// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Severity as _hookvisor_v1_Severity, Severity__Output as _hookvisor_v1_Severity__Output } from '../../hookvisor/v1/Severity';
import type { ApprovalDecision as _hookvisor_v1_ApprovalDecision, ApprovalDecision__Output as _hookvisor_v1_ApprovalDecision__Output } from '../../hookvisor/v1/ApprovalDecision';

/**
 * A request that a human approve the call before it runs.
 */
export interface ApprovalRequest {
  /**
   * 1..80 characters.
   */
  'title'?: (string);
  /**
   * At most 512 characters.
   */
  'description'?: (string);
  /**
   * Unspecified is reported as SEVERITY_WARNING.
   */
  'severity'?: (_hookvisor_v1_Severity);
  /**
   * How long the host waits for a human: 1..600000 ms; 0 means 120000.
   */
  'timeout_ms'?: (number);
  /**
   * Empty means all three decisions.
   */
  'allowed_decisions'?: (_hookvisor_v1_ApprovalDecision)[];
}

/**
 * A request that a human approve the call before it runs.
 */
export interface ApprovalRequest__Output {
  /**
   * 1..80 characters.
   */
  'title': (string);
  /**
   * At most 512 characters.
   */
  'description': (string);
  /**
   * Unspecified is reported as SEVERITY_WARNING.
   */
  'severity': (_hookvisor_v1_Severity__Output);
  /**
   * How long the host waits for a human: 1..600000 ms; 0 means 120000.
   */
  'timeout_ms': (number);
  /**
   * Empty means all three decisions.
   */
  'allowed_decisions': (_hookvisor_v1_ApprovalDecision__Output)[];
}
