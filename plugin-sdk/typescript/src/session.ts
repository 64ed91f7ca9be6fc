// Answers to `before_session_create`: allow, block, or replace this plugin's metadata namespace.
//
// Like the tool call answers (decision.ts), each carries the SDK's mark, so a handler's answer
// that none of these made is refused as an invalid answer instead of read as "no opinion".

import { marked } from "./decision";
import type { DECISION } from "./decision";
import type { SessionDecision as SessionDecisionFields } from "./generated";
import { stringifyJson } from "./json";

/** An answer to `before_session_create`, made by `allow`, `block` or `patch`. */
export type SessionDecision = SessionDecisionFields & { readonly [DECISION]: "session" };

/** No opinion: the session may be created and this plugin's metadata is left as it is. */
export function allow(): SessionDecision {
  return marked({}, "session");
}

/** Refuse the session; `reason` is shown to the agent and the operator. */
export function block(reason: string): SessionDecision {
  return marked({ block: true, block_reason: reason }, "session");
}

/**
 * Replace this plugin's namespace of the session metadata with `value` (any JSON value; a
 * `LosslessNumber` is written as its text).
 */
export function patch(value: unknown): SessionDecision {
  const json = stringifyJson(value);
  if (json === undefined) {
    throw new TypeError("patch() needs a JSON value");
  }
  return marked({ metadata_json: json }, "session");
}
