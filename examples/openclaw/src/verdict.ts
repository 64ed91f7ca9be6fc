// Translation between OpenClaw's tool-policy shapes and hookvisor's messages, with no I/O: the
// request built from OpenClaw's event and context, and the decision OpenClaw gets back from a
// verdict or from a failed call. Every path that is not a clean verdict becomes a block (§7).

import { status as Status, type ServiceError } from "@grpc/grpc-js";
import type { proto } from "@hookvisor/plugin";

import { DISPATCH_TOOLS } from "./report";

/** What OpenClaw passes a trusted tool policy as its event (the fields the adapter reads). */
export interface ToolCallEvent {
  toolName: string;
  params: Record<string, unknown>;
  runId?: string;
  toolCallId?: string;
}

/** What OpenClaw passes a trusted tool policy as its context (the fields the adapter reads). */
export interface ToolCallEventContext {
  agentId?: string;
  sessionKey?: string;
  sessionId?: string;
  runId?: string;
  toolCallId?: string;
  channelId?: string;
  requester?: {
    readonly channel?: string;
    readonly accountId?: string;
    readonly senderId?: string;
    readonly senderIsOwner?: boolean;
  };
}

/** OpenClaw's `requireApproval` (PluginHookBeforeToolCallResult). */
export interface ApprovalDecision {
  title: string;
  description: string;
  severity: "info" | "warning" | "critical";
  timeoutMs: number;
  allowedDecisions: Array<"allow-once" | "allow-always" | "deny">;
  /** The plugin that asks. OpenClaw stamps it on an ordinary hook's approval, not on a trusted
   * policy's, and a gateway turns down an approval without it ("signed plugin approval owner is
   * unavailable"): the adapter sets it. */
  pluginId?: string;
}

/** What a trusted tool policy returns to OpenClaw; `undefined` means "no opinion, run it". */
export interface PolicyDecision {
  params?: Record<string, unknown>;
  block?: true;
  blockReason?: string;
  requireApproval?: ApprovalDecision;
}

/** The contract's default approval timeout, which a `timeout_ms` of 0 stands for (§8). */
export const DEFAULT_APPROVAL_TIMEOUT_MS = 120_000;

/** Builds the request; throws when the params cannot be written as JSON (the caller blocks). */
export function toolCallRequest(
  event: ToolCallEvent,
  ctx: ToolCallEventContext,
  workspaceDir: string | undefined,
): proto.ToolCallRequest {
  const paramsJson = JSON.stringify(event.params ?? {});
  if (typeof paramsJson !== "string") {
    throw new Error("the params are not a JSON object");
  }
  const requester = ctx.requester;
  return {
    tool_name: event.toolName,
    params_json: paramsJson,
    context: {
      agent_id: ctx.agentId ?? "",
      session_key: ctx.sessionKey ?? "",
      session_id: ctx.sessionId ?? "",
      run_id: event.runId ?? ctx.runId ?? "",
      tool_call_id: event.toolCallId ?? ctx.toolCallId ?? "",
      workspace_dir: workspaceDir ?? "",
      channel_id: ctx.channelId ?? "",
      requester:
        requester === undefined
          ? null
          : {
              channel: requester.channel ?? "",
              account_id: requester.accountId ?? "",
              sender_id: requester.senderId ?? "",
              sender_is_owner: requester.senderIsOwner === true,
            },
    },
    session_metadata: {},
    // Tool Search's `tool_call` only dispatches the inner tool, which is asked about on its own.
    dispatch: DISPATCH_TOOLS.has(event.toolName),
  };
}

/** Turns hookvisor's verdict into OpenClaw's decision. */
export function decisionFromVerdict(
  verdict: proto.ToolCallVerdict__Output,
): PolicyDecision | undefined {
  switch (verdict.outcome) {
    case "OUTCOME_BLOCK":
      return block(blockReason(verdict));
    case "OUTCOME_ALLOW":
    case "OUTCOME_REQUIRE_APPROVAL": {
      // The verdict's params are canonical (§4). Unchanged, they are the same JSON value as the
      // params OpenClaw holds, so only a rewrite is handed back.
      let params: Record<string, unknown> | undefined;
      if (verdict.params_changed) {
        params = parseParams(verdict.params_json);
        if (params === undefined) {
          return block(
            "hookvisor: the verdict's params are not a JSON object; the call is blocked",
          );
        }
      }
      const decision: PolicyDecision = {};
      if (params !== undefined) {
        decision.params = params;
      }
      if (verdict.outcome === "OUTCOME_REQUIRE_APPROVAL") {
        if (verdict.approval === null) {
          return block("hookvisor: an approval verdict without its request; the call is blocked");
        }
        decision.requireApproval = approvalDecision(verdict.approval);
      }
      return decision.params === undefined && decision.requireApproval === undefined
        ? undefined
        : decision;
    }
    default:
      return block(`hookvisor: unknown outcome '${verdict.outcome}'; the call is blocked`);
  }
}

/** The block OpenClaw gets when no verdict came back: unreachable, an error, or too late. */
export function decisionFromError(
  err: Pick<ServiceError, "code" | "details">,
  socket: string,
  deadlineMs: number,
): PolicyDecision {
  const details = err.details ? `: ${err.details}` : "";
  switch (err.code) {
    case Status.UNAVAILABLE:
      return block(
        `hookvisor is unavailable at ${socket} (${unavailableCause(err.details ?? "")}); the call is blocked`,
      );
    case Status.DEADLINE_EXCEEDED:
      return block(`hookvisor gave no verdict within ${deadlineMs} ms; the call is blocked`);
    case Status.CANCELLED:
      return block(`the call was cancelled before hookvisor decided${details}`);
    default:
      return block(
        `hookvisor answered ${Status[err.code] ?? err.code}${details}; the call is blocked`,
      );
  }
}

/** A block for anything else that kept the adapter from asking (a bad request, a throw). */
export function decisionFromFailure(what: string): PolicyDecision {
  return block(`hookvisor: ${what}; the call is blocked`);
}

function block(reason: string): PolicyDecision {
  return { block: true, blockReason: reason };
}

/**
 * One reason that names the plugin once and says what happened. A failure's reason already does
 * (`plugin 'guard' timed out after 1500 ms`, contract §7); a plugin's own block reason is said to
 * be its; a block with no reason of its own (hookvisor then writes `blocked by NAME`) names it.
 */
function blockReason(verdict: proto.ToolCallVerdict__Output): string {
  const reason = verdict.block_reason;
  const by = verdict.decided_by;
  if (verdict.block_kind === "BLOCK_KIND_FAILURE") {
    return `hookvisor: ${reason || `plugin '${by}' failed`}; the call is blocked`;
  }
  if (!by) {
    return `hookvisor: blocked: ${reason || "no reason given"}`;
  }
  if (!reason || reason === `blocked by ${by}`) {
    return `hookvisor: blocked by plugin '${by}'`;
  }
  return `hookvisor: blocked by plugin '${by}': ${reason}`;
}

/**
 * What grpc-js says when it cannot connect, as a person can act on it. Its details read
 * `No connection established. Last error: connect ENOENT /run/x.sock. Resolution note: ` (the
 * note often empty); the errno says what to do.
 */
export function unavailableCause(details: string): string {
  const last = /Last error: (.*?)\.?(?: Resolution note:.*)?$/s.exec(details)?.[1];
  const cause = (last ?? details.replace(/\s*Resolution note:\s*$/, "")).trim();
  if (/\bENOENT\b/.test(cause)) {
    return "no socket there: is hookvisor running, and is this its socket?";
  }
  if (/\bECONNREFUSED\b/.test(cause)) {
    return "nothing listens on the socket: is hookvisor running?";
  }
  if (/\bEACCES\b|\bEPERM\b/.test(cause)) {
    return "permission denied on the socket: see socket_mode in hookvisor's configuration";
  }
  return cause || "no connection";
}

function parseParams(json: string): Record<string, unknown> | undefined {
  try {
    const value: unknown = JSON.parse(json);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

const SEVERITIES = {
  SEVERITY_INFO: "info",
  SEVERITY_WARNING: "warning",
  SEVERITY_CRITICAL: "critical",
} as const;

const DECISIONS = {
  APPROVAL_DECISION_ALLOW_ONCE: "allow-once",
  APPROVAL_DECISION_ALLOW_ALWAYS: "allow-always",
  APPROVAL_DECISION_DENY: "deny",
} as const;

function approvalDecision(approval: proto.ApprovalRequest__Output): ApprovalDecision {
  // Unspecified severity is reported as WARNING, a timeout of 0 means 120000 ms, and no allowed
  // decisions means all three (the proto's comments, §8).
  const severity =
    approval.severity in SEVERITIES
      ? SEVERITIES[approval.severity as keyof typeof SEVERITIES]
      : "warning";
  const allowed = approval.allowed_decisions
    .map((d) => (d in DECISIONS ? DECISIONS[d as keyof typeof DECISIONS] : undefined))
    .filter((d): d is ApprovalDecision["allowedDecisions"][number] => d !== undefined);
  return {
    title: approval.title,
    description: approval.description,
    severity,
    timeoutMs: approval.timeout_ms === 0 ? DEFAULT_APPROVAL_TIMEOUT_MS : approval.timeout_ms,
    allowedDecisions:
      allowed.length > 0 ? [...new Set(allowed)] : ["allow-once", "allow-always", "deny"],
  };
}
