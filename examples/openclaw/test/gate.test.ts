// Proof that the gate runs, against the real OpenClaw: the adapter says hello at load and logs
// whether hookvisor answers, a gateway reports every `reportIntervalMs` with its per-tool counts
// (asked, and ran from `after_tool_call`), `hookvisor status` lists the host with its calls per
// tool, a gateway that stops says so and one that dies goes silent; Tool Search's outer
// `tool_call` is marked as a dispatch so per-tool figures are not doubled. And a misconfigured
// adapter, loaded by the real gateway, blocks every call with the reason.

import * as assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { FakeModel } from "./fake-model";
import {
  BIN_DIR,
  OpenClawHome,
  Proc,
  Supervisor,
  freePort,
  startGateway,
  tempDir,
  until,
} from "./harness";

const KEEP = process.env.HOOKVISOR_KEEP_TEMP === "1";
const TOKEN = "hookvisor-gate-token";

interface ToolStatus {
  tool: string;
  calls: number;
  asked: number;
  ran: number;
  unasked_runs: number;
}
interface HostStatus {
  host: string;
  kind: string;
  version: string;
  policy_id: string;
  adapter_version: string;
  interval_ms: number;
  silent: boolean;
  stopping: boolean;
  calls: number;
  dispatch_calls: number;
  unasked_runs: number;
  tools: ToolStatus[];
}

/** `hookvisor status --json`'s hosts. */
function hosts(supervisor: Supervisor): HostStatus[] {
  const run = spawnSync(
    path.join(BIN_DIR, "hookvisor"),
    ["status", "--json", "--socket", supervisor.socket],
    { encoding: "utf8" },
  );
  assert.equal(run.status, 0, run.stderr);
  return (JSON.parse(run.stdout) as { hosts: HostStatus[] }).hosts;
}

function hostNamed(supervisor: Supervisor, name: string): HostStatus | undefined {
  return hosts(supervisor).find((h) => h.host === name);
}

function cleanup(dir: string): void {
  if (KEEP) console.log(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
}

async function invoke(
  port: number,
  tool: string,
  args: Record<string, unknown>,
): Promise<{ status: number; message: string }> {
  const response = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ tool, args }),
  });
  const body = (await response.json()) as { error?: { message?: string } };
  return { status: response.status, message: body.error?.message ?? "" };
}

describe("a gateway reports to hookvisor", () => {
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;
  let port: number;
  let gateway: Proc | undefined;

  before(async () => {
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir);
    await supervisor.start();
    port = await freePort();
    home = new OpenClawHome(dir, {
      modelBaseUrl: model.baseUrl,
      socket: supervisor.socket,
      gatewayPort: port,
      gatewayToken: TOKEN,
      adapterConfig: { host: "gw-e2e", reportIntervalMs: 200 },
    });
    gateway = await startGateway(home, port);
  });

  after(async () => {
    await gateway?.stop();
    await supervisor?.stop();
    await model?.close();
    if (dir) cleanup(dir);
  });

  it("logs at load that hookvisor answers, with its version and plugins", async () => {
    const log = () =>
      (gateway?.output ?? "") +
      (fs.existsSync(path.join(dir, "openclaw.log"))
        ? fs.readFileSync(path.join(dir, "openclaw.log"), "utf8")
        : "");
    await until("the load-time line", 30_000, () =>
      /hookvisor \S+ answers at \S+hookvisor\.sock: all 4 plugins ready/.test(log())
        ? true
        : undefined,
    );
  });

  it("is listed by hookvisor status as it said it is, and reports on its interval", async () => {
    const host = await until("the gateway's reports", 30_000, () => {
      const h = hostNamed(supervisor, "gw-e2e");
      return h && h.interval_ms === 200 ? h : undefined;
    });
    assert.equal(host.kind, "openclaw");
    assert.equal(host.version, "2026.9.6");
    assert.equal(host.policy_id, "hookvisor");
    assert.equal(host.adapter_version, "0.1.0");
    assert.equal(host.silent, false);
  });

  it("counts its calls per tool, and what ran matches what was asked", async () => {
    const target = path.join(home.workspace, "gate.txt");
    for (let i = 0; i < 2; i++) {
      const result = await invoke(port, "probe_write", { path: target, content: `n${i}` });
      assert.equal(result.status, 200, result.message);
    }
    const blocked = await invoke(port, "crash-me", {});
    assert.equal(blocked.status, 403);
    // One reason, naming the plugin once and saying what happened.
    assert.match(blocked.message, /^hookvisor: plugin 'demo-crash' crashed during the call/);
    // OpenClaw 2026.9.6 runs no after_tool_call for POST /tools/invoke: what it ran there is not
    // counted (agent turns are: the Tool Search case below), so only the asks show.
    const host = await until("the counts in a report", 15_000, () => {
      const h = hostNamed(supervisor, "gw-e2e");
      const write = h?.tools.find((t) => t.tool === "probe_write");
      const crash = h?.tools.find((t) => t.tool === "crash-me");
      return write?.asked === 2 && crash?.asked === 1 ? h : undefined;
    });
    const write = host.tools.find((t) => t.tool === "probe_write");
    assert.deepEqual(write, { tool: "probe_write", calls: 2, asked: 2, ran: 0, unasked_runs: 0 });
    const crash = host.tools.find((t) => t.tool === "crash-me");
    assert.deepEqual(crash, { tool: "crash-me", calls: 1, asked: 1, ran: 0, unasked_runs: 0 });
    assert.equal(host.unasked_runs, 0);
  });

  it("says it stops when the gateway stops, and is silent when it dies", async () => {
    await gateway?.stop();
    gateway = undefined;
    const stopped = await until("the last report", 15_000, () => {
      const h = hostNamed(supervisor, "gw-e2e");
      return h?.stopping ? h : undefined;
    });
    assert.equal(stopped.silent, false);

    gateway = await startGateway(home, port);
    await until("reports again", 30_000, () => {
      const h = hostNamed(supervisor, "gw-e2e");
      return h && !h.stopping && h.interval_ms === 200 ? h : undefined;
    });
    gateway.child.kill("SIGKILL");
    await gateway.exited;
    gateway = undefined;
    const silent = await until("the host to go silent", 15_000, () => {
      const h = hostNamed(supervisor, "gw-e2e");
      return h?.silent ? h : undefined;
    });
    assert.equal(silent.stopping, false);
  });
});

describe("Tool Search: the outer tool_call is a dispatch", () => {
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;

  before(async () => {
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir);
    await supervisor.start();
    home = new OpenClawHome(dir, {
      modelBaseUrl: model.baseUrl,
      socket: supervisor.socket,
      adapterConfig: { host: "local-e2e" },
      toolSearch: { mode: "tools" },
      allowTools: ["tool_search", "tool_describe", "tool_call"],
    });
  });

  after(async () => {
    await supervisor?.stop();
    await model?.close();
    if (dir) cleanup(dir);
  });

  it("asks about both calls, counts the inner tool once and the outer as a dispatch", async () => {
    const target = path.join(home.workspace, "searched.txt");
    model.script("search", [
      {
        toolCalls: [
          { name: "tool_call", args: { id: "probe_write", args: { path: target, content: "s" } } },
        ],
      },
    ]);
    const turn = await home.agentLocal("case:search call through tool search");
    assert.equal(turn.exitCode, 0, turn.output);
    assert.equal(fs.readFileSync(target, "utf8"), "s", model.toolResults("search").join("\n"));
    const host = hostNamed(supervisor, "local-e2e");
    assert.ok(host, JSON.stringify(hosts(supervisor)));
    assert.equal(host.dispatch_calls, 1, JSON.stringify(host));
    assert.equal(host.calls, 1, JSON.stringify(host));
    // The supervisor's calls per tool leave the dispatch out; the adapter's own counts (asked,
    // and ran from after_tool_call, reported at once outside a gateway) have both.
    assert.deepEqual(
      host.tools.map((t) => [t.tool, t.calls, t.asked, t.ran]),
      [
        ["probe_write", 1, 1, 1],
        ["tool_call", 0, 1, 1],
      ],
      JSON.stringify(host),
    );
    assert.equal(host.unasked_runs, 0);
  });
});

describe("a misconfigured adapter in the real gateway", () => {
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;
  let port: number;
  let gateway: Proc | undefined;

  before(async () => {
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir);
    await supervisor.start();
    port = await freePort();
    home = new OpenClawHome(dir, {
      modelBaseUrl: model.baseUrl,
      // A control character: grpc-js would throw on this target while the adapter registers.
      socket: `${supervisor.socket}\u0007`,
      gatewayPort: port,
      gatewayToken: TOKEN,
    });
    gateway = await startGateway(home, port);
  });

  after(async () => {
    await gateway?.stop();
    await supervisor?.stop();
    await model?.close();
    if (dir) cleanup(dir);
  });

  it("blocks every call with the reason", async () => {
    const target = path.join(home.workspace, "misconfigured.txt");
    const result = await invoke(port, "probe_write", { path: target, content: "x" });
    assert.equal(result.status, 403, result.message);
    assert.match(
      result.message,
      /^hookvisor: invalid config \(hookvisor: config 'socket' must not contain control characters\); the call is blocked$/,
    );
    assert.equal(fs.existsSync(target), false);
  });
});
