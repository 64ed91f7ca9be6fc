// Original file: proto/hookvisor/v1/hookvisor.proto


export interface SessionDecision {
  'block'?: (boolean);
  'block_reason'?: (string);
  /**
   * A JSON value that replaces this plugin's own metadata namespace.
   */
  'metadata_json'?: (string);
  '_metadata_json'?: "metadata_json";
}

export interface SessionDecision__Output {
  'block': (boolean);
  'block_reason': (string);
  /**
   * A JSON value that replaces this plugin's own metadata namespace.
   */
  'metadata_json'?: (string);
  '_metadata_json'?: "metadata_json";
}
