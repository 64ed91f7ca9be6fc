// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Hook as _hookvisor_v1_Hook, Hook__Output as _hookvisor_v1_Hook__Output } from '../../hookvisor/v1/Hook';
import type { Stage as _hookvisor_v1_Stage, Stage__Output as _hookvisor_v1_Stage__Output } from '../../hookvisor/v1/Stage';

export interface HookRegistration {
  'hook'?: (_hookvisor_v1_Hook);
  /**
   * STAGE_POLICY is accepted only from plugins configured `trusted = true`.
   */
  'stage'?: (_hookvisor_v1_Stage);
  /**
   * Higher runs first; the operator's configured priority overrides it.
   */
  'priority'?: (number);
  /**
   * Exact tool names this registration applies to; empty means every tool.
   */
  'tools'?: (string)[];
  /**
   * The plugin's own deadline in ms (0: none); the operator's configured timeout_ms overrides it.
   */
  'timeout_ms'?: (number);
}

export interface HookRegistration__Output {
  'hook': (_hookvisor_v1_Hook__Output);
  /**
   * STAGE_POLICY is accepted only from plugins configured `trusted = true`.
   */
  'stage': (_hookvisor_v1_Stage__Output);
  /**
   * Higher runs first; the operator's configured priority overrides it.
   */
  'priority': (number);
  /**
   * Exact tool names this registration applies to; empty means every tool.
   */
  'tools': (string)[];
  /**
   * The plugin's own deadline in ms (0: none); the operator's configured timeout_ms overrides it.
   */
  'timeout_ms': (number);
}
