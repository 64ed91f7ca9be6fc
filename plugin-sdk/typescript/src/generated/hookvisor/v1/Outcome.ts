// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * What a verdict (or one plugin's answer in a trace) says.
 */
export const Outcome = {
  OUTCOME_UNSPECIFIED: 'OUTCOME_UNSPECIFIED',
  OUTCOME_ALLOW: 'OUTCOME_ALLOW',
  OUTCOME_BLOCK: 'OUTCOME_BLOCK',
  OUTCOME_REQUIRE_APPROVAL: 'OUTCOME_REQUIRE_APPROVAL',
} as const;

/**
 * What a verdict (or one plugin's answer in a trace) says.
 */
export type Outcome =
  | 'OUTCOME_UNSPECIFIED'
  | 0
  | 'OUTCOME_ALLOW'
  | 1
  | 'OUTCOME_BLOCK'
  | 2
  | 'OUTCOME_REQUIRE_APPROVAL'
  | 3

/**
 * What a verdict (or one plugin's answer in a trace) says.
 */
export type Outcome__Output = typeof Outcome[keyof typeof Outcome]
