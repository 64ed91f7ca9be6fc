// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Requester as _hookvisor_v1_Requester, Requester__Output as _hookvisor_v1_Requester__Output } from '../../hookvisor/v1/Requester';

export interface SessionCreateRequest {
  'session_key'?: (string);
  'agent_id'?: (string);
  'label'?: (string);
  'model'?: (string);
  'parent_session_key'?: (string);
  'workspace_dir'?: (string);
  'requester'?: (_hookvisor_v1_Requester | null);
  /**
   * Namespace (plugin name) -> JSON value.
   */
  'session_metadata'?: ({[key: string]: string});
}

export interface SessionCreateRequest__Output {
  'session_key': (string);
  'agent_id': (string);
  'label': (string);
  'model': (string);
  'parent_session_key': (string);
  'workspace_dir': (string);
  'requester': (_hookvisor_v1_Requester__Output | null);
  /**
   * Namespace (plugin name) -> JSON value.
   */
  'session_metadata': ({[key: string]: string});
}
