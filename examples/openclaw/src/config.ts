// The plugin's configuration (`plugins.entries.hookvisor.config` in OpenClaw's config): where
// hookvisor listens, how long a tool call may wait for its verdict, the name this host reports
// under and how often it reports. The same keys are in openclaw.plugin.json. That schema is
// deliberately loose (types only): OpenClaw does not load a plugin whose config breaks its
// manifest schema, and a plugin that is not loaded registers no policy, so every tool call would
// run unchecked. The real checks are here, after the blocking policy is registered: a config
// they refuse blocks every call with the reason.

import * as os from "node:os";
import * as path from "node:path";

/** hookvisor's host socket under systemd (`RuntimeDirectory=hookvisor`). */
export const DEFAULT_SOCKET = "/run/hookvisor/hookvisor.sock";
/** The contract's default per-hook deadline (§6). */
export const DEFAULT_DEADLINE_MS = 5000;
/** The contract's cap on any timeout (§6). */
export const MAX_DEADLINE_MS = 600_000;
/** How often a gateway reports to hookvisor (contract §4.5). */
export const DEFAULT_REPORT_INTERVAL_MS = 30_000;
export const MIN_REPORT_INTERVAL_MS = 100;
/** The contract's cap on a report interval (§4.5). */
export const MAX_REPORT_INTERVAL_MS = 3_600_000;
/** The contract's cap on a host name (§4.5). */
export const MAX_HOST_BYTES = 128;
/** A Unix socket path's limit (`sun_path` is 108 bytes with its NUL). */
export const MAX_SOCKET_BYTES = 107;

export interface AdapterConfig {
  /** Absolute path of hookvisor's host socket. */
  socket: string;
  /** The gRPC deadline of each call to hookvisor; past it the tool call is blocked. */
  deadlineMs: number;
  /** The name this host reports under (default: the machine's name). */
  host: string;
  /** How often the gateway reports (its heartbeat). */
  reportIntervalMs: number;
}

export type ConfigResult = { ok: true; value: AdapterConfig } | { ok: false; errors: string[] };

const KEYS = ["socket", "deadlineMs", "host", "reportIntervalMs"];

// C0 and C1 control characters and DEL: they make no sense in a path or a name, and grpc-js
// throws on some of them when it parses a target.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The default host name: the machine's name, cut to the contract's limit. */
export function defaultHost(): string {
  const name = os.hostname().replace(new RegExp(CONTROL.source, "g"), "") || "openclaw";
  return Buffer.from(name)
    .subarray(0, MAX_HOST_BYTES)
    .toString()
    .replace(/\uFFFD+$/, "");
}

function integerIn(
  record: Record<string, unknown>,
  key: string,
  min: number,
  max: number,
  fallback: number,
  errors: string[],
): number {
  const value = record[key];
  if (value === undefined) {
    return fallback;
  }
  if (!Number.isInteger(value) || (value as number) < min || (value as number) > max) {
    errors.push(`hookvisor: config '${key}' must be an integer in ${min}..${max}`);
    return fallback;
  }
  return value as number;
}

/** Validates the plugin's config object (absent means every default). */
export function parseConfig(raw: unknown): ConfigResult {
  const defaults: AdapterConfig = {
    socket: DEFAULT_SOCKET,
    deadlineMs: DEFAULT_DEADLINE_MS,
    host: defaultHost(),
    reportIntervalMs: DEFAULT_REPORT_INTERVAL_MS,
  };
  if (raw === undefined || raw === null) {
    return { ok: true, value: defaults };
  }
  if (typeof raw !== "object" || Array.isArray(raw)) {
    return { ok: false, errors: ["hookvisor: config must be an object"] };
  }
  const errors: string[] = [];
  const record = raw as Record<string, unknown>;
  for (const key of Object.keys(record)) {
    if (!KEYS.includes(key)) {
      errors.push(`hookvisor: unknown config key '${key}' (known: ${KEYS.join(", ")})`);
    }
  }
  let socket = defaults.socket;
  if (record.socket !== undefined) {
    const value = record.socket;
    if (typeof value !== "string" || !path.isAbsolute(value)) {
      errors.push("hookvisor: config 'socket' must be an absolute path");
    } else if (CONTROL.test(value)) {
      errors.push("hookvisor: config 'socket' must not contain control characters");
    } else if (Buffer.byteLength(value) > MAX_SOCKET_BYTES) {
      errors.push(`hookvisor: config 'socket' must be at most ${MAX_SOCKET_BYTES} bytes`);
    } else {
      socket = value;
    }
  }
  let host = defaults.host;
  if (record.host !== undefined) {
    const value = record.host;
    if (
      typeof value !== "string" ||
      value === "" ||
      value === "unreported" ||
      CONTROL.test(value) ||
      Buffer.byteLength(value) > MAX_HOST_BYTES
    ) {
      errors.push(
        `hookvisor: config 'host' must be 1..${MAX_HOST_BYTES} bytes without control characters (and not 'unreported')`,
      );
    } else {
      host = value;
    }
  }
  const deadlineMs = integerIn(
    record,
    "deadlineMs",
    1,
    MAX_DEADLINE_MS,
    defaults.deadlineMs,
    errors,
  );
  const reportIntervalMs = integerIn(
    record,
    "reportIntervalMs",
    MIN_REPORT_INTERVAL_MS,
    MAX_REPORT_INTERVAL_MS,
    defaults.reportIntervalMs,
    errors,
  );
  return errors.length > 0
    ? { ok: false, errors }
    : { ok: true, value: { socket, deadlineMs, host, reportIntervalMs } };
}
