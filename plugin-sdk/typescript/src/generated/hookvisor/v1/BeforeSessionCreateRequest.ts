// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Requester as _hookvisor_v1_Requester, Requester__Output as _hookvisor_v1_Requester__Output } from '../../hookvisor/v1/Requester';

export interface BeforeSessionCreateRequest {
  'session_key'?: (string);
  'agent_id'?: (string);
  'label'?: (string);
  'model'?: (string);
  'parent_session_key'?: (string);
  'workspace_dir'?: (string);
  'requester'?: (_hookvisor_v1_Requester | null);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json'?: (string);
  /**
   * What the supervisor will wait, in ms.
   */
  'deadline_ms'?: (number);
}

export interface BeforeSessionCreateRequest__Output {
  'session_key': (string);
  'agent_id': (string);
  'label': (string);
  'model': (string);
  'parent_session_key': (string);
  'workspace_dir': (string);
  'requester': (_hookvisor_v1_Requester__Output | null);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json': (string);
  /**
   * What the supervisor will wait, in ms.
   */
  'deadline_ms': (number);
}
