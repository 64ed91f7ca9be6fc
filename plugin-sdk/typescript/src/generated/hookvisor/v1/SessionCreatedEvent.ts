// Original file: proto/hookvisor/v1/hookvisor.proto


export interface SessionCreatedEvent {
  'session_key'?: (string);
  'session_id'?: (string);
  'agent_id'?: (string);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json'?: (string);
}

export interface SessionCreatedEvent__Output {
  'session_key': (string);
  'session_id': (string);
  'agent_id': (string);
  /**
   * This plugin's namespace of the session metadata only; "" when absent.
   */
  'session_metadata_json': (string);
}
