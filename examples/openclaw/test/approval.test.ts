// Plugin approvals end to end: a real `hookvisor serve` whose approval-gate plugin asks about every
// `probe_write`, a real `openclaw gateway run`, and agent turns the fake model drives. A turn that
// an operator client which can approve (test/operator.ts) starts over the gateway (`chat.send`, as
// the Control UI does) raises OpenClaw's plugin approval; that client answers it with
// `plugin.approval.resolve`, or lets it time out. The entry points with no approval route refuse
// the call at once. Every assertion is on an outcome: the file the tool wrote or did not write,
// the tool result the model got back, the answer of `POST /tools/invoke`.

import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
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
const TOKEN = "hookvisor-approval-token";
/** approval-gate's timeout: ample for the approver's answer, short enough to wait out. */
const APPROVAL_TIMEOUT_MS = 6000;
/** What OpenClaw answers when the turn has no surface that could approve. */
const NO_SURFACE =
  "Plugin approval unavailable: non-interactive CLI runs have no approval-capable initiating surface.";

interface ApprovalRequested {
  id: string;
  createdAtMs: number;
  expiresAtMs: number;
  request: {
    pluginId: string;
    title: string;
    description: string;
    severity: string;
    toolName: string;
    runId: string;
    allowedDecisions: string[];
  };
}

interface ApprovalResolved {
  id: string;
  decision: string;
  ts: number;
}

type Message = {
  ready?: true;
  id?: number;
  ok?: boolean;
  result?: unknown;
  error?: string;
  event?: string;
  payload?: Record<string, unknown>;
  closed?: number;
  connectError?: string;
};

/** The test's side of test/operator.ts: requests in, messages out, waits with deadlines. */
class Operator {
  private nextId = 1;

  private constructor(private readonly proc: Proc) {}

  /** Connects one; `canApprove: false` leaves out the `approvals` capability. */
  static async start(home: OpenClawHome, port: number, canApprove = true): Promise<Operator> {
    const args = [path.join(__dirname, "operator.js"), `ws://127.0.0.1:${port}`, TOKEN];
    const proc = new Proc(
      spawn(process.execPath, canApprove ? args : [...args, "no-approvals"], {
        cwd: home.workspace,
        env: home.env,
        stdio: ["pipe", "pipe", "pipe"],
      }),
    );
    const operator = new Operator(proc);
    await operator.waitFor("the operator client to connect", 60_000, (m) =>
      m.ready ? true : undefined,
    );
    return operator;
  }

  /** The messages of every complete line so far. */
  private messages(): Message[] {
    const stdout = this.proc.stdout;
    return stdout
      .slice(0, stdout.lastIndexOf("\n") + 1)
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => JSON.parse(line) as Message);
  }

  private waitFor<T>(what: string, timeoutMs: number, match: (m: Message) => T | undefined) {
    return until(what, timeoutMs, () => {
      for (const message of this.messages()) {
        if (message.connectError !== undefined || message.closed !== undefined) {
          throw new Error(`the operator client lost the gateway\n${this.proc.output}`);
        }
        const value = match(message);
        if (value !== undefined) return value;
      }
      if (this.proc.exitCode !== undefined) {
        throw new Error(
          `the operator client exited with ${this.proc.exitCode}\n${this.proc.output}`,
        );
      }
      return undefined;
    });
  }

  /** Calls a gateway method on the client's connection; throws the gateway's error. */
  async request(method: string, params: unknown): Promise<unknown> {
    const id = this.nextId++;
    this.proc.child.stdin?.write(JSON.stringify({ id, method, params }) + "\n");
    const reply = await this.waitFor(`the answer to ${method}`, 30_000, (m) =>
      m.id === id ? m : undefined,
    );
    if (!reply.ok) throw new Error(`${method}: ${reply.error}`);
    return reply.result;
  }

  /** Starts an agent turn in its own session, as the Control UI does; returns its run id. */
  async chatSend(session: string, message: string): Promise<string> {
    const result = (await this.request("chat.send", {
      sessionKey: `agent:main:${session}`,
      message,
      idempotencyKey: randomUUID(),
    })) as { runId: string };
    return result.runId;
  }

  /** The approval the run asks for; fails at once, saying `why()`, if the run ends first. */
  approvalFor(runId: string, why: () => string): Promise<ApprovalRequested> {
    return this.waitFor(`an approval request of run ${runId}`, 60_000, (m) => {
      const payload = m.payload as ApprovalRequested | undefined;
      if (m.event === "plugin.approval.requested" && payload?.request.runId === runId) {
        return payload;
      }
      if (m.event === "chat" && m.payload?.runId === runId) {
        throw new Error(`run ${runId} ended without asking for approval: ${why()}`);
      }
      return undefined;
    });
  }

  resolution(id: string, timeoutMs: number): Promise<ApprovalResolved> {
    return this.waitFor(`approval ${id} to be resolved`, timeoutMs, (m) => {
      const payload = m.payload as ApprovalResolved | undefined;
      return m.event === "plugin.approval.resolved" && payload?.id === id ? payload : undefined;
    });
  }

  /** Waits for the run to end and returns how (`final`, `error` or `aborted`). */
  runEnd(runId: string): Promise<string> {
    return this.waitFor(`run ${runId} to end`, 60_000, (m) =>
      m.event === "chat" && m.payload?.runId === runId ? String(m.payload.state) : undefined,
    );
  }

  async stop(): Promise<void> {
    await this.proc.stop();
  }
}

describe("plugin approvals (openclaw gateway run)", () => {
  let dir: string;
  let model: FakeModel;
  let supervisor: Supervisor;
  let home: OpenClawHome;
  let gateway: Proc;
  let port: number;
  let operator: Operator;
  /** A home of its own for `openclaw agent --local`, which needs a state no gateway holds. */
  let local: OpenClawHome;
  let localTurn: Proc;

  /** Scripts one `probe_write` call for the case and returns the file it would write. */
  function scriptWrite(name: string, content: string): string {
    const target = path.join(home.workspace, `${name}.txt`);
    model.script(name, [{ toolCalls: [{ name: "probe_write", args: { path: target, content } }] }]);
    return target;
  }

  function toolResult(name: string): string {
    const results = model.toolResults(name);
    assert.equal(results.length, 1, `tool results of ${name}: ${JSON.stringify(results)}`);
    return results[0] as string;
  }

  /** The approval the case's run asks for (the tool result tells why when there is none). */
  function approvalOf(name: string, runId: string): Promise<ApprovalRequested> {
    return operator.approvalFor(
      runId,
      () => `tool results ${JSON.stringify(model.toolResults(name))}`,
    );
  }

  function ran(content: string): boolean {
    return home.probeRuns().some((run) => run.params.content === content);
  }

  /** Runs `openclaw ARGS` in `where` to its end (killed after two minutes). */
  async function cli(where: OpenClawHome, args: string[]): Promise<Proc> {
    const proc = where.spawn(args);
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), 120_000);
    await proc.exited;
    clearTimeout(timer);
    return proc;
  }

  before(async () => {
    assert.ok(
      fs.existsSync(path.join(BIN_DIR, "approval-gate")),
      `${BIN_DIR}/approval-gate is missing: cargo build -p hookvisor-examples`,
    );
    dir = tempDir();
    model = await FakeModel.start();
    supervisor = new Supervisor(dir, {
      approvalTools: ["probe_write"],
      approvalTimeoutMs: APPROVAL_TIMEOUT_MS,
    });
    await supervisor.start();
    // The embedded turn runs while the gateway starts (both take long to start), and is over
    // before the first test.
    local = new OpenClawHome(path.join(dir, "local"), {
      modelBaseUrl: model.baseUrl,
      socket: supervisor.socket,
    });
    model.script("local", [
      {
        toolCalls: [
          {
            name: "probe_write",
            args: { path: path.join(local.workspace, "local.txt"), content: "local" },
          },
        ],
      },
    ]);
    const localTurnDone = local.agentLocal("case:local write the file");
    port = await freePort();
    home = new OpenClawHome(dir, {
      modelBaseUrl: model.baseUrl,
      socket: supervisor.socket,
      gatewayPort: port,
      gatewayToken: TOKEN,
    });
    gateway = await startGateway(home, port);
    operator = await Operator.start(home, port);
    localTurn = await localTurnDone;
  });

  after(async () => {
    await operator?.stop();
    await gateway?.stop();
    await supervisor?.stop();
    await model?.close();
    if (dir) {
      if (KEEP) console.log(`kept ${dir}`);
      else fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("runs the call with its params once the approver allows it", async () => {
    const target = scriptWrite("approve", "approved");
    const runId = await operator.chatSend("approve", "case:approve write the file");
    const approval = await approvalOf("approve", runId);
    assert.equal(approval.request.pluginId, "hookvisor");
    assert.equal(approval.request.toolName, "probe_write");
    assert.equal(approval.request.title, "Run probe_write?");
    assert.equal(
      approval.request.description,
      `Agent 'main' wants to run the tool 'probe_write' with: ${JSON.stringify({ content: "approved", path: target })}`,
    );
    assert.equal(approval.request.severity, "warning");
    assert.deepEqual(approval.request.allowedDecisions, ["allow-once", "allow-always", "deny"]);
    assert.equal(approval.expiresAtMs - approval.createdAtMs, APPROVAL_TIMEOUT_MS);

    await operator.request("plugin.approval.resolve", { id: approval.id, decision: "allow-once" });
    assert.equal(await operator.runEnd(runId), "final");
    assert.equal(fs.readFileSync(target, "utf8"), "approved");
    assert.deepEqual(home.probeRuns().at(-1), {
      tool: "probe_write",
      params: { content: "approved", path: target },
    });
    assert.equal(toolResult("approve"), `wrote ${target}`);
  });

  it("does not run the call when the approver denies it", async () => {
    const target = scriptWrite("deny", "denied");
    const runId = await operator.chatSend("deny", "case:deny write the file");
    const approval = await approvalOf("deny", runId);
    await operator.request("plugin.approval.resolve", { id: approval.id, decision: "deny" });
    assert.equal(await operator.runEnd(runId), "final");
    assert.equal(fs.existsSync(target), false);
    assert.ok(!ran("denied"));
    assert.match(toolResult("deny"), /Denied by user\. The tool call did not run\./);
  });

  it("denies the call when nobody answers within the approval's timeout", async () => {
    const target = scriptWrite("timeout", "unanswered");
    const runId = await operator.chatSend("timeout", "case:timeout write the file");
    const approval = await approvalOf("timeout", runId);
    // OpenClaw closes an unanswered approval as denied when it expires.
    const resolved = await operator.resolution(approval.id, APPROVAL_TIMEOUT_MS + 30_000);
    assert.equal(resolved.decision, "deny");
    assert.ok(resolved.ts >= approval.expiresAtMs, JSON.stringify({ resolved, approval }));
    assert.equal(await operator.runEnd(runId), "final");
    assert.equal(fs.existsSync(target), false);
    assert.ok(!ran("unanswered"));
    assert.match(toolResult("timeout"), /Approval timed out/);
  });

  it("refuses the call at once on a turn started without operator.approvals", async () => {
    // `openclaw gateway call` asks only for the scope its method needs (operator.write).
    const target = scriptWrite("noscope", "noscope");
    const call = await cli(home, [
      "gateway",
      "call",
      "chat.send",
      "--params",
      JSON.stringify({
        sessionKey: "agent:main:noscope",
        message: "case:noscope write the file",
        idempotencyKey: randomUUID(),
      }),
      "--port",
      String(port),
      "--token",
      TOKEN,
      "--json",
    ]);
    assert.equal(call.exitCode, 0, call.output);
    const { runId } = JSON.parse(call.stdout) as { runId: string };
    assert.equal(await operator.runEnd(runId), "final");
    assert.equal(fs.existsSync(target), false);
    assert.ok(!ran("noscope"));
    assert.match(toolResult("noscope"), /Plugin approval required \(gateway unavailable\)/);
  });

  it("refuses the call at once on `openclaw agent` through the gateway", async () => {
    const target = scriptWrite("cli", "cli");
    const turn = await cli(home, [
      "agent",
      "--session-key",
      "agent:main:cli",
      "--message",
      "case:cli write the file",
      "--json",
    ]);
    assert.equal(turn.exitCode, 0, turn.output);
    assert.equal(fs.existsSync(target), false);
    assert.ok(!ran("cli"));
    assert.ok(toolResult("cli").includes(NO_SURFACE), toolResult("cli"));
  });

  it("refuses the call at once on `openclaw agent --local`", () => {
    // The turn ran in `before`.
    assert.equal(localTurn.exitCode, 0, localTurn.output);
    assert.equal(fs.existsSync(path.join(local.workspace, "local.txt")), false);
    assert.deepEqual(local.probeRuns(), []);
    assert.ok(toolResult("local").includes(NO_SURFACE), toolResult("local"));
  });

  it("refuses the call at once on POST /tools/invoke, even with an approver connected", async () => {
    const target = path.join(home.workspace, "invoke.txt");
    const response = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
      method: "POST",
      headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ tool: "probe_write", args: { path: target, content: "invoke" } }),
    });
    const body = (await response.json()) as { ok: boolean; error?: Record<string, unknown> };
    assert.equal(response.status, 403, JSON.stringify(body));
    assert.deepEqual(body.error, {
      type: "tool_call_blocked",
      message: "Plugin approval unavailable (no approval route)",
      requiresApproval: true,
    });
    assert.equal(fs.existsSync(target), false);
    assert.ok(!ran("invoke"));
  });

  // Last: it disconnects the operator client that can approve.
  it("refuses the call at once when no client that can approve is connected", async () => {
    await operator.stop();
    const observer = await Operator.start(home, port, false);
    try {
      const target = scriptWrite("noroute", "noroute");
      const runId = await observer.chatSend("noroute", "case:noroute write the file");
      assert.equal(await observer.runEnd(runId), "final");
      assert.equal(fs.existsSync(target), false);
      assert.ok(!ran("noroute"));
      assert.match(toolResult("noroute"), /Plugin approval unavailable \(no approval route\)/);
    } finally {
      await observer.stop();
    }
  });
});
