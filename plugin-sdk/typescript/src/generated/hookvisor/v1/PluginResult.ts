// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Stage as _hookvisor_v1_Stage, Stage__Output as _hookvisor_v1_Stage__Output } from '../../hookvisor/v1/Stage';
import type { Outcome as _hookvisor_v1_Outcome, Outcome__Output as _hookvisor_v1_Outcome__Output } from '../../hookvisor/v1/Outcome';
import type { Failure as _hookvisor_v1_Failure, Failure__Output as _hookvisor_v1_Failure__Output } from '../../hookvisor/v1/Failure';
import type { Long } from '@grpc/proto-loader';

/**
 * One plugin's part in a verdict.
 */
export interface PluginResult {
  /**
   * The plugin's configured name.
   */
  'plugin'?: (string);
  'stage'?: (_hookvisor_v1_Stage);
  /**
   * What this plugin said (ALLOW also for "no opinion"; UNSPECIFIED when its call was cancelled
   * because the verdict was already decided).
   */
  'outcome'?: (_hookvisor_v1_Outcome);
  /**
   * How it failed, if it did.
   */
  'failure'?: (_hookvisor_v1_Failure);
  /**
   * Human-readable: the failure, a skip, an ignored rewrite, a cancellation.
   */
  'detail'?: (string);
  /**
   * Time from sending the call to its end, in microseconds.
   */
  'latency_us'?: (number | string | Long);
  /**
   * Whether this plugin's rewrite was applied.
   */
  'params_changed'?: (boolean);
  /**
   * Added: true for policy calls made during revalidation (contract §4.3).
   */
  'revalidation'?: (boolean);
  /**
   * Added: true for a shadow plugin's answer (contract §4.4): recorded, never merged. In a
   * verdict's trace only when it arrived before the verdict was decided.
   */
  'shadow'?: (boolean);
}

/**
 * One plugin's part in a verdict.
 */
export interface PluginResult__Output {
  /**
   * The plugin's configured name.
   */
  'plugin': (string);
  'stage': (_hookvisor_v1_Stage__Output);
  /**
   * What this plugin said (ALLOW also for "no opinion"; UNSPECIFIED when its call was cancelled
   * because the verdict was already decided).
   */
  'outcome': (_hookvisor_v1_Outcome__Output);
  /**
   * How it failed, if it did.
   */
  'failure': (_hookvisor_v1_Failure__Output);
  /**
   * Human-readable: the failure, a skip, an ignored rewrite, a cancellation.
   */
  'detail': (string);
  /**
   * Time from sending the call to its end, in microseconds.
   */
  'latency_us': (string);
  /**
   * Whether this plugin's rewrite was applied.
   */
  'params_changed': (boolean);
  /**
   * Added: true for policy calls made during revalidation (contract §4.3).
   */
  'revalidation': (boolean);
  /**
   * Added: true for a shadow plugin's answer (contract §4.4): recorded, never merged. In a
   * verdict's trace only when it arrived before the verdict was decided.
   */
  'shadow': (boolean);
}
