// Answers to `before_tool_call`: no opinion, block, rewrite the params, or ask for approval.
//
// Each returns a plain object of the generated `ToolCallDecision` type that carries the SDK's
// mark (a non-enumerable symbol key, `DECISION`, which `deepEqual` and JSON ignore): a handler's
// answer without it (`undefined`, `{}`, a misspelt `{ blocked: true }`) is refused as an invalid
// answer instead of read as "no opinion" (see answer.ts). A spread copy loses the mark, so
// answers combine (rewrite *and* ask) with `combine(rewrite(params), requireApproval(...))`.

import type { ApprovalRequest, ToolCallDecision as ToolCallDecisionFields } from "./generated";
import type { JsonObject } from "./call";
import { stringifyJson } from "./json";

/**
 * The key that marks an answer as made by the SDK's helpers; its value says which hook it
 * answers. A registered symbol, so two copies of this package recognise each other's answers.
 */
export const DECISION: unique symbol = Symbol.for("hookvisor.plugin.decision");

/** Which hook an answer is for. */
export type DecisionKind = "tool_call" | "session";

/** An answer to `before_tool_call` (`allow`, `block`, `rewrite`, `requireApproval`, `combine`). */
export type ToolCallDecision = ToolCallDecisionFields & { readonly [DECISION]: "tool_call" };

/** `fields` marked as an answer of `kind` (the mark is not enumerable: spread drops it). */
export function marked<T extends object, K extends DecisionKind>(
  fields: T,
  kind: K,
): T & { readonly [DECISION]: K } {
  return Object.defineProperty(fields, DECISION, { value: kind }) as T & {
    readonly [DECISION]: K;
  };
}

/** The hook `value` answers if one of the SDK's helpers made it, else `undefined`. */
export function kindOf(value: unknown): DecisionKind | undefined {
  if (typeof value !== "object" || value === null) {
    return undefined;
  }
  const kind: unknown = Object.getOwnPropertyDescriptor(value, DECISION)?.value;
  return kind === "tool_call" || kind === "session" ? kind : undefined;
}

/** Longest approval title the contract accepts, in characters (contract §8). */
export const MAX_TITLE_CHARS = 80;
/** Longest approval description the contract accepts, in characters (contract §8). */
export const MAX_DESCRIPTION_CHARS = 512;

/** How serious an approval request is, for the host's prompt. Default: warning. */
export type ApprovalSeverity = "info" | "warning" | "critical";
/** The answers a human may give; default all three. */
export type ApprovalChoice = "allow-once" | "allow-always" | "deny";

/** What `requireApproval` asks. Title and description are cut to the contract's limits. */
export interface ApprovalOptions {
  /** 1..80 characters; an empty title becomes `Approval required`. */
  title: string;
  /** At most 512 characters. */
  description?: string;
  severity?: ApprovalSeverity;
  /** How long the host waits for a human: 1..600000 ms; absent or 0 means 120000. */
  timeoutMs?: number;
  allowedDecisions?: ApprovalChoice[];
}

const SEVERITIES = {
  info: "SEVERITY_INFO",
  warning: "SEVERITY_WARNING",
  critical: "SEVERITY_CRITICAL",
} as const;

const CHOICES = {
  "allow-once": "APPROVAL_DECISION_ALLOW_ONCE",
  "allow-always": "APPROVAL_DECISION_ALLOW_ALWAYS",
  deny: "APPROVAL_DECISION_DENY",
} as const;

/** No opinion: the call proceeds as far as this plugin is concerned. */
export function allow(): ToolCallDecision {
  return marked({}, "tool_call");
}

/** Block the call; `reason` is shown to the agent and the operator. */
export function block(reason: string): ToolCallDecision {
  return marked({ block: true, block_reason: reason }, "tool_call");
}

/**
 * Rewrite the call's params, written like `JSON.stringify` but with each `LosslessNumber` as its
 * text: the numbers of `{ ...call.params, key }` go back exactly as they came. In the policy stage
 * `params` replaces the params whole; in the hook stage its top-level keys replace those keys
 * (contract §4), so `rewrite({ path })` changes `path` alone. Sending the whole object is right in
 * both stages.
 */
export function rewrite(params: JsonObject): ToolCallDecision {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new TypeError("rewrite() needs the params as a JSON object");
  }
  const json = stringifyJson(params);
  if (json === undefined) {
    throw new TypeError("rewrite() needs the params as a JSON object");
  }
  return marked({ params_json: json }, "tool_call");
}

/** Ask a human before the call runs. */
export function requireApproval(options: ApprovalOptions): ToolCallDecision {
  return marked({ require_approval: approvalRequest(options) }, "tool_call");
}

/**
 * One answer with the fields of all of `decisions` (a later one's field wins), e.g. rewrite the
 * params *and* ask: `combine(rewrite(params), requireApproval({ title: "Run it?" }))`. Each must
 * be an answer to `before_tool_call` made by these helpers.
 */
export function combine(...decisions: ToolCallDecision[]): ToolCallDecision {
  const fields: ToolCallDecisionFields = {};
  for (const [index, decision] of decisions.entries()) {
    if (kindOf(decision) !== "tool_call") {
      throw new TypeError(
        `combine() takes answers made by allow, block, rewrite or requireApproval; ` +
          `argument ${index + 1} is not one`,
      );
    }
    Object.assign(fields, decision);
  }
  return marked(fields, "tool_call");
}

/** The `ApprovalRequest` for `options` (the `require_approval` field of a decision). */
export function approvalRequest(options: ApprovalOptions): ApprovalRequest {
  const title = options.title.trim() === "" ? "Approval required" : options.title;
  return {
    title: truncate(title, MAX_TITLE_CHARS),
    description: truncate(options.description ?? "", MAX_DESCRIPTION_CHARS),
    severity:
      options.severity === undefined ? "SEVERITY_UNSPECIFIED" : SEVERITIES[options.severity],
    timeout_ms: options.timeoutMs ?? 0,
    allowed_decisions: (options.allowedDecisions ?? []).map((choice) => CHOICES[choice]),
  };
}

/** `text` cut to at most `maxChars` characters (code points), ending in `…` when cut. */
export function truncate(text: string, maxChars: number): string {
  const chars = Array.from(text);
  if (chars.length <= maxChars) {
    return text;
  }
  return chars.slice(0, Math.max(0, maxChars - 1)).join("") + "…";
}
