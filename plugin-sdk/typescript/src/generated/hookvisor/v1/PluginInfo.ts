// Original file: proto/hookvisor/v1/hookvisor.proto

import type { HookRegistration as _hookvisor_v1_HookRegistration, HookRegistration__Output as _hookvisor_v1_HookRegistration__Output } from '../../hookvisor/v1/HookRegistration';

export interface PluginInfo {
  /**
   * The plugin's own name for itself (informational; the configured name is authoritative).
   */
  'name'?: (string);
  'version'?: (string);
  /**
   * Must be 1.
   */
  'protocol_version'?: (number);
  /**
   * One per hook the plugin serves.
   */
  'hooks'?: (_hookvisor_v1_HookRegistration)[];
}

export interface PluginInfo__Output {
  /**
   * The plugin's own name for itself (informational; the configured name is authoritative).
   */
  'name': (string);
  'version': (string);
  /**
   * Must be 1.
   */
  'protocol_version': (number);
  /**
   * One per hook the plugin serves.
   */
  'hooks': (_hookvisor_v1_HookRegistration__Output)[];
}
