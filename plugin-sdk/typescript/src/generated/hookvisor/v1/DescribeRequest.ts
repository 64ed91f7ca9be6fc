// Original file: proto/hookvisor/v1/hookvisor.proto


export interface DescribeRequest {
  /**
   * The protocol the supervisor speaks: 1.
   */
  'protocol_version'?: (number);
}

export interface DescribeRequest__Output {
  /**
   * The protocol the supervisor speaks: 1.
   */
  'protocol_version': (number);
}
