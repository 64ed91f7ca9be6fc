// The SDK as hookvisor sees it: fixture plugins started as processes, called over their socket.

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, test } from "node:test";

import { status } from "@grpc/grpc-js";

import { MAX_CALLS_IN_FLIGHT } from "../src";
import { Clients, failureOf, runToExit, spawnPlugin, tempDir, withTimeout } from "./harness";
import type { PluginProcess } from "./harness";

const NOT_BY_HAND =
  "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand\n";

describe("start", () => {
  test("without the cookie: exit 1 with the one line, nothing bound", async () => {
    for (const cookie of [undefined, "wrong"]) {
      const dir = tempDir();
      const socket = path.join(dir, "p.sock");
      const exit = await runToExit("sample.js", { HOOKVISOR_MAGIC_COOKIE: cookie }, { socket });
      assert.equal(exit.code, 1);
      assert.equal(exit.stderr, NOT_BY_HAND);
      assert.deepEqual(fs.readdirSync(dir), []);
    }
  });

  test("the cookie is checked before the plugin's init runs", async () => {
    const exit = await runToExit("sample.js", {
      HOOKVISOR_MAGIC_COOKIE: undefined,
      SAMPLE_FAIL_INIT: "1",
    });
    assert.equal(exit.stderr, NOT_BY_HAND);
  });

  test("a missing or relative socket path: exit 1", async () => {
    const unset = await runToExit("sample.js", { HOOKVISOR_PLUGIN_SOCKET: undefined });
    assert.equal(unset.code, 1);
    assert.match(unset.stderr, /^HOOKVISOR_PLUGIN_SOCKET is not set/);
    const relative = await runToExit("sample.js", { HOOKVISOR_PLUGIN_SOCKET: "p.sock" });
    assert.equal(relative.code, 1);
    assert.match(relative.stderr, /must be an absolute path, got "p.sock"/);
  });

  test("an init error: exit 1 with its message on one line", async () => {
    const exit = await runToExit("sample.js", { SAMPLE_FAIL_INIT: "yes" });
    assert.equal(exit.code, 1);
    assert.equal(exit.stderr, 'SAMPLE_FAIL_INIT is set to "yes"\n');
  });

  test("a stale socket is replaced", async () => {
    const socket = path.join(tempDir(), "p.sock");
    // A process killed while listening leaves its socket file behind.
    const script = `require("net").createServer().listen(${JSON.stringify(socket)}, () => process.kill(process.pid, "SIGKILL"))`;
    spawnSync(process.execPath, ["-e", script]);
    assert.ok(fs.lstatSync(socket).isSocket());
    const plugin = spawnPlugin("sample.js", {}, { socket });
    const clients = new Clients(socket);
    try {
      assert.equal((await clients.ready(plugin)).name, "sample");
    } finally {
      clients.close();
      plugin.kill();
    }
  });

  test("any other file at the socket path: exit 2, the file untouched", async () => {
    const socket = path.join(tempDir(), "p.sock");
    fs.writeFileSync(socket, "keep me");
    const exit = await runToExit("sample.js", {}, { socket });
    assert.equal(exit.code, 2);
    assert.match(exit.stderr, /^cannot bind the plugin socket .*p\.sock: /);
    assert.equal(fs.readFileSync(socket, "utf8"), "keep me");
  });
});

describe("serving", () => {
  let plugin: PluginProcess;
  let clients: Clients;

  before(async () => {
    plugin = spawnPlugin("sample.js");
    clients = new Clients(plugin.socket);
    await clients.ready(plugin);
  });

  after(() => {
    clients.close();
    plugin.kill();
  });

  test("Describe answers the plugin's info at protocol version 1", async () => {
    const info = await clients.ready(plugin);
    assert.equal(info.name, "sample");
    assert.equal(info.version, "1.2.3");
    assert.equal(info.protocol_version, 1);
    assert.deepEqual(
      info.hooks.map((h) => [h.hook, h.stage, h.priority, h.tools, h.timeout_ms]),
      [
        ["HOOK_BEFORE_TOOL_CALL", "STAGE_HOOK", 5, [], 250],
        ["HOOK_BEFORE_SESSION_CREATE", "STAGE_HOOK", 0, [], 0],
        ["HOOK_SESSION_CREATED", "STAGE_HOOK", 0, [], 0],
      ],
    );
  });

  test("health: SERVING for the server and hookvisor.v1.Plugin", async () => {
    assert.equal((await clients.healthCheck("")).status, "SERVING");
    assert.equal((await clients.healthCheck("hookvisor.v1.Plugin")).status, "SERVING");
    const unknown = await failureOf(clients.healthCheck("other.Service"));
    assert.equal(unknown.code, status.NOT_FOUND);
  });

  test("no opinion is an empty decision", async () => {
    const decision = await clients.beforeToolCall({ tool_name: "anything", params_json: "{}" });
    assert.equal(decision.block, false);
    assert.equal(decision.params_json, undefined);
    assert.equal(decision.require_approval, null);
  });

  test("block", async () => {
    const decision = await clients.beforeToolCall({ tool_name: "block-me", params_json: "{}" });
    assert.equal(decision.block, true);
    assert.equal(decision.block_reason, "sample blocks block-me");
  });

  test("rewrite sends the whole params object", async () => {
    const decision = await clients.beforeToolCall({
      tool_name: "rewrite-me",
      params_json: '{"path":"a","n":[1,{"x":null}]}',
    });
    assert.equal(decision.block, false);
    assert.deepEqual(JSON.parse(decision.params_json ?? ""), {
      path: "a",
      n: [1, { x: null }],
      rewritten: true,
    });
  });

  test("require approval carries every field", async () => {
    const decision = await clients.beforeToolCall({
      tool_name: "ask-me",
      params_json: '{"command":"git push"}',
    });
    assert.deepEqual(decision.require_approval, {
      title: "Run ask-me?",
      description: "command: git push",
      severity: "SEVERITY_CRITICAL",
      timeout_ms: 30000,
      allowed_decisions: ["APPROVAL_DECISION_ALLOW_ONCE", "APPROVAL_DECISION_DENY"],
    });
    assert.equal(decision.block, false);
  });

  test("the handler sees parsed params, metadata, context and deadline", async () => {
    const decision = await clients.beforeToolCall({
      tool_name: "echo",
      params_json: '{"command":"ls","deep":{"a":[true]}}',
      session_metadata_json: '{"seen":2}',
      context: { workspace_dir: "/srv/ws", agent_id: "main" },
      deadline_ms: 250,
    });
    assert.deepEqual(JSON.parse(decision.block_reason), {
      tool: "echo",
      params: { command: "ls", deep: { a: [true] } },
      metadata: { seen: 2 },
      deadlineMs: 250,
      workspaceDir: "/srv/ws",
      agentId: "main",
      requestId: "",
      traceparent: "",
    });
    const bare = await clients.beforeToolCall({ tool_name: "echo", params_json: "{}" });
    assert.deepEqual(JSON.parse(bare.block_reason), {
      tool: "echo",
      params: {},
      metadata: null,
      deadlineMs: 0,
      workspaceDir: "",
      agentId: "",
      requestId: "",
      traceparent: "",
    });
    const tagged = await clients.beforeToolCall(
      { tool_name: "echo", params_json: "{}" },
      5000,
      "req-9",
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    );
    const ids = JSON.parse(tagged.block_reason);
    assert.equal(ids.requestId, "req-9");
    assert.equal(ids.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
  });

  test("params that are not a JSON object: INVALID_ARGUMENT naming the field", async () => {
    for (const bad of ["[1,2]", '"x"', "null", "", "{not json"]) {
      const err = await failureOf(clients.beforeToolCall({ tool_name: "echo", params_json: bad }));
      assert.equal(err.code, status.INVALID_ARGUMENT, bad);
      assert.match(err.details, /params_json/, bad);
    }
    const err = await failureOf(
      clients.beforeToolCall({
        tool_name: "echo",
        params_json: "{}",
        session_metadata_json: "{oops",
      }),
    );
    assert.equal(err.code, status.INVALID_ARGUMENT);
    assert.match(err.details, /session_metadata_json/);
  });

  test("a handler that throws answers a non-OK status and the plugin keeps serving", async () => {
    const thrown = await failureOf(
      clients.beforeToolCall({ tool_name: "throw-me", params_json: "{}" }),
    );
    assert.equal(thrown.code, status.UNKNOWN);
    assert.equal(thrown.details, "before_tool_call failed: sample cannot decide");
    const refused = await failureOf(
      clients.beforeToolCall({ tool_name: "refuse-me", params_json: "{}" }),
    );
    assert.equal(refused.code, status.PERMISSION_DENIED);
    const observed = await failureOf(clients.sessionCreated({ session_id: "throw" }));
    assert.equal(observed.code, status.UNKNOWN);
    assert.equal(
      (await clients.beforeToolCall({ tool_name: "block-me", params_json: "{}" })).block,
      true,
    );
    const logged = /^before_tool_call failed: sample cannot decide$/m;
    assert.match(await plugin.stderrMatching(logged), logged);
  });

  test("session hooks: block, patch, observe", async () => {
    const blocked = await clients.beforeSessionCreate({ agent_id: "guest" });
    assert.equal(blocked.block, true);
    assert.equal(blocked.block_reason, "guests may not start sessions");
    const patched = await clients.beforeSessionCreate({
      agent_id: "main",
      session_metadata_json: "[1]",
    });
    assert.equal(patched.block, false);
    assert.deepEqual(JSON.parse(patched.metadata_json ?? ""), { agent: "main", previous: [1] });
    assert.deepEqual(await clients.sessionCreated({ session_id: "s1" }), {});
  });

  test("a hung call does not hold up other calls", async () => {
    const hung = failureOf(
      clients.beforeToolCall({ tool_name: "hang-me", params_json: "{}" }, 300),
    );
    const answered = await clients.beforeToolCall({ tool_name: "block-me", params_json: "{}" });
    assert.equal(answered.block, true);
    assert.equal((await hung).code, status.DEADLINE_EXCEEDED);
  });

  test("call.signal aborts when the call is cancelled, never after an answer", async () => {
    const watch = (ms: number, timeoutMs: number, requestId: string) =>
      clients.beforeToolCall(
        { tool_name: "watch-me", params_json: JSON.stringify({ ms }) },
        timeoutMs,
        requestId,
      );
    // grpc-js reports every call as cancelled once its stream closes, answered ones too.
    assert.equal((await watch(0, 5000, "answered")).block, false);
    const started = Date.now();
    assert.equal((await failureOf(watch(10_000, 200, "cancelled"))).code, status.DEADLINE_EXCEEDED);
    const stderr = await plugin.stderrMatching(/aborted: cancelled\n/);
    assert.match(stderr, /aborted: cancelled\n/);
    assert.ok(Date.now() - started < 5000, "the handler saw the cancel long before its 10 s");
    assert.doesNotMatch(stderr, /aborted: answered/);
  });
});

describe("bounds", () => {
  test(`past ${MAX_CALLS_IN_FLIGHT} unfinished handlers, calls get RESOURCE_EXHAUSTED`, async () => {
    const plugin = spawnPlugin("sample.js");
    const clients = new Clients(plugin.socket);
    try {
      await clients.ready(plugin);
      const hung = Array.from({ length: MAX_CALLS_IN_FLIGHT }, () =>
        failureOf(clients.beforeToolCall({ tool_name: "hang-me", params_json: "{}" }, 500)),
      );
      for (const err of await Promise.all(hung)) {
        assert.equal(err.code, status.DEADLINE_EXCEEDED);
      }
      // The cancelled handlers still run (JavaScript cannot stop them), so they keep their slots.
      const refused = await failureOf(
        clients.beforeToolCall({ tool_name: "block-me", params_json: "{}" }),
      );
      assert.equal(refused.code, status.RESOURCE_EXHAUSTED);
      assert.equal((await clients.healthCheck("")).status, "SERVING");
    } finally {
      clients.close();
      plugin.kill();
    }
  });
});

describe("stop", () => {
  for (const signal of ["SIGTERM", "SIGINT"] as const) {
    test(`${signal}: calls in flight finish, socket removed, exit 0`, async () => {
      const plugin = spawnPlugin("sample.js");
      const clients = new Clients(plugin.socket);
      try {
        await clients.ready(plugin);
        const slow = clients.beforeToolCall({ tool_name: "slow-me", params_json: '{"ms":500}' });
        await new Promise((resolve) => setTimeout(resolve, 100));
        plugin.child.kill(signal);
        assert.equal((await slow).block_reason, "slow answer");
        assert.deepEqual(await withTimeout(plugin.exited, 3000, "no exit"), {
          code: 0,
          signal: null,
        });
        // Routine, so on stdout (hookvisor logs it at info); nothing on stderr (a warning).
        assert.equal(plugin.stdout, `received ${signal}; finishing calls in flight and exiting\n`);
        assert.equal(plugin.stderr, "");
        assert.equal(fs.existsSync(plugin.socket), false);
      } finally {
        clients.close();
        plugin.kill();
      }
    });
  }

  test("SIGTERM with a hung call: exit 0 within the drain limit", async () => {
    const plugin = spawnPlugin("sample.js");
    const clients = new Clients(plugin.socket);
    try {
      await clients.ready(plugin);
      const hung = failureOf(
        clients.beforeToolCall({ tool_name: "hang-me", params_json: "{}" }, 10000),
      );
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = Date.now();
      plugin.child.kill("SIGTERM");
      const exit = await withTimeout(plugin.exited, 3000, "no exit");
      const took = Date.now() - started;
      assert.deepEqual(exit, { code: 0, signal: null });
      assert.ok(took >= 1400 && took < 2500, `exited after ${took} ms`);
      assert.equal(plugin.stdout, "received SIGTERM; finishing calls in flight and exiting\n");
      assert.equal(plugin.stderr, "calls still running after 1500 ms; exiting anyway\n");
      assert.equal(fs.existsSync(plugin.socket), false);
      assert.notEqual((await hung).code, status.OK);
    } finally {
      clients.close();
      plugin.kill();
    }
  });

  test("SIGTERM with stdout closed (EPIPE): still exit 0, nothing on stderr", async () => {
    const plugin = spawnPlugin("sample.js");
    const clients = new Clients(plugin.socket);
    try {
      await clients.ready(plugin);
      // The reading end closed: the stop line's write fails with EPIPE.
      plugin.child.stdout?.destroy();
      plugin.child.kill("SIGTERM");
      assert.deepEqual(await withTimeout(plugin.exited, 3000, "no exit"), {
        code: 0,
        signal: null,
      });
      assert.equal(plugin.stderr, "");
      assert.equal(fs.existsSync(plugin.socket), false);
    } finally {
      clients.close();
      plugin.kill();
    }
  });
});

describe("misbehave fixture", () => {
  test("runs by its shebang; hang-me never answers, crash-me exits 101 mid-call", async () => {
    const plugin = spawnPlugin("misbehave.js", { PATH: process.env.PATH }, { direct: true });
    const clients = new Clients(plugin.socket);
    try {
      const info = await clients.ready(plugin);
      assert.equal(info.name, "configured-name", "an unnamed plugin describes its configured name");
      const hung = await failureOf(
        clients.beforeToolCall({ tool_name: "hang-me", params_json: "{}" }, 300),
      );
      assert.equal(hung.code, status.DEADLINE_EXCEEDED);
      assert.equal(
        (await clients.beforeToolCall({ tool_name: "other", params_json: "{}" })).block,
        false,
      );
      const crashed = await failureOf(
        clients.beforeToolCall({ tool_name: "crash-me", params_json: "{}" }),
      );
      assert.equal(crashed.code, status.UNAVAILABLE);
      assert.deepEqual(await withTimeout(plugin.exited, 3000, "no exit"), {
        code: 101,
        signal: null,
      });
    } finally {
      clients.close();
      plugin.kill();
    }
  });
});

describe("invalid answers", () => {
  // What a handler returned that is not one of the SDK's answers: never an empty decision ("no
  // opinion", which allows), always UNKNOWN naming it, which the supervisor counts as a failure.
  let plugin: PluginProcess;
  let clients: Clients;

  before(async () => {
    plugin = spawnPlugin("invalid.js");
    clients = new Clients(plugin.socket);
    await clients.ready(plugin);
  });

  after(() => {
    clients.close();
    plugin.kill();
  });

  const TOOL_HELPERS = "return allow(), block(reason), rewrite(params) or requireApproval(...)";
  const SESSION_HELPERS = "return session.allow(), session.block(reason) or session.patch(value)";
  const TOOL_CASES: Record<string, string> = {
    undefined: "undefined",
    null: "null",
    number: "the number 42",
    string: 'the string "allow"',
    boolean: "the boolean true",
    array: "an array",
    "empty-object": "an object that none of the SDK's helpers made (no keys)",
    blocked: 'an object that none of the SDK\'s helpers made (keys "blocked")',
    block: 'an object that none of the SDK\'s helpers made (keys "block", "block_reason")',
    spread:
      'an object that none of the SDK\'s helpers made (keys "params_json", "require_approval"; ' +
      "a spread copy of an answer is not one, join answers with combine())",
    "misspelt-key": 'a decision with the unknown key "blocked"',
    "wrong-type": 'a decision whose block is the string "yes", not a boolean',
    "approval-typo": 'a decision whose require_approval has the unknown key "tilte"',
    "session-answer": "an answer to a session (made by session.allow, block or patch)",
  };
  const SESSION_CASES: Record<string, string> = {
    undefined: "undefined",
    null: "null",
    number: "the number 42",
    string: 'the string "allow"',
    "empty-object": "an object that none of the SDK's helpers made (no keys)",
    blocked: 'an object that none of the SDK\'s helpers made (keys "blocked")',
    "session-misspelt": 'a decision with the unknown key "metadata"',
    "tool-answer": "an answer to a tool call (made by allow, block, rewrite...)",
  };

  for (const [tool, what] of Object.entries(TOOL_CASES)) {
    for (const key of [tool, `async-${tool}`]) {
      test(`beforeToolCall returning ${key === tool ? "" : "a promise of "}${what}: UNKNOWN`, async () => {
        const err = await failureOf(clients.beforeToolCall({ tool_name: key, params_json: "{}" }));
        assert.equal(err.code, status.UNKNOWN);
        assert.equal(
          err.details,
          `before_tool_call failed: handler beforeToolCall returned ${what}; ${TOOL_HELPERS}`,
        );
      });
    }
  }

  for (const [agent, what] of Object.entries(SESSION_CASES)) {
    for (const key of [agent, `async-${agent}`]) {
      test(`beforeSessionCreate returning ${key === agent ? "" : "a promise of "}${what}: UNKNOWN`, async () => {
        const err = await failureOf(clients.beforeSessionCreate({ agent_id: key }));
        assert.equal(err.code, status.UNKNOWN);
        assert.equal(
          err.details,
          `before_session_create failed: handler beforeSessionCreate returned ${what}; ${SESSION_HELPERS}`,
        );
      });
    }
  }

  test("each refusal is logged on stderr, and the plugin keeps serving", async () => {
    await failureOf(clients.beforeToolCall({ tool_name: "undefined", params_json: "{}" }));
    const logged = new RegExp(
      `^before_tool_call failed: handler beforeToolCall returned undefined; ${TOOL_HELPERS.replace(/[().]/g, "\\$&")}$`,
      "m",
    );
    assert.match(await plugin.stderrMatching(logged), logged);
    const allowed = await clients.beforeToolCall({ tool_name: "other", params_json: "{}" });
    assert.equal(allowed.block, false);
    assert.equal(allowed.params_json, undefined);
    assert.equal((await clients.beforeSessionCreate({ agent_id: "main" })).block, false);
  });

  test("answers joined with combine() are valid", async () => {
    const decision = await clients.beforeToolCall({
      tool_name: "combined",
      params_json: '{"a":1}',
    });
    assert.deepEqual(JSON.parse(decision.params_json ?? ""), { a: 1, checked: true });
    assert.equal(decision.require_approval?.title, "Run it?");
    assert.equal(decision.block, false);
  });

  test("sessionCreated's return value is ignored (its contract is void)", async () => {
    assert.deepEqual(await clients.sessionCreated({ session_id: "s1" }), {});
  });
});
