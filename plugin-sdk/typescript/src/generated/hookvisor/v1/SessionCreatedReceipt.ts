// Original file: proto/hookvisor/v1/hookvisor.proto

import type { PluginResult as _hookvisor_v1_PluginResult, PluginResult__Output as _hookvisor_v1_PluginResult__Output } from '../../hookvisor/v1/PluginResult';

export interface SessionCreatedReceipt {
  /**
   * One result per subscriber; never a block.
   */
  'trace'?: (_hookvisor_v1_PluginResult)[];
}

export interface SessionCreatedReceipt__Output {
  /**
   * One result per subscriber; never a block.
   */
  'trace': (_hookvisor_v1_PluginResult__Output)[];
}
