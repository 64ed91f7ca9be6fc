// Original file: proto/hookvisor/v1/hookvisor.proto

import type { ToolCount as _hookvisor_v1_ToolCount, ToolCount__Output as _hookvisor_v1_ToolCount__Output } from '../../hookvisor/v1/ToolCount';

/**
 * Added (contract §4.5): what a host reports about itself.
 */
export interface HostReport {
  /**
   * The host's name, stable across its restarts (e.g. the machine's name): 1..128 bytes, no
   * control characters. Reports with the same name are one host.
   */
  'host'?: (string);
  /**
   * What kind of host it is ("openclaw"), its version, the id its adapter registered the
   * policy under, and the adapter's version: each at most 128 bytes, no control characters.
   */
  'kind'?: (string);
  'version'?: (string);
  'policy_id'?: (string);
  'adapter_version'?: (string);
  /**
   * The next report comes within this many milliseconds (at most 3600000); 0: no other report
   * is coming from this process (a short-lived one). A host whose report is over three intervals
   * late is silent.
   */
  'interval_ms'?: (number);
  /**
   * Per tool, counted by this process since it started: how often it asked hookvisor, and how
   * often the tool ran (OpenClaw's after_tool_call). At most 256 tools, no name twice.
   */
  'tools'?: (_hookvisor_v1_ToolCount)[];
  /**
   * The last report: the host is stopping on purpose (it is not silent after this).
   */
  'stopping'?: (boolean);
}

/**
 * Added (contract §4.5): what a host reports about itself.
 */
export interface HostReport__Output {
  /**
   * The host's name, stable across its restarts (e.g. the machine's name): 1..128 bytes, no
   * control characters. Reports with the same name are one host.
   */
  'host': (string);
  /**
   * What kind of host it is ("openclaw"), its version, the id its adapter registered the
   * policy under, and the adapter's version: each at most 128 bytes, no control characters.
   */
  'kind': (string);
  'version': (string);
  'policy_id': (string);
  'adapter_version': (string);
  /**
   * The next report comes within this many milliseconds (at most 3600000); 0: no other report
   * is coming from this process (a short-lived one). A host whose report is over three intervals
   * late is silent.
   */
  'interval_ms': (number);
  /**
   * Per tool, counted by this process since it started: how often it asked hookvisor, and how
   * often the tool ran (OpenClaw's after_tool_call). At most 256 tools, no name twice.
   */
  'tools': (_hookvisor_v1_ToolCount__Output)[];
  /**
   * The last report: the host is stopping on purpose (it is not silent after this).
   */
  'stopping': (boolean);
}
