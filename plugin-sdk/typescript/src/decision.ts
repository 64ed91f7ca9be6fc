// Answers to `before_tool_call`: no opinion, block, rewrite the params, or ask for approval.
//
// Each returns a plain `ToolCallDecision`; to combine answers (rewrite *and* ask), spread them:
// `{ ...rewrite(params), require_approval: approvalRequest({ title: "Run it?" }) }`.

import type { ApprovalRequest, ToolCallDecision } from "./generated";
import type { JsonObject } from "./call";

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
  return {};
}

/** Block the call; `reason` is shown to the agent and the operator. */
export function block(reason: string): ToolCallDecision {
  return { block: true, block_reason: reason };
}

/** Replace the call's params with `params` (the whole object). */
export function rewrite(params: JsonObject): ToolCallDecision {
  if (typeof params !== "object" || params === null || Array.isArray(params)) {
    throw new TypeError("rewrite() needs the whole params as a JSON object");
  }
  return { params_json: JSON.stringify(params) };
}

/** Ask a human before the call runs. */
export function requireApproval(options: ApprovalOptions): ToolCallDecision {
  return { require_approval: approvalRequest(options) };
}

/** The `ApprovalRequest` for `options`, for decisions that combine it with a rewrite. */
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
