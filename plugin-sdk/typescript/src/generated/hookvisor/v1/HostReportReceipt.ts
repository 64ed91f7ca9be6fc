// Original file: proto/hookvisor/v1/hookvisor.proto


export interface HostReportReceipt {
  /**
   * hookvisor's version, and its plugins: how many are configured and how many are ready.
   */
  'version'?: (string);
  'plugins'?: (number);
  'plugins_ready'?: (number);
}

export interface HostReportReceipt__Output {
  /**
   * hookvisor's version, and its plugins: how many are configured and how many are ready.
   */
  'version': (string);
  'plugins': (number);
  'plugins_ready': (number);
}
