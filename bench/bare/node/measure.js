#!/usr/bin/env node
// Measures the TypeScript SDK's trivial plugin against the bare grpc-js server (bare.js), the same
// grpc-js client for both, alternating: rounds of back-to-back calls (p50 and p99), then calls
// after a 100 ms gap (p50), each server in turn. Prints one JSON object: every figure, the SDK's
// ratio to the bare server, and the load average before and after.
//
//   node bench/bare/node/measure.js [--rounds 10] [--calls 1000] [--spaced 30] [--bytes 256]
//        [--server NAME=SCRIPT[,NODE_FLAG...]]...
//
// Without --server: bare=bench/bare/node/bare.js and
// sdk=plugin-sdk/typescript/dist/test/fixtures/misbehave.js, both run by this same node binary.
// The request is the one `hookvisor bench` sends (tool `exec`, params JSON of --bytes bytes, a
// context); each server gets its own channel, started after the server answers Describe.
"use strict";

const { spawn } = require("node:child_process");
const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

const repo = path.join(__dirname, "..", "..", "..");
const modules = path.join(repo, "plugin-sdk", "typescript", "node_modules");
const grpc = require(path.join(modules, "@grpc", "grpc-js"));
const protoLoader = require(path.join(modules, "@grpc", "proto-loader"));

function options(argv) {
  const opts = { rounds: 10, calls: 1000, spaced: 30, bytes: 256, warmup: 200, servers: [] };
  for (let i = 0; i < argv.length; i += 2) {
    const [flag, value] = [argv[i], argv[i + 1]];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    if (flag === "--server") {
      const [name, rest] = value.split(/=(.*)/s);
      const [script, ...flags] = rest.split(",");
      opts.servers.push({ name, script: path.resolve(script), flags });
    } else if (["--rounds", "--calls", "--spaced", "--bytes", "--warmup"].includes(flag)) {
      opts[flag.slice(2)] = Number(value);
    } else {
      throw new Error(`unknown flag ${flag}`);
    }
  }
  if (opts.servers.length === 0) {
    opts.servers = [
      { name: "bare", script: path.join(__dirname, "bare.js"), flags: [] },
      {
        name: "sdk",
        script: path.join(repo, "plugin-sdk/typescript/dist/test/fixtures/misbehave.js"),
        flags: [],
      },
    ];
  }
  return opts;
}

const definition = protoLoader.loadSync(path.join(repo, "proto/hookvisor/v1/hookvisor.proto"), {
  keepCase: true,
});
const { Plugin } = grpc.loadPackageDefinition(definition).hookvisor.v1;

function request(bytes) {
  const base = JSON.stringify({ command: "ls -la /tmp", pad: "" });
  const pad = "x".repeat(Math.max(0, bytes - base.length));
  return {
    tool_name: "exec",
    params_json: JSON.stringify({ command: "ls -la /tmp", pad }),
    context: {
      agent_id: "main",
      session_key: "agent:main:bench",
      workspace_dir: "/home/agent/project",
    },
    session_metadata_json: "",
    deadline_ms: 5000,
  };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function unary(client, method, message) {
  return new Promise((resolve, reject) => {
    client[method](message, (err, answer) => (err ? reject(err) : resolve(answer)));
  });
}

/** Starts `server` as hookvisor would (cleared environment, cookie, socket); resolves when ready. */
async function start(server, dir) {
  const socket = path.join(dir, `${server.name}.sock`);
  const child = spawn(process.execPath, [...server.flags, server.script], {
    env: {
      HOOKVISOR_PLUGIN_SOCKET: socket,
      HOOKVISOR_PLUGIN_NAME: server.name,
      HOOKVISOR_PROTOCOL_VERSION: "1",
      HOOKVISOR_MAGIC_COOKIE: "d7f0c2a4-hookvisor-plugin-v1",
    },
    stdio: ["ignore", process.stderr, "inherit"],
  });
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${server.name} exited (${child.exitCode})`);
    if (fs.existsSync(socket)) {
      const client = new Plugin(`unix:${socket}`, grpc.credentials.createInsecure());
      try {
        await unary(client, "Describe", { protocol_version: 1 });
        return { ...server, child, client };
      } catch {
        client.close();
      }
    }
    if (Date.now() > deadline) throw new Error(`${server.name} not ready within 10 s`);
    await sleep(5);
  }
}

async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 3000);
  await exited;
  clearTimeout(timer);
}

async function timed(client, message) {
  const started = process.hrtime.bigint();
  await unary(client, "BeforeToolCall", message);
  return Number(process.hrtime.bigint() - started) / 1000;
}

/** The CPU time `pid` has used, in µs (user and system, from /proc). */
function cpuMicros(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
}
const CLOCK_TICKS = 100;

function quantile(samples, q) {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}
const median = (values) => quantile(values, 0.5);
const round = (x) => Math.round(x * 100) / 100;

async function main() {
  const opts = options(process.argv.slice(2));
  const message = request(opts.bytes);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "bare-node-"));
  const loadBefore = fs.readFileSync("/proc/loadavg", "utf8").trim();
  const servers = [];
  try {
    for (const server of opts.servers) servers.push(await start(server, dir));
    const per = Object.fromEntries(
      servers.map((s) => [s.name, { p50: [], p99: [], spaced: [], all: [], cpu: [] }]),
    );
    for (const s of servers) for (let i = 0; i < opts.warmup; i++) await timed(s.client, message);
    for (let r = 0; r < opts.rounds; r++) {
      // Alternate which server goes first, so neither always follows the other's burst.
      const order = r % 2 === 0 ? servers : [...servers].reverse();
      for (const s of order) {
        const samples = [];
        for (let i = 0; i < 50; i++) await timed(s.client, message);
        const cpuBefore = cpuMicros(s.child.pid);
        for (let i = 0; i < opts.calls; i++) samples.push(await timed(s.client, message));
        per[s.name].cpu.push((cpuMicros(s.child.pid) - cpuBefore) / opts.calls);
        per[s.name].p50.push(quantile(samples, 0.5));
        per[s.name].p99.push(quantile(samples, 0.99));
        per[s.name].all.push(...samples);
      }
      for (let i = 0; i < opts.spaced; i++) {
        for (const s of order) {
          await sleep(100);
          per[s.name].spaced.push(await timed(s.client, message));
        }
      }
    }
    const figures = { node: process.version, rounds: opts.rounds, calls: opts.calls };
    for (const s of servers) {
      const f = per[s.name];
      figures[s.name] = {
        p50_us: round(median(f.p50)),
        p99_us: round(median(f.p99)),
        pooled_p50_us: round(quantile(f.all, 0.5)),
        pooled_p99_us: round(quantile(f.all, 0.99)),
        pooled_p999_us: round(quantile(f.all, 0.999)),
        spaced_p50_us: round(median(f.spaced)),
        cpu_us_per_call: round(median(f.cpu)),
        p99_by_round_us: f.p99.map(round),
      };
    }
    const [base, ...others] = servers.map((s) => s.name);
    for (const name of others) {
      figures[`ratio_${name}`] = {
        p50: round(figures[name].p50_us / figures[base].p50_us),
        p99: round(figures[name].p99_us / figures[base].p99_us),
        spaced_p50: round(figures[name].spaced_p50_us / figures[base].spaced_p50_us),
        cpu: round(figures[name].cpu_us_per_call / figures[base].cpu_us_per_call),
      };
    }
    figures.loadavg_before = loadBefore;
    figures.loadavg_after = fs.readFileSync("/proc/loadavg", "utf8").trim();
    process.stdout.write(`${JSON.stringify(figures, null, 1)}\n`);
  } finally {
    // SIGTERM first, so a server run with --cpu-prof or --trace-gc writes its files.
    for (const s of servers) s.client.close();
    await Promise.all(servers.map((s) => stop(s.child)));
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`measure.js: ${err.message}\n`);
  process.exit(1);
});
