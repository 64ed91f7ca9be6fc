// @hookvisor/openclaw: OpenClaw asks hookvisor about every tool call.
//
// The plugin registers one trusted tool policy (id `hookvisor`, declared in openclaw.plugin.json's
// `contracts.trustedToolPolicies`). Trusted policies run before every ordinary `before_tool_call`
// hook and on every path that runs tools, `openclaw agent exec` included, which fires trusted
// policies but not ordinary hooks. The policy forwards the call to hookvisor's
// `hookvisor.v1.Hooks/BeforeToolCall` and returns the verdict as OpenClaw's decision; when no
// verdict comes back (hookvisor down, an error status, the deadline passed) the call is blocked.
//
// OpenClaw's `session_start` is forwarded to `SessionCreated`. OpenClaw has no hook before a
// session is created (no `before_session_create` among its hook names in 2026.9.6), so
// `BeforeSessionCreate` is not called: nothing could block a session or seed its metadata. When
// OpenClaw adds such a hook, the adapter would forward it there and block the session on a BLOCK
// verdict or on any failure, as it does for tool calls.
//
// The adapter also reports this host to hookvisor (`ReportHost`, contract §4.5): a hello at load
// (logged: whether hookvisor answers, its version, its plugins), and in a gateway a report every
// `reportIntervalMs` with, per tool, how often it was asked about and how often it ran.
//
// Layout:
// - config.ts: the plugin config (socket, deadlineMs, host, reportIntervalMs), checked here.
// - report.ts: the host's reports and its per-tool counts.
// - verdict.ts: OpenClaw event → request, verdict or failure → OpenClaw decision (no I/O).
// - client.ts: the gRPC channel to hookvisor.

import type {
  OpenClawConfig,
  OpenClawPluginApi,
  OpenClawPluginConfigSchema,
  PluginTrustedToolPolicyRegistration,
} from "openclaw/plugin-sdk/plugin-entry" with { "resolution-mode": "import" };

import { status as Status } from "@grpc/grpc-js";

import { HooksClient } from "./client";
import { parseConfig, type AdapterConfig } from "./config";
import { Reporter, ToolCounts, helloLine } from "./report";
import {
  decisionFromError,
  decisionFromFailure,
  decisionFromVerdict,
  toolCallRequest,
  unavailableCause,
  type PolicyDecision,
  type ToolCallEvent,
  type ToolCallEventContext,
} from "./verdict";

export { parseConfig } from "./config";
export { ToolCounts } from "./report";
export type { AdapterConfig } from "./config";
export * from "./verdict";

/** The plugin id, also the trusted policy's id (both in openclaw.plugin.json). */
export const PLUGIN_ID = "hookvisor";

type PolicyEvent = Parameters<PluginTrustedToolPolicyRegistration["evaluate"]>[0];
type PolicyContext = Parameters<PluginTrustedToolPolicyRegistration["evaluate"]>[1];

// OpenClaw may register a plugin more than once in a process (a gateway registered it twice in
// the tests: reloads, several registries); every registration for the same socket shares one
// channel, and the process has one set of per-tool counts and one reporter (the latest
// registration's).
const clients = new Map<string, HooksClient>();
const counts = new ToolCounts();
let reporter: Reporter | undefined;
/** Between OpenClaw's `gateway_start` and `gateway_stop`: reports go on a timer. */
let gatewayRunning = false;

function clientFor(socket: string): HooksClient {
  let client = clients.get(socket);
  if (client === undefined) {
    client = new HooksClient(socket);
    clients.set(socket, client);
  }
  return client;
}

/** Asks hookvisor about one tool call and returns OpenClaw's decision; never throws. */
export async function decideToolCall(
  client: HooksClient,
  config: AdapterConfig,
  event: ToolCallEvent,
  ctx: ToolCallEventContext & { abortSignal?: AbortSignal },
  workspaceDir: string | undefined,
): Promise<PolicyDecision | undefined> {
  let request;
  try {
    request = toolCallRequest(event, ctx, workspaceDir);
  } catch (err) {
    return decisionFromFailure(`cannot send the call (${(err as Error).message})`);
  }
  try {
    const verdict = await client.beforeToolCall(request, config.deadlineMs, ctx.abortSignal);
    return decisionFromVerdict(verdict);
  } catch (err) {
    const e = err as { code?: unknown; details?: string; message?: string };
    if (typeof e.code === "number") {
      return decisionFromError(
        { code: e.code, details: e.details ?? "" },
        config.socket,
        config.deadlineMs,
      );
    }
    return decisionFromFailure(`the call to hookvisor failed (${e.message ?? String(err)})`);
  }
}

const configSchema: OpenClawPluginConfigSchema = {
  validate(value: unknown) {
    const parsed = parseConfig(value);
    return parsed.ok ? { ok: true, value: parsed.value } : parsed;
  },
};

type Decide = (event: PolicyEvent, ctx: PolicyContext) => Promise<PolicyDecision | undefined>;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** A decision that blocks every call with `reason` (the adapter cannot ask hookvisor). */
function blockAll(reason: string): Decide {
  return async () => decisionFromFailure(reason);
}

function register(api: OpenClawPluginApi): void {
  // The blocking policy comes first, before anything that can throw: OpenClaw's loader records a
  // throw from register() and carries on, so a policy registered after it would never be, and
  // every tool call would run unchecked. Until `load` has finished, and for good if it fails,
  // the policy blocks every call with the reason.
  let decide: Decide = blockAll("the adapter has not finished loading");
  api.registerTrustedToolPolicy({
    id: PLUGIN_ID,
    description: "every tool call is decided by hookvisor",
    async evaluate(event: PolicyEvent, ctx: PolicyContext) {
      try {
        return await decide(event, ctx);
      } catch (err) {
        return decisionFromFailure(`the adapter failed (${message(err)})`);
      }
    },
  });
  try {
    decide = load(api);
  } catch (err) {
    const reason = `the adapter failed to load (${message(err)})`;
    decide = blockAll(reason);
    api.logger.error(`hookvisor: ${reason}; every tool call will be blocked`);
  }
}

/** Everything after the policy's registration; throws are caught by `register`. */
function load(api: OpenClawPluginApi): Decide {
  const parsed = parseConfig(api.pluginConfig);
  if (!parsed.ok) {
    const reason = parsed.errors.join("; ");
    api.logger.error(`${reason}; every tool call will be blocked`);
    return blockAll(`invalid config (${reason})`);
  }
  const config = parsed.value;
  const client = clientFor(config.socket);
  const mine = new Reporter(
    client,
    config,
    { kind: "openclaw", version: runtimeVersion(api), policyId: PLUGIN_ID },
    counts,
  );

  const workspaceDirOf = (agentId: string | undefined): string | undefined => {
    if (!agentId) {
      return undefined;
    }
    try {
      // The live config (reloads included); its type is a deep-readonly view of the same object.
      const config = api.runtime.config.current() as OpenClawConfig;
      return api.runtime.agent.resolveAgentWorkspaceDir(config, agentId);
    } catch {
      return undefined;
    }
  };

  // A failed report is logged once per registration (the calls themselves say more).
  let reportFailed = false;
  const onReportError = (err: unknown) => {
    if (!reportFailed) {
      reportFailed = true;
      api.logger.warn(`hookvisor: report not delivered: ${describeError(err, config.socket)}`);
    }
  };
  // What ran, per tool: set against what was asked, it shows a tool that went around the gate.
  // Outside a gateway (an `openclaw agent --local` turn) nothing reports on a timer, so each run
  // is reported at once: one more round trip per tool call, and the process may end any time.
  api.on("after_tool_call", async (event) => {
    if (!counts.ran(event.toolName, event.toolCallId)) {
      return;
    }
    if (!gatewayRunning) {
      await reporter?.send(0).catch(onReportError);
    }
  });

  api.on("session_start", async (event, ctx) => {
    try {
      await client.sessionCreated(
        {
          session_key: event.sessionKey ?? ctx.sessionKey ?? "",
          session_id: event.sessionId,
          agent_id: ctx.agentId ?? "",
          session_metadata: {},
        },
        config.deadlineMs,
      );
    } catch (err) {
      const e = err as { details?: string; message?: string };
      api.logger.warn(`SessionCreated not delivered to hookvisor: ${e.details || e.message}`);
    }
  });

  // A gateway reports on a timer, so that hookvisor sees it go silent.
  api.on("gateway_start", () => {
    gatewayRunning = true;
    reporter?.start(onReportError);
  });
  api.on("gateway_stop", async () => {
    gatewayRunning = false;
    await reporter?.stop().catch(onReportError);
  });
  reporter?.pause();
  reporter = mine;
  if (gatewayRunning) {
    mine.start(onReportError);
  }

  // One line at load: whether hookvisor answers, and how ready it is.
  mine.send(0).then(
    (receipt) => api.logger.info(helloLine(config.socket, receipt)),
    (err) =>
      api.logger.warn(
        `hookvisor does not answer at ${config.socket} (${describeError(err, config.socket)}); every tool call will be blocked until it does`,
      ),
  );

  return async (event, ctx) => {
    counts.asked(event.toolName, event.toolCallId ?? ctx.toolCallId);
    const decision = await decideToolCall(client, config, event, ctx, workspaceDirOf(ctx.agentId));
    if (decision?.block) {
      api.logger.warn(`tool '${event.toolName}' blocked: ${decision.blockReason}`);
    }
    if (decision?.requireApproval) {
      decision.requireApproval.pluginId = PLUGIN_ID;
    }
    return decision;
  };
}

/** OpenClaw's version as its runtime gives it ("" when it does not). */
function runtimeVersion(api: OpenClawPluginApi): string {
  try {
    const version: unknown = api.runtime.version;
    return typeof version === "string" ? version : "";
  } catch {
    return "";
  }
}

/** A failed call to hookvisor, in words (the same as a blocked call's reason would give). */
function describeError(err: unknown, socket: string): string {
  const e = err as { code?: unknown; details?: string; message?: string };
  if (e.code === Status.UNAVAILABLE) {
    return unavailableCause(e.details ?? "");
  }
  if (typeof e.code === "number") {
    return `${Status[e.code] ?? e.code}${e.details ? `: ${e.details}` : ""}`;
  }
  return e.message ?? String(err) ?? socket;
}

/** The plugin entry OpenClaw loads (`openclaw.extensions` in package.json). */
const plugin = {
  id: PLUGIN_ID,
  name: "hookvisor",
  description: "Every tool call is decided by hookvisor, out of process.",
  configSchema,
  register,
};

export default plugin;
