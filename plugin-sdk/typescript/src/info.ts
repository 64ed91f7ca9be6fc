// What a plugin tells the supervisor about itself in `Describe`.

import type { HookRegistration, PluginInfo } from "./generated";

/** The protocol this SDK speaks (contract §2.4). */
export const PROTOCOL_VERSION = 1;

/** The hooks a plugin can serve, by their names in the configuration (`hooks = [...]`). */
export type HookName = "before_tool_call" | "before_session_create" | "session_created";

/**
 * The stage a registration runs in: `"policy"` (trusted plugins, one after another, each rewrite
 * replacing the params whole) or `"hook"` (concurrent, a rewrite merged key by key).
 */
export type StageName = "policy" | "hook";

/** One hook a plugin serves. The operator's configuration overrides `priority` and `timeoutMs`. */
export interface Registration {
  hook: HookName;
  /** `"policy"` is accepted only from plugins configured `trusted = true`. Default `"hook"`. */
  stage?: StageName;
  /** Higher runs (and merges) first. Default 0. */
  priority?: number;
  /** Exact tool names this registration applies to; empty or absent means every tool. */
  tools?: string[];
  /** The plugin's own deadline in ms; absent or 0 leaves it to the configuration. */
  timeoutMs?: number;
}

/** A plugin's name, version and hooks; becomes `PluginInfo` in `Describe`. */
export interface Info {
  /** The plugin's own name; when empty, the configured name (`HOOKVISOR_PLUGIN_NAME`) is used. */
  name?: string;
  version?: string;
  hooks: Registration[];
}

const HOOKS = {
  before_tool_call: "HOOK_BEFORE_TOOL_CALL",
  before_session_create: "HOOK_BEFORE_SESSION_CREATE",
  session_created: "HOOK_SESSION_CREATED",
} as const;

const STAGES = { policy: "STAGE_POLICY", hook: "STAGE_HOOK" } as const;

/**
 * The `PluginInfo` answered by `Describe`. Throws on a hook or stage name this SDK does not know,
 * so a typo in a JavaScript plugin stops it at start instead of registering nothing.
 */
export function toPluginInfo(info: Info, configuredName: string): PluginInfo {
  const hooks = (info.hooks ?? []).map((registration): HookRegistration => {
    const hook = HOOKS[registration.hook];
    if (hook === undefined) {
      const known = Object.keys(HOOKS).join(", ");
      throw new Error(`info() registers an unknown hook "${registration.hook}" (known: ${known})`);
    }
    const stage = STAGES[registration.stage ?? "hook"];
    if (stage === undefined) {
      throw new Error(`info() gives ${registration.hook} an unknown stage "${registration.stage}"`);
    }
    return {
      hook,
      stage,
      priority: registration.priority ?? 0,
      tools: registration.tools ?? [],
      timeout_ms: registration.timeoutMs ?? 0,
    };
  });
  return {
    name: info.name || configuredName,
    version: info.version ?? "",
    protocol_version: PROTOCOL_VERSION,
    hooks,
  };
}
