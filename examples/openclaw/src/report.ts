// What this host tells hookvisor about itself (contract §4.5, `Hooks/ReportHost`): a hello when
// the adapter loads, then, in a gateway, a report every `reportIntervalMs` and a last one when the
// gateway stops. Each report carries, per tool, how often this process asked hookvisor (the
// trusted policy ran) and how often the tool ran (OpenClaw's `after_tool_call`): a tool that ran
// more often than it was asked about went around the gate, and hookvisor shows it.

import * as fs from "node:fs";
import * as path from "node:path";

import type { proto } from "@hookvisor/plugin";

import type { HooksClient } from "./client";
import type { AdapterConfig } from "./config";

/** The contract's cap on tools in one report (§4.5). */
export const MAX_REPORT_TOOLS = 256;
/** The contract's cap on a tool name (§8). */
const MAX_TOOL_BYTES = 256;
/** Where counts of tools past the cap go. */
export const OTHER_TOOL = "_other";
/** The tools that only dispatch another tool call, which OpenClaw asks about on its own (its
 * Tool Search's `tool_call`). */
export const DISPATCH_TOOLS: ReadonlySet<string> = new Set(["tool_call", "tool_search_code"]);

/** The adapter's own version, from its package.json ("" when it cannot be read). */
export const ADAPTER_VERSION: string = (() => {
  try {
    const file = path.join(__dirname, "..", "..", "package.json");
    const version: unknown = JSON.parse(fs.readFileSync(file, "utf8")).version;
    return typeof version === "string" ? version : "";
  } catch {
    return "";
  }
})();

/** Tool call ids remembered per kind, to count each call once. */
const SEEN_IDS = 4096;

/** Per tool: how often it was asked about and how often it ran, in this process. Each tool call
 * id counts once per kind, however many registrations of the adapter hear it. */
export class ToolCounts {
  private readonly counts = new Map<string, { asked: number; ran: number }>();
  private readonly seen = { asked: new Set<string>(), ran: new Set<string>() };

  /** Counts an ask; false when this call id was counted already. */
  asked(tool: string, callId?: string): boolean {
    if (!this.first("asked", callId)) return false;
    this.entry(tool).asked += 1;
    return true;
  }

  /** Counts a run; false when this call id was counted already. */
  ran(tool: string, callId?: string): boolean {
    if (!this.first("ran", callId)) return false;
    this.entry(tool).ran += 1;
    return true;
  }

  private first(kind: "asked" | "ran", callId: string | undefined): boolean {
    if (!callId) return true;
    const seen = this.seen[kind];
    if (seen.has(callId)) return false;
    seen.add(callId);
    if (seen.size > SEEN_IDS) {
      // The oldest id goes first (a Set iterates in insertion order).
      const oldest = seen.values().next().value;
      if (oldest !== undefined) seen.delete(oldest);
    }
    return true;
  }

  toReport(): proto.ToolCount[] {
    return [...this.counts].map(([tool, { asked, ran }]) => ({ tool, asked, ran }));
  }

  private entry(tool: string): { asked: number; ran: number } {
    let key = tool;
    if (
      key === "" ||
      Buffer.byteLength(key) > MAX_TOOL_BYTES ||
      (!this.counts.has(key) && this.counts.size >= MAX_REPORT_TOOLS - 1)
    ) {
      key = OTHER_TOOL;
    }
    let entry = this.counts.get(key);
    if (entry === undefined) {
      entry = { asked: 0, ran: 0 };
      this.counts.set(key, entry);
    }
    return entry;
  }
}

/** Who this host is, as its reports say. */
export interface HostIdentity {
  kind: string;
  version: string;
  policyId: string;
}

/** Sends this process's reports. */
export class Reporter {
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly client: HooksClient,
    private readonly config: AdapterConfig,
    private readonly identity: HostIdentity,
    readonly counts: ToolCounts,
  ) {}

  /** One report; resolves with hookvisor's receipt, rejects with the gRPC error. */
  send(intervalMs: number, stopping = false): Promise<proto.HostReportReceipt__Output> {
    return this.client.reportHost(
      {
        host: this.config.host,
        kind: this.identity.kind,
        version: this.identity.version,
        policy_id: this.identity.policyId,
        adapter_version: ADAPTER_VERSION,
        interval_ms: intervalMs,
        tools: this.counts.toReport(),
        stopping,
      },
      this.config.deadlineMs,
    );
  }

  /** Reports every `reportIntervalMs` from now on (the timer never keeps the process alive);
   * `onError` hears each failed report. */
  start(onError: (err: unknown) => void): void {
    this.pause();
    const interval = this.config.reportIntervalMs;
    const tick = () => {
      this.send(interval).catch(onError);
    };
    tick();
    this.timer = setInterval(tick, interval);
    this.timer.unref();
  }

  /** The last report: this host stops on purpose, so hookvisor will not call it silent. */
  async stop(): Promise<void> {
    this.pause();
    await this.send(0, true);
  }

  /** Stops the timer without a last report (another registration's reporter takes over). */
  pause(): void {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
    }
  }
}

/** What the adapter logs once at load: whether hookvisor answers, its version, its plugins. */
export function helloLine(socket: string, receipt: proto.HostReportReceipt__Output): string {
  const ready =
    receipt.plugins_ready === receipt.plugins
      ? `all ${receipt.plugins} plugins ready`
      : `${receipt.plugins_ready} of ${receipt.plugins} plugins ready`;
  return `hookvisor ${receipt.version} answers at ${socket}: ${ready}`;
}
