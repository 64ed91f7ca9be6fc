// The plugin's configuration (`plugins.entries.hookvisor.config` in OpenClaw's config): where
// hookvisor listens and how long a tool call may wait for its verdict. The same schema is in
// openclaw.plugin.json, which OpenClaw validates before the plugin loads; `parseConfig` checks it
// again here so that the plugin never runs on a value the schema refuses.

import * as path from "node:path";

/** hookvisor's host socket under systemd (`RuntimeDirectory=hookvisor`). */
export const DEFAULT_SOCKET = "/run/hookvisor/hookvisor.sock";
/** The contract's default per-hook deadline (§6). */
export const DEFAULT_DEADLINE_MS = 5000;
/** The contract's cap on any timeout (§6). */
export const MAX_DEADLINE_MS = 600_000;

export interface AdapterConfig {
  /** Absolute path of hookvisor's host socket. */
  socket: string;
  /** The gRPC deadline of each call to hookvisor; past it the tool call is blocked. */
  deadlineMs: number;
}

export type ConfigResult = { ok: true; value: AdapterConfig } | { ok: false; errors: string[] };

/** Validates the plugin's config object (absent means every default). */
export function parseConfig(raw: unknown): ConfigResult {
  if (raw === undefined || raw === null) {
    return { ok: true, value: { socket: DEFAULT_SOCKET, deadlineMs: DEFAULT_DEADLINE_MS } };
  }
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, errors: ["hookvisor: config must be an object"] };
  }
  const errors: string[] = [];
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (key !== "socket" && key !== "deadlineMs") {
      errors.push(`hookvisor: unknown config key '${key}' (known: socket, deadlineMs)`);
    }
  }
  let socket = DEFAULT_SOCKET;
  if (record.socket !== undefined) {
    if (typeof record.socket !== "string" || !path.isAbsolute(record.socket)) {
      errors.push("hookvisor: config 'socket' must be an absolute path");
    } else {
      socket = record.socket;
    }
  }
  let deadlineMs = DEFAULT_DEADLINE_MS;
  if (record.deadlineMs !== undefined) {
    const value = record.deadlineMs;
    if (!Number.isInteger(value) || (value as number) < 1 || (value as number) > MAX_DEADLINE_MS) {
      errors.push(`hookvisor: config 'deadlineMs' must be an integer in 1..${MAX_DEADLINE_MS}`);
    } else {
      deadlineMs = value as number;
    }
  }
  return errors.length > 0 ? { ok: false, errors } : { ok: true, value: { socket, deadlineMs } };
}
