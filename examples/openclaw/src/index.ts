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
// Layout:
// - config.ts: the plugin config (socket, deadlineMs) and its validation.
// - verdict.ts: OpenClaw event → request, verdict or failure → OpenClaw decision (no I/O).
// - client.ts: the gRPC channel to hookvisor.

import type {
  OpenClawConfig,
  OpenClawPluginApi,
  OpenClawPluginConfigSchema,
  PluginTrustedToolPolicyRegistration,
} from "openclaw/plugin-sdk/plugin-entry" with { "resolution-mode": "import" };

import { HooksClient } from "./client";
import { parseConfig, type AdapterConfig } from "./config";
import {
  decisionFromError,
  decisionFromFailure,
  decisionFromVerdict,
  toolCallRequest,
  type PolicyDecision,
  type ToolCallEvent,
  type ToolCallEventContext,
} from "./verdict";

export { parseConfig } from "./config";
export type { AdapterConfig } from "./config";
export * from "./verdict";

/** The plugin id, also the trusted policy's id (both in openclaw.plugin.json). */
export const PLUGIN_ID = "hookvisor";

type PolicyEvent = Parameters<PluginTrustedToolPolicyRegistration["evaluate"]>[0];
type PolicyContext = Parameters<PluginTrustedToolPolicyRegistration["evaluate"]>[1];

// OpenClaw may register a plugin more than once in a process (reloads, several registries); every
// registration for the same socket shares one channel.
const clients = new Map<string, HooksClient>();

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

function register(api: OpenClawPluginApi): void {
  const parsed = parseConfig(api.pluginConfig);
  if (!parsed.ok) {
    // OpenClaw validates the config against the manifest's schema first, so this is a bug or a
    // schema drift; refusing to register would let every call through, so every call is blocked.
    const reason = parsed.errors.join("; ");
    api.logger.error(`${reason}; every tool call will be blocked`);
    api.registerTrustedToolPolicy({
      id: PLUGIN_ID,
      description: "hookvisor (misconfigured: blocks every tool call)",
      evaluate: () => decisionFromFailure(`invalid config (${reason})`),
    });
    return;
  }
  const config = parsed.value;
  const client = clientFor(config.socket);

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

  api.registerTrustedToolPolicy({
    id: PLUGIN_ID,
    description: `every tool call is decided by hookvisor at ${config.socket}`,
    async evaluate(event: PolicyEvent, ctx: PolicyContext) {
      const decision = await decideToolCall(
        client,
        config,
        event,
        ctx,
        workspaceDirOf(ctx.agentId),
      );
      if (decision?.block) {
        api.logger.warn(`tool '${event.toolName}' blocked: ${decision.blockReason}`);
      }
      return decision;
    },
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
