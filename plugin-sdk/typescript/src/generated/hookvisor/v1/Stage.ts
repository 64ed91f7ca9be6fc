// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * Which stage a registration runs in. Unspecified means hook.
 */
export const Stage = {
  STAGE_UNSPECIFIED: 'STAGE_UNSPECIFIED',
  /**
   * Trusted policies: run first, in order, params chained. Accepted only from plugins the
   * operator configured `trusted = true`.
   */
  STAGE_POLICY: 'STAGE_POLICY',
  /**
   * Ordinary hooks: run concurrently, merged in priority order.
   */
  STAGE_HOOK: 'STAGE_HOOK',
} as const;

/**
 * Which stage a registration runs in. Unspecified means hook.
 */
export type Stage =
  | 'STAGE_UNSPECIFIED'
  | 0
  /**
   * Trusted policies: run first, in order, params chained. Accepted only from plugins the
   * operator configured `trusted = true`.
   */
  | 'STAGE_POLICY'
  | 1
  /**
   * Ordinary hooks: run concurrently, merged in priority order.
   */
  | 'STAGE_HOOK'
  | 2

/**
 * Which stage a registration runs in. Unspecified means hook.
 */
export type Stage__Output = typeof Stage[keyof typeof Stage]
