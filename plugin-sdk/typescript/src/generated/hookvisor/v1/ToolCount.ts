// Original file: proto/hookvisor/v1/hookvisor.proto

import type { Long } from '@grpc/proto-loader';

export interface ToolCount {
  'tool'?: (string);
  'asked'?: (number | string | Long);
  'ran'?: (number | string | Long);
}

export interface ToolCount__Output {
  'tool': (string);
  'asked': (string);
  'ran': (string);
}
