// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * How serious an approval request is, for the host's prompt.
 */
export const Severity = {
  SEVERITY_UNSPECIFIED: 'SEVERITY_UNSPECIFIED',
  SEVERITY_INFO: 'SEVERITY_INFO',
  SEVERITY_WARNING: 'SEVERITY_WARNING',
  SEVERITY_CRITICAL: 'SEVERITY_CRITICAL',
} as const;

/**
 * How serious an approval request is, for the host's prompt.
 */
export type Severity =
  | 'SEVERITY_UNSPECIFIED'
  | 0
  | 'SEVERITY_INFO'
  | 1
  | 'SEVERITY_WARNING'
  | 2
  | 'SEVERITY_CRITICAL'
  | 3

/**
 * How serious an approval request is, for the host's prompt.
 */
export type Severity__Output = typeof Severity[keyof typeof Severity]
