// Answers to `before_session_create`: allow, block, or replace this plugin's metadata namespace.

import type { SessionDecision } from "./generated";

/** No opinion: the session may be created and this plugin's metadata is left as it is. */
export function allow(): SessionDecision {
  return {};
}

/** Refuse the session; `reason` is shown to the agent and the operator. */
export function block(reason: string): SessionDecision {
  return { block: true, block_reason: reason };
}

/** Replace this plugin's namespace of the session metadata with `value` (any JSON value). */
export function patch(value: unknown): SessionDecision {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new TypeError("patch() needs a JSON value");
  }
  return { metadata_json: json };
}
