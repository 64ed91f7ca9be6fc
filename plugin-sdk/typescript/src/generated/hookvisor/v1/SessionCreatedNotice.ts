// Original file: proto/hookvisor/v1/hookvisor.proto


export interface SessionCreatedNotice {
  'session_key'?: (string);
  'session_id'?: (string);
  'agent_id'?: (string);
  'session_metadata'?: ({[key: string]: string});
}

export interface SessionCreatedNotice__Output {
  'session_key': (string);
  'session_id': (string);
  'agent_id': (string);
  'session_metadata': ({[key: string]: string});
}
