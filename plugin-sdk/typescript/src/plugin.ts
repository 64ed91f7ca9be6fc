// The interface a plugin implements: every hook is optional and defaults to "no opinion".

import type { SessionCreate, SessionCreated, ToolCall } from "./call";
import type { ToolCallDecision } from "./decision";
import type { Info } from "./info";
import type { SessionDecision } from "./session";

/** A value or a promise of it: handlers may be sync or async. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * A hookvisor plugin: says which hooks it serves and answers them.
 *
 * Implement only the hooks registered in `info()`; a missing one answers "no opinion". A handler
 * that throws (or rejects) answers the call with a non-OK gRPC status (see `PluginError`), which
 * the supervisor counts as a failure of this plugin: the call is blocked.
 *
 * `beforeToolCall` must return (or resolve to) an answer made by `allow`, `block`, `rewrite`,
 * `requireApproval` or `combine`, and `beforeSessionCreate` one made by `session.allow`,
 * `session.block` or `session.patch`. Anything else (`undefined` from a forgotten `return`,
 * `null`, `{}`, a misspelt `{ blocked: true }`...) is an invalid answer: the call gets `UNKNOWN`
 * naming what came back, which blocks it, never "no opinion".
 */
export interface Plugin {
  /** Name, version and hooks served; becomes `PluginInfo` in `Describe`. Called once at start. */
  info(): Info;
  /** May this tool call run, with these params? */
  beforeToolCall?(call: ToolCall): MaybePromise<ToolCallDecision>;
  /** May this session be created? */
  beforeSessionCreate?(session: SessionCreate): MaybePromise<SessionDecision>;
  /** A session was created (observation only; what it returns is ignored, never blocks). */
  sessionCreated?(event: SessionCreated): MaybePromise<void>;
}
