// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Outcome as _hookvisor_v1_Outcome, Outcome__Output as _hookvisor_v1_Outcome__Output } from '../../hookvisor/v1/Outcome';
import type { BlockKind as _hookvisor_v1_BlockKind, BlockKind__Output as _hookvisor_v1_BlockKind__Output } from '../../hookvisor/v1/BlockKind';
import type { PluginResult as _hookvisor_v1_PluginResult, PluginResult__Output as _hookvisor_v1_PluginResult__Output } from '../../hookvisor/v1/PluginResult';

export interface SessionVerdict {
  'outcome'?: (_hookvisor_v1_Outcome);
  'block_reason'?: (string);
  'block_kind'?: (_hookvisor_v1_BlockKind);
  'decided_by'?: (string);
  /**
   * The request's map with each plugin's patch applied to its own namespace.
   */
  'session_metadata'?: ({[key: string]: string});
  'trace'?: (_hookvisor_v1_PluginResult)[];
}

export interface SessionVerdict__Output {
  'outcome': (_hookvisor_v1_Outcome__Output);
  'block_reason': (string);
  'block_kind': (_hookvisor_v1_BlockKind__Output);
  'decided_by': (string);
  /**
   * The request's map with each plugin's patch applied to its own namespace.
   */
  'session_metadata': ({[key: string]: string});
  'trace': (_hookvisor_v1_PluginResult__Output)[];
}
