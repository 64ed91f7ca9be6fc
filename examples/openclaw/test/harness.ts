// What the end-to-end tests run: `hookvisor serve` with the example plugins, the real OpenClaw
// (`openclaw agent --local`, `openclaw gateway run`) with this adapter and a probe plugin loaded,
// all state inside one temporary folder, and only 127.0.0.1 in use. Waits poll with deadlines.

import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

/** examples/openclaw (the adapter package), from dist/test/. */
export const ADAPTER_DIR = path.resolve(__dirname, "..", "..");
export const REPO_DIR = path.resolve(ADAPTER_DIR, "..", "..");
export const PROBE_DIR = path.join(ADAPTER_DIR, "test", "fixtures", "probe");
export const BIN_DIR = process.env.HOOKVISOR_BIN_DIR ?? path.join(REPO_DIR, "target", "debug");
export const OPENCLAW = path.join(ADAPTER_DIR, "node_modules", "openclaw", "openclaw.mjs");

/** Polls `probe` until it returns a value other than undefined, or fails after `timeoutMs`. */
export async function until<T>(
  what: string,
  timeoutMs: number,
  probe: () => T | undefined | Promise<T | undefined>,
  intervalMs = 50,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}

/**
 * A fresh temporary folder (short: Unix socket paths must fit 107 bytes), 0711: hookvisor runs
 * each plugin under a uid of its own, which must reach its directories inside.
 */
export function tempDir(prefix = "hvoc-"): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, 0o711);
  return dir;
}

let supervisors = 0;

/**
 * `plugin_uids` for one supervisor: a range no other supervisor of this process (nor, by its
 * pid, of another test process) has, so plugins of supervisors running at once never share a
 * uid (and its process count).
 */
function pluginUids(): string {
  const first = 20_000_000 + (process.pid % 50_000) * 200 + (supervisors++ % 20) * 10;
  return `${first}-${first + 9}`;
}

/** A child process with its output kept, and a way to wait for it. */
export class Proc {
  stdout = "";
  stderr = "";
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(readonly child: ChildProcess) {
    child.stdout?.on("data", (d: Buffer) => (this.stdout += d.toString()));
    child.stderr?.on("data", (d: Buffer) => (this.stderr += d.toString()));
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        this.exitCode = code ?? (signal ? -1 : null);
        resolve(this.exitCode);
      }),
    );
  }

  get output(): string {
    return `--- stdout ---\n${this.stdout}\n--- stderr ---\n${this.stderr}`;
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 5000): Promise<void> {
    if (this.exitCode !== undefined) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export interface SupervisorOptions {
  /** Lines of the deny-list plugin's file. */
  denyList?: string[];
  /** Tools path-guard keeps inside the workspace. */
  pathGuardTools?: string[];
  /** Tools the approval-gate plugin asks a human about (unset: no approval-gate). */
  approvalTools?: string[];
  /** approval-gate's APPROVAL_GATE_TIMEOUT_MS (unset: the contract's default, 120 s). */
  approvalTimeoutMs?: number;
}

/**
 * `hookvisor serve` with deny-list (trusted), path-guard, demo-crash and session-tagger, and
 * approval-gate when `approvalTools` is set.
 */
export class Supervisor {
  private proc: Proc | undefined;
  readonly socket: string;
  readonly configPath: string;

  constructor(
    readonly dir: string,
    options: SupervisorOptions = {},
  ) {
    const runtime = path.join(dir, "run");
    this.socket = path.join(runtime, "hookvisor.sock");
    const denyList = path.join(dir, "deny-list.txt");
    fs.writeFileSync(denyList, (options.denyList ?? ["tool forbidden_tool"]).join("\n") + "\n");
    const bin = (name: string) => JSON.stringify(path.join(BIN_DIR, name));
    const approvalEnv = [
      `APPROVAL_GATE_TOOLS = ${JSON.stringify((options.approvalTools ?? []).join(","))}`,
    ];
    if (options.approvalTimeoutMs !== undefined) {
      approvalEnv.push(`APPROVAL_GATE_TIMEOUT_MS = "${options.approvalTimeoutMs}"`);
    }
    this.configPath = path.join(dir, "hookvisor.toml");
    fs.writeFileSync(
      this.configPath,
      [
        "[supervisor]",
        `socket = ${JSON.stringify(this.socket)}`,
        `runtime_dir = ${JSON.stringify(runtime)}`,
        `state_dir = ${JSON.stringify(path.join(dir, "state"))}`,
        `plugin_uids = ${JSON.stringify(pluginUids())}`,
        "",
        "[hooks.before_tool_call]",
        "timeout_ms = 2000",
        "",
        "[[plugin]]",
        'name = "deny-list"',
        `command = ${bin("deny-list")}`,
        "trusted = true",
        "priority = 100",
        `env = { HOOKVISOR_DENY_LIST = ${JSON.stringify(denyList)} }`,
        "[plugin.sandbox]",
        `read = [${JSON.stringify(denyList)}]`,
        "",
        "[[plugin]]",
        'name = "path-guard"',
        `command = ${bin("path-guard")}`,
        "priority = 50",
        `env = { PATH_GUARD_TOOLS = ${JSON.stringify((options.pathGuardTools ?? ["probe_write"]).join(","))} }`,
        "",
        "[[plugin]]",
        'name = "demo-crash"',
        `command = ${bin("demo-crash")}`,
        "",
        "[[plugin]]",
        'name = "session-tagger"',
        `command = ${bin("session-tagger")}`,
        "",
        ...(options.approvalTools === undefined
          ? []
          : [
              "[[plugin]]",
              'name = "approval-gate"',
              `command = ${bin("approval-gate")}`,
              `env = { ${approvalEnv.join(", ")} }`,
              "",
            ]),
      ].join("\n"),
    );
  }

  /** Starts it and waits until every plugin is ready and the socket serves. */
  async start(): Promise<void> {
    const proc = new Proc(
      spawn(path.join(BIN_DIR, "hookvisor"), ["serve", "--config", this.configPath], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { PATH: process.env.PATH ?? "/usr/bin:/bin", RUST_LOG: "info" },
      }),
    );
    this.proc = proc;
    await until("hookvisor to serve", 20_000, () => {
      if (proc.exitCode !== undefined) {
        throw new Error(`hookvisor serve exited with ${proc.exitCode}\n${proc.output}`);
      }
      return /serving socket=/.test(proc.stderr + proc.stdout) ? true : undefined;
    });
  }

  get log(): string {
    return this.proc ? this.proc.stderr + this.proc.stdout : "";
  }

  async stop(): Promise<void> {
    await this.proc?.stop();
    this.proc = undefined;
  }
}

/** A free TCP port on 127.0.0.1. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface OpenClawOptions {
  modelBaseUrl: string;
  socket: string;
  /** The adapter's deadlineMs. */
  deadlineMs?: number;
  /** Load the adapter (false: the same setup without it, for the latency baseline). */
  withAdapter?: boolean;
  gatewayPort?: number;
  gatewayToken?: string;
  /** More keys of the adapter's config (host, reportIntervalMs, or a wrong value). */
  adapterConfig?: Record<string, unknown>;
  /** `tools.toolSearch` (default false: every schema goes to the model directly). */
  toolSearch?: unknown;
  /** More tools for `tools.allow`. */
  allowTools?: string[];
}

/** OpenClaw's HOME, state, config and workspace, all under `dir`. */
export class OpenClawHome {
  readonly workspace: string;
  readonly probeLog: string;
  readonly env: NodeJS.ProcessEnv;

  constructor(
    readonly dir: string,
    options: OpenClawOptions,
  ) {
    const home = path.join(dir, "home");
    this.workspace = path.join(dir, "workspace");
    this.probeLog = path.join(dir, "probe.jsonl");
    fs.mkdirSync(home, { recursive: true });
    fs.mkdirSync(this.workspace, { recursive: true });
    const withAdapter = options.withAdapter ?? true;
    const config = {
      gateway: {
        mode: "local",
        bind: "loopback",
        port: options.gatewayPort ?? 18789,
        auth: { mode: "token", token: options.gatewayToken ?? "hookvisor-test-token" },
      },
      agents: {
        defaults: { workspace: this.workspace, model: { primary: "fake/fake-model" } },
      },
      models: {
        mode: "merge",
        providers: {
          fake: {
            baseUrl: options.modelBaseUrl,
            apiKey: "fake-local",
            api: "openai-completions",
            models: [
              {
                id: "fake-model",
                name: "Fake model",
                reasoning: false,
                input: ["text"],
                contextWindow: 128000,
                maxTokens: 4096,
              },
            ],
          },
        },
      },
      // Unless asked, every tool schema goes to the model directly (no Tool Search indirection).
      tools: {
        allow: ["probe_write", "crash-me", ...(options.allowTools ?? [])],
        toolSearch: options.toolSearch ?? false,
      },
      // OpenClaw's own log goes to /tmp/openclaw/ unless told otherwise.
      logging: { file: path.join(dir, "openclaw.log") },
      plugins: {
        // Plugins loaded from a path are only loaded when allowed by id.
        allow: withAdapter ? ["hookvisor", "hookvisor-probe"] : ["hookvisor-probe"],
        load: { paths: withAdapter ? [ADAPTER_DIR, PROBE_DIR] : [PROBE_DIR] },
        entries: {
          ...(withAdapter
            ? {
                hookvisor: {
                  enabled: true,
                  config: {
                    socket: options.socket,
                    deadlineMs: options.deadlineMs ?? 5000,
                    ...options.adapterConfig,
                  },
                },
              }
            : {}),
          "hookvisor-probe": { enabled: true, config: { log: this.probeLog } },
        },
      },
    };
    const configPath = path.join(dir, "openclaw.json");
    fs.writeFileSync(configPath, JSON.stringify(config, null, 2));
    this.env = {
      PATH: `${path.dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      HOME: home,
      OPENCLAW_STATE_DIR: path.join(dir, "state"),
      OPENCLAW_CONFIG_PATH: configPath,
      OPENCLAW_DISABLE_BONJOUR: "1",
      NO_COLOR: "1",
      TMPDIR: dir,
    };
  }

  /** The tool runs the probe plugin recorded, in order. */
  probeRuns(): Array<{ tool: string; params: Record<string, unknown> }> {
    if (!fs.existsSync(this.probeLog)) return [];
    return fs
      .readFileSync(this.probeLog, "utf8")
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line));
  }

  /** Starts `openclaw ARGS` in the workspace with this home's environment. */
  spawn(args: string[]): Proc {
    return new Proc(
      spawn(process.execPath, [OPENCLAW, ...args], {
        cwd: this.workspace,
        env: this.env,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
  }

  /** One `openclaw agent --local` turn; resolves when it exits (killed after `timeoutMs`). */
  async agentLocal(message: string, timeoutMs = 120_000): Promise<Proc> {
    const proc = this.spawn([
      "agent",
      "--local",
      "--agent",
      "main",
      "--message",
      message,
      "--json",
    ]);
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
    await proc.exited;
    clearTimeout(timer);
    return proc;
  }
}

/** `openclaw gateway run --port PORT` from `home`, once `/readyz` answers 200 (stopped again if
 * it never does). */
export async function startGateway(
  home: { spawn(args: string[]): Proc },
  port: number,
): Promise<Proc> {
  const gateway = home.spawn(["gateway", "run", "--port", String(port)]);
  try {
    await until(
      "the gateway to be ready",
      120_000,
      async () => {
        if (gateway.exitCode !== undefined) {
          throw new Error(`the gateway exited with ${gateway.exitCode}\n${gateway.output}`);
        }
        try {
          const response = await fetch(`http://127.0.0.1:${port}/readyz`);
          return response.status === 200 ? true : undefined;
        } catch {
          return undefined;
        }
      },
      200,
    );
  } catch (error) {
    await gateway.stop();
    throw error;
  }
  return gateway;
}
