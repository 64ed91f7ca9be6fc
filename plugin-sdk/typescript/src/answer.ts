// What a handler returned, checked before it becomes the answer on the wire.
//
// The supervisor reads an empty decision as "no opinion", so an answer the SDK cannot vouch for
// must never be sent as one: `undefined` (a forgotten `return`), `null`, a number, a string, an
// object that none of the SDK's helpers made (`{}`, a misspelt `{ blocked: true }`, a spread copy
// of an answer), a session answer to a tool call, or a helper's answer with a key or a type added
// that the contract does not have. Each is an `InvalidAnswer`, which the server answers with
// `UNKNOWN` naming what was wrong (a failure of the plugin, so the call is blocked) and logs on
// stderr.

import { kindOf } from "./decision";
import type { DecisionKind } from "./decision";
import type {
  ApprovalRequest,
  SessionDecision as SessionDecisionFields,
  ToolCallDecision as ToolCallDecisionFields,
} from "./generated";

/** A handler's return value that is not one of the SDK's answers. */
export class InvalidAnswer extends Error {
  constructor(message: string) {
    super(message);
    this.name = "InvalidAnswer";
  }
}

const TOOL_CALL_HELPERS = "return allow(), block(reason), rewrite(params) or requireApproval(...)";
const SESSION_HELPERS = "return session.allow(), session.block(reason) or session.patch(value)";

/** The `ToolCallDecision` message for what `beforeToolCall` returned; throws `InvalidAnswer`. */
export function toolCallAnswer(value: unknown): ToolCallDecisionFields {
  const check = new Check("beforeToolCall", TOOL_CALL_HELPERS);
  const decision = check.marked(value, "tool_call");
  return check.fields(decision, {
    block: check.field(decision, "block", "boolean"),
    block_reason: check.field(decision, "block_reason", "string"),
    params_json: check.field(decision, "params_json", "string"),
    require_approval: check.approval(decision),
  });
}

/** The `SessionDecision` message for what `beforeSessionCreate` returned; else `InvalidAnswer`. */
export function sessionAnswer(value: unknown): SessionDecisionFields {
  const check = new Check("beforeSessionCreate", SESSION_HELPERS);
  const decision = check.marked(value, "session");
  return check.fields(decision, {
    block: check.field(decision, "block", "boolean"),
    block_reason: check.field(decision, "block_reason", "string"),
    metadata_json: check.field(decision, "metadata_json", "string"),
  });
}

const APPROVAL_TYPES: Record<string, (value: unknown) => boolean> = {
  title: (value) => typeof value === "string",
  description: (value) => typeof value === "string",
  severity: (value) => typeof value === "string" || typeof value === "number",
  timeout_ms: (value) => typeof value === "number",
  allowed_decisions: (value) => Array.isArray(value),
};

/** The checks of one handler's answer; every refusal names the handler and its helpers. */
class Check {
  constructor(
    private readonly handler: string,
    private readonly helpers: string,
  ) {}

  /** `value` if it carries the mark of `kind`'s helpers. */
  marked(value: unknown, kind: DecisionKind): Record<string, unknown> {
    const mark = kindOf(value);
    if (mark === kind) {
      return value as Record<string, unknown>;
    }
    if (mark === "tool_call") {
      throw this.invalid("an answer to a tool call (made by allow, block, rewrite...)");
    }
    if (mark === "session") {
      throw this.invalid("an answer to a session (made by session.allow, block or patch)");
    }
    throw this.invalid(describeValue(value));
  }

  /** `decision[key]` if it is absent or of `type`. */
  field(decision: Record<string, unknown>, key: string, type: "boolean"): boolean | undefined;
  field(decision: Record<string, unknown>, key: string, type: "string"): string | undefined;
  field(decision: Record<string, unknown>, key: string, type: "boolean" | "string"): unknown {
    const value = decision[key];
    if (value !== undefined && typeof value !== type) {
      throw this.invalid(`a decision whose ${key} is ${describeValue(value)}, not a ${type}`);
    }
    return value;
  }

  /** The decision's `require_approval`: absent, null, or `approvalRequest(...)`'s shape. */
  approval(decision: Record<string, unknown>): ApprovalRequest | null | undefined {
    const value = decision.require_approval;
    if (value === undefined || value === null) {
      return value;
    }
    if (typeof value !== "object" || Array.isArray(value)) {
      throw this.invalid(`a decision whose require_approval is ${describeValue(value)}`);
    }
    for (const [key, field] of Object.entries(value)) {
      const valid = APPROVAL_TYPES[key];
      if (valid === undefined) {
        throw this.invalid(
          `a decision whose require_approval has the unknown key ${JSON.stringify(key)}`,
        );
      }
      if (field !== undefined && !valid(field)) {
        throw this.invalid(`a decision whose require_approval.${key} is ${describeValue(field)}`);
      }
    }
    return value as ApprovalRequest;
  }

  /** The message: `fields` without the absent ones, once `decision` has no other key. */
  fields<T extends object>(decision: Record<string, unknown>, fields: T): T {
    const unknown = Object.keys(decision).filter((key) => !Object.hasOwn(fields, key));
    if (unknown.length > 0) {
      const keys = unknown.map((key) => JSON.stringify(key)).join(", ");
      throw this.invalid(`a decision with the unknown key${unknown.length > 1 ? "s" : ""} ${keys}`);
    }
    return Object.fromEntries(
      Object.entries(fields).filter(([, value]) => value !== undefined),
    ) as T;
  }

  private invalid(what: string): InvalidAnswer {
    return new InvalidAnswer(`handler ${this.handler} returned ${what}; ${this.helpers}`);
  }
}

/** A short description of a value that is not an answer. */
function describeValue(value: unknown): string {
  switch (typeof value) {
    case "undefined":
      return "undefined";
    case "string": {
      const text = JSON.stringify(value);
      return `the string ${text.length > 40 ? `${text.slice(0, 39)}…` : text}`;
    }
    case "number":
    case "boolean":
    case "bigint":
      return `the ${typeof value} ${String(value)}`;
    case "symbol":
      return "a symbol";
    case "function":
      return "a function";
  }
  if (value === null) {
    return "null";
  }
  if (Array.isArray(value)) {
    return "an array";
  }
  const prototype: unknown = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) {
    const name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    const what = typeof name === "string" && name !== "" ? `an instance of ${name}` : "not plain";
    return `an object that is not an answer (${what})`;
  }
  const keys = Object.keys(value as object);
  if (keys.length === 0) {
    return "an object that none of the SDK's helpers made (no keys)";
  }
  const shown = keys.map((key) => JSON.stringify(key)).join(", ");
  // Most likely answers combined by spreading, which drops the mark.
  const spread = keys.some((key) => key === "require_approval" || key === "params_json");
  const hint = spread ? "; a spread copy of an answer is not one, join answers with combine()" : "";
  return `an object that none of the SDK's helpers made (keys ${shown}${hint})`;
}
