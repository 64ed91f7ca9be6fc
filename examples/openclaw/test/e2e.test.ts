// End to end with the real OpenClaw: `openclaw agent --local` turns driven by a fake model, and
// `openclaw gateway run` called on `/tools/invoke`, both with this adapter asking a real
// `hookvisor serve` (deny-list, path-guard, demo-crash, session-tagger). Every assertion is on an
// outcome: the file the tool wrote or did not write, the params the tool ran with, the reason
// OpenClaw reported.

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import { FakeModel } from "./fake-model";
import { OpenClawHome, Proc, Supervisor, freePort, startGateway, tempDir, until } from "./harness";

const KEEP = process.env.HOOKVISOR_KEEP_TEMP === "1";

function cleanup(dir: string): void {
  if (KEEP) {
    console.log(`kept ${dir}`);
  } else {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function toolResult(results: string[], index: number): string {
  const result = results[index];
  assert.ok(result !== undefined, `no tool result #${index}; results: ${JSON.stringify(results)}`);
  return result;
}

describe("openclaw agent --local", () => {
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;
  let turn: Proc;

  before(async () => {
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir);
    await supervisor.start();
    home = new OpenClawHome(dir, { modelBaseUrl: model.baseUrl, socket: supervisor.socket });
    // One turn, one tool call per model step, each asked of hookvisor in turn.
    model.script("local", [
      {
        toolCalls: [
          {
            name: "probe_write",
            args: { path: `${home.workspace}/allowed.txt`, content: "allowed" },
          },
        ],
      },
      {
        toolCalls: [{ name: "probe_write", args: { path: "../escaped.txt", content: "escaped" } }],
      },
      {
        toolCalls: [
          { name: "probe_write", args: { path: "sub/rewritten.txt", content: "rewritten" } },
        ],
      },
      { toolCalls: [{ name: "crash-me", args: {} }] },
    ]);
    turn = await home.agentLocal("case:local run the probes");
  });

  after(async () => {
    await supervisor?.stop();
    await model?.close();
    if (dir) cleanup(dir);
  });

  it("finishes the turn", () => {
    assert.equal(turn.exitCode, 0, turn.output);
    assert.equal(model.toolResults("local").length, 4, turn.output);
  });

  it("runs an allowed call", () => {
    assert.equal(fs.readFileSync(path.join(home.workspace, "allowed.txt"), "utf8"), "allowed");
    assert.deepEqual(home.probeRuns()[0], {
      tool: "probe_write",
      params: { content: "allowed", path: path.join(home.workspace, "allowed.txt") },
    });
  });

  it("does not run a blocked call, and says which plugin blocked it", () => {
    assert.equal(fs.existsSync(path.join(dir, "escaped.txt")), false);
    assert.equal(fs.existsSync(path.join(home.workspace, "..", "escaped.txt")), false);
    assert.ok(!home.probeRuns().some((run) => run.params.content === "escaped"));
    assert.match(
      toolResult(model.toolResults("local"), 1),
      /blocked by plugin 'path-guard'.*escapes the workspace/,
    );
  });

  it("hands the rewritten params to the tool", () => {
    const rewritten = path.join(home.workspace, "sub", "rewritten.txt");
    assert.deepEqual(home.probeRuns()[1], {
      tool: "probe_write",
      params: { content: "rewritten", path: rewritten },
    });
    assert.equal(fs.readFileSync(rewritten, "utf8"), "rewritten");
  });

  it("blocks when a hookvisor plugin crashes", () => {
    assert.ok(!home.probeRuns().some((run) => run.tool === "crash-me"));
    // The plugin named once, and what happened.
    assert.match(
      toolResult(model.toolResults("local"), 3),
      /hookvisor: plugin 'demo-crash' crashed during the call: .*; the call is blocked/,
    );
  });

  it("blocks every call when hookvisor is down", async () => {
    await supervisor.stop();
    const target = path.join(home.workspace, "while-down.txt");
    model.script("down", [
      { toolCalls: [{ name: "probe_write", args: { path: target, content: "down" } }] },
    ]);
    const down = await home.agentLocal("case:down write while hookvisor is down");
    assert.equal(down.exitCode, 0, down.output);
    assert.equal(fs.existsSync(target), false);
    // One reason a person can act on: no grpc-js internals ("Resolution note: ").
    assert.match(
      toolResult(model.toolResults("down"), 0),
      /hookvisor is unavailable at \S+ \(no socket there: is hookvisor running, and is this its socket\?\); the call is blocked/,
    );
    assert.doesNotMatch(toolResult(model.toolResults("down"), 0), /Resolution note/);
    // And the adapter said so once at load, before the first call was blocked.
    const log = down.output + fs.readFileSync(path.join(dir, "openclaw.log"), "utf8");
    assert.match(
      log,
      /hookvisor does not answer at \S+ \(no socket there: is hookvisor running, and is this its socket\?\); every tool call will be blocked until it does/,
    );
  });
});

describe("openclaw gateway run: POST /tools/invoke", () => {
  const token = "hookvisor-e2e-token";
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;
  let gateway: Proc;
  let port: number;

  async function invoke(
    tool: string,
    args: Record<string, unknown>,
  ): Promise<{ status: number; body: { ok: boolean; error?: { message?: string } } }> {
    const response = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ tool, args }),
    });
    const body = (await response.json()) as { ok: boolean; error?: { message?: string } };
    return { status: response.status, body };
  }

  before(async () => {
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir, { denyList: ["tool forbidden_tool", "command rm -rf /"] });
    await supervisor.start();
    port = await freePort();
    home = new OpenClawHome(dir, {
      modelBaseUrl: model.baseUrl,
      socket: supervisor.socket,
      gatewayPort: port,
      gatewayToken: token,
    });
    gateway = await startGateway(home, port);
  });

  after(async () => {
    await gateway?.stop();
    await supervisor?.stop();
    await model?.close();
    if (dir) cleanup(dir);
  });

  it("runs an allowed call", async () => {
    const target = path.join(home.workspace, "gw-allowed.txt");
    const { status, body } = await invoke("probe_write", { path: target, content: "allowed" });
    assert.equal(status, 200, JSON.stringify(body));
    assert.equal(fs.readFileSync(target, "utf8"), "allowed");
  });

  it("does not run a blocked call, and says which plugin blocked it", async () => {
    const { status, body } = await invoke("probe_write", {
      path: "../gw-escaped.txt",
      content: "x",
    });
    assert.equal(status, 403, JSON.stringify(body));
    assert.match(body.error?.message ?? "", /blocked by plugin 'path-guard'/);
    assert.equal(fs.existsSync(path.join(dir, "gw-escaped.txt")), false);
    assert.ok(!home.probeRuns().some((run) => String(run.params.path).includes("gw-escaped")));
  });

  it("hands the rewritten params to the tool", async () => {
    const { status, body } = await invoke("probe_write", { path: "gw/sub.txt", content: "rw" });
    assert.equal(status, 200, JSON.stringify(body));
    const rewritten = path.join(home.workspace, "gw", "sub.txt");
    assert.deepEqual(home.probeRuns().at(-1), {
      tool: "probe_write",
      params: { content: "rw", path: rewritten },
    });
    assert.equal(fs.readFileSync(rewritten, "utf8"), "rw");
  });

  it("blocks when a hookvisor plugin crashes", async () => {
    const { status, body } = await invoke("crash-me", {});
    assert.equal(status, 403, JSON.stringify(body));
    assert.match(body.error?.message ?? "", /plugin 'demo-crash' crashed/);
    assert.ok(!home.probeRuns().some((run) => run.tool === "crash-me"));
  });

  it("forwards session_start to SessionCreated", async () => {
    // A session reset starts a new session: OpenClaw fires session_start, the adapter tells
    // hookvisor, and session-tagger logs it.
    const reset = home.spawn([
      "gateway",
      "call",
      "sessions.reset",
      "--params",
      JSON.stringify({ key: "agent:main:main" }),
      "--port",
      String(port),
      "--token",
      token,
      "--json",
    ]);
    assert.equal(await reset.exited, 0, reset.output);
    await until("session-tagger to log the new session", 15_000, () =>
      /session created: key=agent:main:main id=\S+ agent=main/.test(supervisor.log)
        ? true
        : undefined,
    );
  });

  it("blocks when hookvisor is down, and allows again once it is back", async () => {
    await supervisor.stop();
    const target = path.join(home.workspace, "gw-down.txt");
    const down = await invoke("probe_write", { path: target, content: "down" });
    assert.equal(down.status, 403, JSON.stringify(down.body));
    assert.match(down.body.error?.message ?? "", /hookvisor is unavailable at /);
    assert.equal(fs.existsSync(target), false);

    await supervisor.start();
    // The same channel reconnects (backoff at most 1 s); poll until a call goes through.
    const back = await until(
      "calls to go through again",
      15_000,
      async () => {
        const result = await invoke("probe_write", { path: target, content: "back" });
        return result.status === 200 ? result : undefined;
      },
      200,
    );
    assert.equal(back.status, 200);
    assert.equal(fs.readFileSync(target, "utf8"), "back");
  });
});
