// The adapter as OpenClaw users install it: pack.sh makes the tarball, `openclaw plugins install
// npm-pack:TGZ` installs it into a fresh OpenClaw home with the npm registry unreachable, and the
// installed copy (not this checkout) then decides tool calls in `openclaw gateway run` with the
// configuration README.md's "Install" section shows, read from the README itself. Also what
// OpenClaw does when `hookvisor` is missing from `plugins.allow`: it warns without naming the
// setting, and `openclaw agent --local` runs tool calls without asking hookvisor.

import * as assert from "node:assert/strict";
import { spawn } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import * as JSON5 from "json5";

import { FakeModel } from "./fake-model";
import {
  ADAPTER_DIR,
  OPENCLAW,
  PROBE_DIR,
  Proc,
  Supervisor,
  freePort,
  startGateway,
  tempDir,
  until,
} from "./harness";

const KEEP = process.env.HOOKVISOR_KEEP_TEMP === "1";
const TOKEN = "hookvisor-install-token";

/** The README's minimal configuration: the first json5 block of its "## Install" section. */
interface DocumentedConfig {
  plugins: {
    allow: string[];
    entries: { hookvisor: { enabled: boolean; config: { socket: string } } };
  } & Record<string, unknown>;
}

function documentedConfig(): DocumentedConfig {
  const readme = fs.readFileSync(path.join(ADAPTER_DIR, "README.md"), "utf8");
  const section = readme.split(/^## /m).find((part) => part.startsWith("Install\n"));
  assert.ok(section, "README.md has no '## Install' section");
  const block = /^```json5\n([\s\S]*?)^```$/m.exec(section);
  assert.ok(block?.[1], "README.md's Install section has no json5 block");
  const config = JSON5.parse(block[1]) as DocumentedConfig;
  assert.ok(Array.isArray(config.plugins?.allow), "the README's config has no plugins.allow");
  assert.equal(typeof config.plugins.entries?.hookvisor?.config?.socket, "string");
  return config;
}

/** An OpenClaw home with nothing in it: HOME, state and config path all under `dir`. */
class FreshHome {
  readonly env: NodeJS.ProcessEnv;
  readonly stateDir: string;
  readonly configPath: string;
  readonly workspace: string;
  readonly probeLog: string;

  constructor(
    readonly dir: string,
    closedPort: number,
  ) {
    this.stateDir = path.join(dir, "state");
    this.configPath = path.join(dir, "openclaw.json");
    this.workspace = path.join(dir, "workspace");
    this.probeLog = path.join(dir, "probe.jsonl");
    const home = path.join(dir, "home");
    const bin = path.join(dir, "bin");
    for (const d of [home, bin, this.workspace]) fs.mkdirSync(d, { recursive: true });
    // OpenClaw runs `npm` itself (pack metadata, then `npm install` in its own npm project). The
    // Node in this repository's .venv ships a bin/npm that cannot find its files, so put a
    // working one first on PATH; OpenClaw would otherwise move node's directory ahead of it.
    const npmCli = path.resolve(
      path.dirname(process.execPath),
      "..",
      "lib",
      "node_modules",
      "npm",
      "bin",
      "npm-cli.js",
    );
    assert.ok(fs.existsSync(npmCli), `no npm next to ${process.execPath} (${npmCli})`);
    fs.writeFileSync(
      path.join(bin, "npm"),
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(npmCli)} "$@"\n`,
      { mode: 0o755 },
    );
    this.env = {
      PATH: `${bin}:${path.dirname(process.execPath)}:${process.env.PATH ?? "/usr/bin:/bin"}`,
      OPENCLAW_PATH_BOOTSTRAPPED: "1",
      HOME: home,
      OPENCLAW_STATE_DIR: this.stateDir,
      OPENCLAW_CONFIG_PATH: this.configPath,
      OPENCLAW_DISABLE_BONJOUR: "1",
      NO_COLOR: "1",
      TMPDIR: dir,
      // No registry: a port nothing listens on. The npm cache is the empty one under HOME.
      npm_config_registry: `http://127.0.0.1:${closedPort}/`,
      npm_config_update_notifier: "false",
    };
  }

  spawn(args: string[]): Proc {
    return new Proc(
      spawn(process.execPath, [OPENCLAW, ...args], {
        cwd: this.workspace,
        env: this.env,
        stdio: ["ignore", "pipe", "pipe"],
      }),
    );
  }

  async run(args: string[], timeoutMs = 120_000): Promise<Proc> {
    const proc = this.spawn(args);
    const timer = setTimeout(() => proc.child.kill("SIGKILL"), timeoutMs);
    await proc.exited;
    clearTimeout(timer);
    return proc;
  }

  /**
   * Writes `plugins` plus what only the test needs: a gateway on `port`, a workspace, the fake
   * model, the probe plugin (from plugins.load.paths, so allowed by id) and its tool.
   */
  writeConfig(plugins: DocumentedConfig["plugins"], port: number, model: FakeModel): void {
    const config = {
      gateway: { mode: "local", bind: "loopback", port, auth: { mode: "token", token: TOKEN } },
      agents: {
        defaults: { workspace: this.workspace, model: { primary: "fake/fake-model" } },
      },
      models: {
        mode: "merge",
        providers: {
          fake: {
            baseUrl: model.baseUrl,
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
      tools: { allow: ["probe_write"], toolSearch: false },
      logging: { file: path.join(this.dir, "openclaw.log") },
      plugins: {
        ...plugins,
        allow: [...plugins.allow, "hookvisor-probe"],
        load: { paths: [PROBE_DIR] },
        entries: {
          ...plugins.entries,
          "hookvisor-probe": { enabled: true, config: { log: this.probeLog } },
        },
      },
    };
    fs.writeFileSync(this.configPath, JSON.stringify(config, null, 2));
  }

  /** `openclaw gateway run` on `port`, once /readyz answers 200. */
  async startGateway(port: number): Promise<Proc> {
    return startGateway(this, port);
  }
}

interface InvokeResult {
  status: number;
  body: { ok: boolean; error?: { type?: string; message?: string } };
}

async function invoke(port: number, args: Record<string, unknown>): Promise<InvokeResult> {
  const response = await fetch(`http://127.0.0.1:${port}/tools/invoke`, {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify({ tool: "probe_write", args }),
  });
  return { status: response.status, body: (await response.json()) as InvokeResult["body"] };
}

/** `pack.sh DIR`: the tarball's path. */
async function pack(dir: string): Promise<string> {
  const proc = new Proc(
    spawn("bash", [path.join(ADAPTER_DIR, "pack.sh"), dir], { stdio: ["ignore", "pipe", "pipe"] }),
  );
  assert.equal(await proc.exited, 0, proc.output);
  return proc.stdout.trim();
}

let dir: string;
let tarball: string;

before(async () => {
  dir = tempDir("hvoi-");
  tarball = await pack(path.join(dir, "pack"));
});

after(() => {
  if (!dir) return;
  if (KEEP) console.log(`kept ${dir}`);
  else fs.rmSync(dir, { recursive: true, force: true });
});

describe("openclaw plugins install npm-pack:", () => {
  let supervisor: Supervisor;
  let model: FakeModel;
  let home: FreshHome;
  let install: Proc;

  before(async () => {
    const hvDir = path.join(dir, "hv");
    fs.mkdirSync(hvDir, { mode: 0o711 });
    supervisor = new Supervisor(hvDir);
    await supervisor.start();
    model = await FakeModel.start();
    home = new FreshHome(path.join(dir, "oc"), await freePort());
    install = await home.run([
      "plugins",
      "install",
      `npm-pack:${tarball}`,
      // Non-interactive: confirm the local source and accept the declared trusted tool policy.
      "--force",
      "--accept-capabilities",
    ]);
  });

  after(async () => {
    await supervisor?.stop();
    await model?.close();
  });

  it("packs hookvisor-openclaw-VERSION.tgz", () => {
    const { version } = JSON.parse(fs.readFileSync(path.join(ADAPTER_DIR, "package.json"), "utf8"));
    assert.equal(tarball, path.join(dir, "pack", `hookvisor-openclaw-${version}.tgz`));
    assert.ok(fs.statSync(tarball).isFile());
  });

  it("installs offline into OpenClaw's npm projects, dependencies bundled", () => {
    assert.equal(install.exitCode, 0, install.output);
    assert.match(install.stdout, /Installed plugin: hookvisor/);
    const projects = path.join(home.stateDir, "npm", "projects");
    const names = fs.readdirSync(projects).filter((name) => !name.startsWith("."));
    assert.equal(names.length, 1, `${projects}: ${names.join(", ")}`);
    assert.match(names[0] ?? "", /^hookvisor-openclaw-/);
    const installed = path.join(projects, names[0] ?? "", "node_modules", "@hookvisor", "openclaw");
    for (const file of [
      "openclaw.plugin.json",
      "dist/src/index.js",
      "node_modules/@grpc/grpc-js/package.json",
      "node_modules/@hookvisor/plugin/proto/hookvisor/v1/hookvisor.proto",
    ]) {
      assert.ok(fs.existsSync(path.join(installed, file)), `${installed}/${file} is missing`);
    }
    // The install writes the (until then absent) config: the plugin is enabled.
    const config = JSON.parse(fs.readFileSync(home.configPath, "utf8"));
    assert.deepEqual(config.plugins?.entries?.hookvisor, { enabled: true });
  });

  // Before the gateway: `agent --local` refuses to run while a gateway serves the same state.
  describe("without hookvisor in plugins.allow", () => {
    let turn: Proc;
    const target = () => path.join(home.dir, "unchecked.txt");

    before(async () => {
      const { plugins } = documentedConfig();
      plugins.entries.hookvisor.config.socket = supervisor.socket;
      plugins.allow = plugins.allow.filter((id) => id !== "hookvisor");
      home.writeConfig(plugins, await freePort(), model);
      // One tool call that hookvisor would block (path-guard: it leaves the workspace).
      model.script("unlisted", [
        { toolCalls: [{ name: "probe_write", args: { path: "../unchecked.txt", content: "x" } }] },
      ]);
      turn = await home.run([
        "agent",
        "--local",
        "--agent",
        "main",
        "--message",
        "case:unlisted",
        "--json",
      ]);
    });

    it("warns, without naming plugins.allow", () => {
      assert.match(
        turn.stderr,
        /\[config\] warnings: plugins\.entries\.hookvisor: plugin disabled \(not in allowlist\) but config is present/,
      );
      assert.doesNotMatch(turn.output, /plugins\.allow/);
    });

    it("agent --local does not load hookvisor: the call runs unchecked", () => {
      assert.equal(turn.exitCode, 0, turn.output);
      assert.deepEqual(model.toolResults("unlisted"), [`wrote ${target()}`]);
      assert.equal(fs.readFileSync(target(), "utf8"), "x");
    });
  });

  describe("with the README's configuration", () => {
    let gateway: Proc;
    let port: number;

    before(async () => {
      const { plugins } = documentedConfig();
      plugins.entries.hookvisor.config.socket = supervisor.socket;
      port = await freePort();
      home.writeConfig(plugins, port, model);
      gateway = await home.startGateway(port);
    });

    after(async () => {
      await gateway?.stop();
    });

    it("loads the installed copy", async () => {
      const list = await home.run(["plugins", "list", "--json"]);
      assert.equal(list.exitCode, 0, list.output);
      const plugin = (
        JSON.parse(list.stdout) as {
          plugins: Array<{ id: string; status: string; rootDir: string; origin: string }>;
        }
      ).plugins.find((p) => p.id === "hookvisor");
      assert.ok(plugin, list.stdout);
      assert.equal(plugin.status, "loaded");
      assert.equal(plugin.origin, "global");
      assert.match(
        plugin.rootDir,
        /\/npm\/projects\/hookvisor-openclaw-[^/]+\/node_modules\/@hookvisor\/openclaw$/,
      );
      assert.ok(plugin.rootDir.startsWith(home.stateDir), plugin.rootDir);
      assert.match(gateway.stdout, /http server listening \(\d+ plugins: [^)]*\bhookvisor\b/);
    });

    it("does not run a blocked call, and says which plugin blocked it", async () => {
      const { status, body } = await invoke(port, { path: "../escaped.txt", content: "x" });
      assert.equal(status, 403, JSON.stringify(body));
      assert.equal(body.error?.type, "tool_call_blocked");
      assert.match(body.error?.message ?? "", /^hookvisor: blocked by plugin 'path-guard'/);
      assert.equal(fs.existsSync(path.join(home.dir, "escaped.txt")), false);
    });

    it("runs an allowed call", async () => {
      const target = path.join(home.workspace, "allowed.txt");
      const { status, body } = await invoke(port, { path: target, content: "allowed" });
      assert.equal(status, 200, JSON.stringify(body));
      assert.equal(fs.readFileSync(target, "utf8"), "allowed");
    });
  });
});
