// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * The answers a human may give to an approval request.
 */
export const ApprovalDecision = {
  APPROVAL_DECISION_UNSPECIFIED: 'APPROVAL_DECISION_UNSPECIFIED',
  APPROVAL_DECISION_ALLOW_ONCE: 'APPROVAL_DECISION_ALLOW_ONCE',
  APPROVAL_DECISION_ALLOW_ALWAYS: 'APPROVAL_DECISION_ALLOW_ALWAYS',
  APPROVAL_DECISION_DENY: 'APPROVAL_DECISION_DENY',
} as const;

/**
 * The answers a human may give to an approval request.
 */
export type ApprovalDecision =
  | 'APPROVAL_DECISION_UNSPECIFIED'
  | 0
  | 'APPROVAL_DECISION_ALLOW_ONCE'
  | 1
  | 'APPROVAL_DECISION_ALLOW_ALWAYS'
  | 2
  | 'APPROVAL_DECISION_DENY'
  | 3

/**
 * The answers a human may give to an approval request.
 */
export type ApprovalDecision__Output = typeof ApprovalDecision[keyof typeof ApprovalDecision]
