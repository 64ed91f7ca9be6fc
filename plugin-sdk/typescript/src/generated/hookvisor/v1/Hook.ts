// Original file: proto/hookvisor/v1/hookvisor.proto

/**
 * The event a question is about.
 */
export const Hook = {
  HOOK_UNSPECIFIED: 'HOOK_UNSPECIFIED',
  /**
   * May this tool call run, with these params? Blocking.
   */
  HOOK_BEFORE_TOOL_CALL: 'HOOK_BEFORE_TOOL_CALL',
  /**
   * May this session be created? Blocking; plugins may patch their metadata namespace.
   */
  HOOK_BEFORE_SESSION_CREATE: 'HOOK_BEFORE_SESSION_CREATE',
  /**
   * A session was created. Observation only: never blocks anything.
   */
  HOOK_SESSION_CREATED: 'HOOK_SESSION_CREATED',
} as const;

/**
 * The event a question is about.
 */
export type Hook =
  | 'HOOK_UNSPECIFIED'
  | 0
  /**
   * May this tool call run, with these params? Blocking.
   */
  | 'HOOK_BEFORE_TOOL_CALL'
  | 1
  /**
   * May this session be created? Blocking; plugins may patch their metadata namespace.
   */
  | 'HOOK_BEFORE_SESSION_CREATE'
  | 2
  /**
   * A session was created. Observation only: never blocks anything.
   */
  | 'HOOK_SESSION_CREATED'
  | 3

/**
 * The event a question is about.
 */
export type Hook__Output = typeof Hook[keyof typeof Hook]
