// Parsed views of the requests a plugin answers: JSON decoded, context flattened a little.
//
// JSON is decoded by `parseJson` (json.ts), which keeps every number exactly: a `number` when
// JavaScript writes that double as the same text, a `LosslessNumber` holding the text otherwise.
//
// A request whose JSON does not parse is the supervisor's bug; it is answered with
// INVALID_ARGUMENT naming the field (which the supervisor counts as a failure, so it blocks).

import { status } from "@grpc/grpc-js";

import type {
  BeforeSessionCreateRequest__Output,
  BeforeToolCallRequest__Output,
  Requester__Output,
  SessionCreatedEvent__Output,
  ToolCallContext__Output,
} from "./generated";
import { parseJson } from "./json";

/**
 * A JSON object, as `parseJson` returns one: like `JSON.parse`'s, except that a number whose text
 * a double would not give back is a `LosslessNumber` (see json.ts).
 */
export type JsonObject = Record<string, unknown>;

/**
 * An error that chooses the gRPC status it is answered with. Anything else a handler throws is
 * answered with `UNKNOWN`; either way the supervisor counts the call as failed, which blocks.
 */
export class PluginError extends Error {
  constructor(
    readonly code: status,
    message: string,
  ) {
    super(message);
    this.name = "PluginError";
  }
}

/**
 * A call's `AbortSignal`, or a function that gives it (the same one each time) when a handler
 * first asks: the server makes one only then, since most handlers never look and each costs the
 * call time.
 */
export type SignalSource = AbortSignal | (() => AbortSignal);

function signalOf(source: SignalSource): AbortSignal {
  return typeof source === "function" ? source() : source;
}

/** A `before_tool_call` question: which tool, with which params, in which context. */
export class ToolCall {
  /** The tool's name, e.g. `exec`. */
  readonly toolName: string;
  /**
   * The params, as left by the policy stage. A number is a `number` when JavaScript writes that
   * double as the very text received (`42`, `1.5`), else a `LosslessNumber` holding the text
   * (`12345678901234567890`, `1.50`, `-0.0`, `1e+3`), which `rewrite` sends back unchanged.
   */
  readonly params: JsonObject;
  /** Who is calling and where (agent, session, workspace directory…); `null` when not sent. */
  readonly context: ToolCallContext__Output | null;
  /** This plugin's namespace of the session metadata; `undefined` when the session has none. */
  readonly metadata: unknown;
  /** How long the supervisor will wait for the answer, in ms (0 if it did not say). */
  readonly deadlineMs: number;
  readonly #signal: SignalSource;
  /** The host call's request id (`x-hookvisor-request-id`), for matching logs; "" if none. */
  readonly requestId: string;
  /**
   * The call's W3C trace context (`traceparent` metadata, `00-<trace id>-<parent id>-<flags>`)
   * when the supervisor traces, to continue its trace; "" if none (or not of that shape).
   */
  readonly traceparent: string;

  constructor(
    request: BeforeToolCallRequest__Output,
    signal: SignalSource,
    requestId = "",
    traceparent = "",
  ) {
    this.toolName = request.tool_name;
    this.params = parseParams(request.params_json);
    this.context = request.context;
    this.metadata = parseMetadata(request.session_metadata_json);
    this.deadlineMs = request.deadline_ms;
    this.#signal = signal;
    this.requestId = requestId;
    this.traceparent = validTraceparent(traceparent);
  }

  /** Aborted when the supervisor cancels the call (deadline passed, or verdict already decided). */
  get signal(): AbortSignal {
    return signalOf(this.#signal);
  }

  /** The param `key` if it is a string, else `undefined`. */
  paramStr(key: string): string | undefined {
    const value = this.params[key];
    return typeof value === "string" ? value : undefined;
  }

  /** The context's `workspace_dir`, or `""` when there is none. */
  get workspaceDir(): string {
    return this.context?.workspace_dir ?? "";
  }

  /** The context's `agent_id`, or `""` when there is none. */
  get agentId(): string {
    return this.context?.agent_id ?? "";
  }
}

/** A `before_session_create` question: may this session be created? */
export class SessionCreate {
  readonly sessionKey: string;
  readonly agentId: string;
  /** The session's human label. */
  readonly label: string;
  readonly model: string;
  /** The parent session's key, `""` for a top-level session. */
  readonly parentSessionKey: string;
  readonly workspaceDir: string;
  /** Who asked for the session; `null` when not sent. */
  readonly requester: Requester__Output | null;
  /** This plugin's namespace of the session metadata; `undefined` when absent. */
  readonly metadata: unknown;
  /** How long the supervisor will wait for the answer, in ms (0 if it did not say). */
  readonly deadlineMs: number;
  readonly #signal: SignalSource;
  /** The host call's request id (`x-hookvisor-request-id`), for matching logs; "" if none. */
  readonly requestId: string;
  /**
   * The call's W3C trace context (`traceparent` metadata, `00-<trace id>-<parent id>-<flags>`)
   * when the supervisor traces, to continue its trace; "" if none (or not of that shape).
   */
  readonly traceparent: string;

  constructor(
    request: BeforeSessionCreateRequest__Output,
    signal: SignalSource,
    requestId = "",
    traceparent = "",
  ) {
    this.sessionKey = request.session_key;
    this.agentId = request.agent_id;
    this.label = request.label;
    this.model = request.model;
    this.parentSessionKey = request.parent_session_key;
    this.workspaceDir = request.workspace_dir;
    this.requester = request.requester;
    this.metadata = parseMetadata(request.session_metadata_json);
    this.deadlineMs = request.deadline_ms;
    this.#signal = signal;
    this.requestId = requestId;
    this.traceparent = validTraceparent(traceparent);
  }

  /** Aborted when the supervisor cancels the call. */
  get signal(): AbortSignal {
    return signalOf(this.#signal);
  }
}

/** A `session_created` observation. */
export class SessionCreated {
  readonly sessionKey: string;
  readonly sessionId: string;
  readonly agentId: string;
  /** This plugin's namespace of the session metadata; `undefined` when absent. */
  readonly metadata: unknown;
  readonly #signal: SignalSource;
  /** The host call's request id (`x-hookvisor-request-id`), for matching logs; "" if none. */
  readonly requestId: string;
  /**
   * The call's W3C trace context (`traceparent` metadata, `00-<trace id>-<parent id>-<flags>`)
   * when the supervisor traces, to continue its trace; "" if none (or not of that shape).
   */
  readonly traceparent: string;

  constructor(
    event: SessionCreatedEvent__Output,
    signal: SignalSource,
    requestId = "",
    traceparent = "",
  ) {
    this.sessionKey = event.session_key;
    this.sessionId = event.session_id;
    this.agentId = event.agent_id;
    this.metadata = parseMetadata(event.session_metadata_json);
    this.#signal = signal;
    this.requestId = requestId;
    this.traceparent = validTraceparent(traceparent);
  }

  /** Aborted when the supervisor stops waiting. */
  get signal(): AbortSignal {
    return signalOf(this.#signal);
  }
}

/** The W3C `traceparent` shape (version, trace id, parent id, flags), and nothing else. */
const TRACEPARENT = /^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;

/** `value` if it is a W3C `traceparent` (55 characters of lowercase hex and dashes), else "". */
function validTraceparent(value: string): string {
  return value.length <= 55 && TRACEPARENT.test(value) ? value : "";
}

function parseParams(json: string): JsonObject {
  let value: unknown;
  try {
    value = parseJson(json);
  } catch (err) {
    throw invalidArgument(`params_json is not valid JSON: ${messageOf(err)}`);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw invalidArgument(`params_json must be a JSON object, got ${jsonKind(value)}`);
  }
  return value as JsonObject;
}

/** `""` means no metadata; anything else must be one JSON value. */
function parseMetadata(json: string): unknown {
  if (json === "") {
    return undefined;
  }
  try {
    return parseJson(json);
  } catch (err) {
    throw invalidArgument(`session_metadata_json is not valid JSON: ${messageOf(err)}`);
  }
}

function invalidArgument(message: string): PluginError {
  return new PluginError(status.INVALID_ARGUMENT, message);
}

function jsonKind(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "string" ? "a string" : `a ${typeof value}`;
}

/** The message of anything thrown, on one line. */
export function messageOf(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s*\n\s*/g, " ");
}
