// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * How a plugin failed to answer. Every failure is a deny unless the plugin is configured
 * `on_failure = "skip"` (non-trusted plugins only).
 */
export const Failure = {
  FAILURE_NONE: 'FAILURE_NONE',
  /**
   * No answer before the effective deadline.
   */
  FAILURE_TIMEOUT: 'FAILURE_TIMEOUT',
  /**
   * The process died or the connection broke during the call (reported at once).
   */
  FAILURE_CRASHED: 'FAILURE_CRASHED',
  /**
   * The plugin was not ready: starting, restarting, rejected, stopped, quarantined.
   */
  FAILURE_UNAVAILABLE: 'FAILURE_UNAVAILABLE',
  /**
   * The answer broke the contract: params not a JSON object, over a limit, bad approval fields...
   */
  FAILURE_INVALID_RESPONSE: 'FAILURE_INVALID_RESPONSE',
  /**
   * The plugin answered with a non-OK gRPC status.
   */
  FAILURE_ERROR: 'FAILURE_ERROR',
} as const;

/**
 * How a plugin failed to answer. Every failure is a deny unless the plugin is configured
 * `on_failure = "skip"` (non-trusted plugins only).
 */
export type Failure =
  | 'FAILURE_NONE'
  | 0
  /**
   * No answer before the effective deadline.
   */
  | 'FAILURE_TIMEOUT'
  | 1
  /**
   * The process died or the connection broke during the call (reported at once).
   */
  | 'FAILURE_CRASHED'
  | 2
  /**
   * The plugin was not ready: starting, restarting, rejected, stopped, quarantined.
   */
  | 'FAILURE_UNAVAILABLE'
  | 3
  /**
   * The answer broke the contract: params not a JSON object, over a limit, bad approval fields...
   */
  | 'FAILURE_INVALID_RESPONSE'
  | 4
  /**
   * The plugin answered with a non-OK gRPC status.
   */
  | 'FAILURE_ERROR'
  | 5

/**
 * How a plugin failed to answer. Every failure is a deny unless the plugin is configured
 * `on_failure = "skip"` (non-trusted plugins only).
 */
export type Failure__Output = typeof Failure[keyof typeof Failure]
