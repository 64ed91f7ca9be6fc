// Every way `register()` can fail leaves the blocking policy registered: OpenClaw's loader records
// a throw from register() and carries on, so a policy registered after the throw would never be
// and every tool call would run unchecked. Here OpenClaw's plugin API is a stand-in whose parts
// fail one at a time (the same paths run against the real gateway in e2e.test.ts).

import * as assert from "node:assert/strict";
import * as path from "node:path";
import { describe, it } from "node:test";

import plugin from "../src/index";
import { until } from "./harness";

interface Registered {
  evaluate: (event: unknown, ctx: unknown) => Promise<unknown>;
}

/** A stand-in for OpenClaw's plugin API; `fail` names the part that throws. */
function fakeApi(config: unknown, fail?: "on" | "pluginConfig" | "runtime") {
  const policies: Registered[] = [];
  const logs: string[] = [];
  const log = (level: string) => (line: string) => logs.push(`${level}: ${line}`);
  const api = {
    id: "hookvisor",
    logger: { info: log("info"), warn: log("warn"), error: log("error"), debug: log("debug") },
    get pluginConfig() {
      if (fail === "pluginConfig") throw new Error("config unreadable");
      return config;
    },
    get runtime() {
      if (fail === "runtime") throw new Error("no runtime");
      return { version: "2026.9.6" };
    },
    registerTrustedToolPolicy(policy: Registered) {
      policies.push(policy);
    },
    on() {
      if (fail === "on") throw new Error("hooks unavailable");
    },
  };
  return { api, policies, logs };
}

async function decisionOf(policies: Registered[]) {
  assert.equal(policies.length, 1, "exactly one policy registered");
  return (await policies[0]!.evaluate({ toolName: "exec", params: { command: "ls" } }, {})) as {
    block?: boolean;
    blockReason?: string;
  };
}

describe("register()", () => {
  const missing = path.join("/tmp", `hookvisor-missing-${process.pid}.sock`);

  for (const fail of ["on", "pluginConfig"] as const) {
    it(`blocks every call when ${fail} throws`, async () => {
      const { api, policies, logs } = fakeApi({ socket: missing }, fail);
      plugin.register(api as never);
      const decision = await decisionOf(policies);
      assert.equal(decision.block, true);
      assert.match(decision.blockReason ?? "", /^hookvisor: the adapter failed to load \(.+\)/);
      assert.ok(logs.some((l) => l.startsWith("error: hookvisor: the adapter failed to load")));
    });
  }

  it("still asks hookvisor when the runtime cannot be read", async () => {
    // The runtime only gives the version and the workspace: without it the adapter still works.
    const { api, policies } = fakeApi({ socket: missing }, "runtime");
    plugin.register(api as never);
    const decision = await decisionOf(policies);
    assert.match(decision.blockReason ?? "", /hookvisor is unavailable at .*no socket there/);
  });

  for (const [what, config] of [
    ["a control character in the socket", { socket: "/run/hook\nvisor.sock" }],
    ["an unknown key", { sockt: "/run/hookvisor/hookvisor.sock" }],
    ["a deadline of 0", { deadlineMs: 0 }],
    ["a config that is not an object", "/run/hookvisor/hookvisor.sock"],
  ] as const) {
    it(`blocks every call on ${what}, with the reason`, async () => {
      const { api, policies, logs } = fakeApi(config);
      plugin.register(api as never);
      const decision = await decisionOf(policies);
      assert.equal(decision.block, true);
      assert.match(decision.blockReason ?? "", /^hookvisor: invalid config \(hookvisor: /);
      assert.ok(logs.some((l) => l.startsWith("error: hookvisor: ")));
    });
  }

  it("says once at load that hookvisor does not answer", async () => {
    const { api, logs } = fakeApi({ socket: missing });
    plugin.register(api as never);
    const line = await until("the load-time line", 10_000, () =>
      logs.find((l) => l.includes("does not answer")),
    );
    assert.equal(
      line,
      `warn: hookvisor does not answer at ${missing} (no socket there: is hookvisor running, and is this its socket?); every tool call will be blocked until it does`,
    );
  });
});
