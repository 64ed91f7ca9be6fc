#!/usr/bin/env node
// `secret-guard`: blocks tool calls whose params carry something that looks like a credential.
//
// Registers before_tool_call in the hook stage for every tool. Every string in the params, at any
// depth (object keys too), is matched against the built-in patterns below and the operator's own.
// A match blocks the call; the reason names the kind and where it was found, never the secret:
// `params contain an AWS access key id at $.env.KEY`. The tool `hookvisor-noop-probe` always
// passes. A guard rail against pasting secrets into tool calls, not a data-loss-prevention system:
// an encoded or split secret passes.
//
// Configuration (environment):
// - `SECRET_GUARD_PATTERNS`: extra regular expressions (JavaScript syntax), separated by newlines
//   or `;;`. An invalid one stops the plugin with exit 1, which fails closed.

import { allow, block, run } from "@hookvisor/plugin";
import type { Plugin, ToolCall, ToolCallDecision } from "@hookvisor/plugin";

/** A kind of secret: how the block reason names it, and what it looks like. */
export interface SecretPattern {
  kind: string;
  pattern: RegExp;
}

export const BUILT_IN: SecretPattern[] = [
  { kind: "an AWS access key id", pattern: /AKIA[0-9A-Z]{16}/ },
  { kind: "a PEM private key", pattern: /-----BEGIN ([A-Z0-9]+ )*PRIVATE KEY-----/ },
  { kind: "a GitHub token", pattern: /gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{22,}/ },
  { kind: "a Slack token", pattern: /xox[baprs]-[A-Za-z0-9-]{10,}/ },
];

/** The tool hookvisor's own probes call; never blocked. */
const PROBE_TOOL = "hookvisor-noop-probe";

/** The operator's extra patterns: newline- or `;;`-separated, blanks ignored. */
export function parsePatterns(text: string): SecretPattern[] {
  const sources = text
    .split(/\n|;;/)
    .map((source) => source.trim())
    .filter((source) => source !== "");
  return sources.map((source, index) => {
    const kind = `a match of SECRET_GUARD_PATTERNS #${index + 1}`;
    try {
      return { kind, pattern: new RegExp(source) };
    } catch (err) {
      const why = err instanceof Error ? err.message : String(err);
      throw new Error(`SECRET_GUARD_PATTERNS: pattern #${index + 1} is not a valid regex: ${why}`);
    }
  });
}

/**
 * The first secret in `value` as a block reason, or `undefined`. Keys are checked before what is
 * under them, so a path in a reason never contains a key that is itself a secret.
 */
export function findSecret(
  value: unknown,
  patterns: SecretPattern[],
  path = "$",
): string | undefined {
  const match = (text: string) => patterns.find(({ pattern }) => pattern.test(text));
  if (typeof value === "string") {
    const found = match(value);
    return found && `params contain ${found.kind} at ${path}`;
  }
  if (Array.isArray(value)) {
    for (const [index, item] of value.entries()) {
      const reason = findSecret(item, patterns, `${path}[${index}]`);
      if (reason) return reason;
    }
    return undefined;
  }
  if (typeof value === "object" && value !== null) {
    for (const [key, item] of Object.entries(value)) {
      const found = match(key);
      if (found) return `params contain ${found.kind} in a key of ${path}`;
      const reason = findSecret(item, patterns, `${path}${pathSegment(key)}`);
      if (reason) return reason;
    }
  }
  return undefined;
}

/** `.key` for identifier-like keys, else `["key"]`. */
function pathSegment(key: string): string {
  return /^[A-Za-z_$][A-Za-z0-9_$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`;
}

export class SecretGuard implements Plugin {
  constructor(private readonly patterns: SecretPattern[]) {}

  info() {
    return {
      name: "secret-guard",
      version: "0.1.0",
      hooks: [{ hook: "before_tool_call" as const }],
    };
  }

  beforeToolCall(call: ToolCall): ToolCallDecision {
    if (call.toolName === PROBE_TOOL) {
      return allow();
    }
    const reason = findSecret(call.params, this.patterns);
    return reason ? block(reason) : allow();
  }
}

if (require.main === module) {
  run(
    () => new SecretGuard([...BUILT_IN, ...parsePatterns(process.env.SECRET_GUARD_PATTERNS ?? "")]),
  );
}
