// Starts fixture plugins the way hookvisor does (cleared environment, cookie, socket in a fresh
// directory) and calls them over their Unix socket with grpc-js.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { protoPath as healthProtoPath } from "grpc-health-check";

import { MAGIC_COOKIE, loadHookvisorProto } from "../src";
import type { proto } from "../src";

/** The compiled fixtures (this file runs from dist/test/). */
export const FIXTURES = path.join(__dirname, "fixtures");

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A fixture process and what it printed on stdout and stderr. */
export class PluginProcess {
  readonly exited: Promise<Exit>;
  private stdoutText = "";
  private stderrText = "";

  constructor(
    readonly child: ChildProcess,
    readonly socket: string,
  ) {
    child.stdout?.on("data", (chunk: Buffer) => (this.stdoutText += chunk.toString()));
    child.stderr?.on("data", (chunk: Buffer) => (this.stderrText += chunk.toString()));
    // "close", not "exit": after "exit" the last of stderr may still be in the pipe.
    this.exited = new Promise((resolve) =>
      child.on("close", (code, signal) => resolve({ code, signal })),
    );
  }

  get stdout(): string {
    return this.stdoutText;
  }

  get stderr(): string {
    return this.stderrText;
  }

  /** Waits up to `limitMs` for stderr to match `pattern` (it comes through a pipe, and may
   * arrive after an answer the plugin sent later); resolves with the stderr seen. */
  async stderrMatching(pattern: RegExp, limitMs = 5000): Promise<string> {
    const deadline = Date.now() + limitMs;
    while (!pattern.test(this.stderrText) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    return this.stderrText;
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill(signal);
    }
  }
}

/** A fresh private directory for one test's socket. */
export function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), "hv-ts-"));
}

/**
 * Spawns `fixture` (a file in FIXTURES) with hookvisor's environment, plus `env` (a value of
 * `undefined` removes a variable). `direct` runs the file itself (shebang) instead of `node FILE`;
 * `args` follow the file.
 */
export function spawnPlugin(
  fixture: string,
  env: Record<string, string | undefined> = {},
  options: { direct?: boolean; socket?: string; args?: string[] } = {},
): PluginProcess {
  const socket = options.socket ?? path.join(tempDir(), "plugin.sock");
  const fullEnv: Record<string, string> = {};
  const wanted: Record<string, string | undefined> = {
    HOOKVISOR_MAGIC_COOKIE: MAGIC_COOKIE,
    HOOKVISOR_PLUGIN_SOCKET: socket,
    HOOKVISOR_PLUGIN_NAME: "configured-name",
    HOOKVISOR_PROTOCOL_VERSION: "1",
    ...env,
  };
  for (const [key, value] of Object.entries(wanted)) {
    if (value !== undefined) fullEnv[key] = value;
  }
  const file = path.join(FIXTURES, fixture);
  const command = options.direct ? file : process.execPath;
  const args = [...(options.direct ? [] : [file]), ...(options.args ?? [])];
  const child = spawn(command, args, { env: fullEnv, stdio: ["ignore", "pipe", "pipe"] });
  return new PluginProcess(child, socket);
}

/** Runs a fixture expected to exit on its own; resolves with its exit and stderr. */
export async function runToExit(
  fixture: string,
  env: Record<string, string | undefined> = {},
  options: { socket?: string; args?: string[] } = {},
): Promise<Exit & { stderr: string }> {
  const plugin = spawnPlugin(fixture, env, options);
  const exit = await withTimeout(plugin.exited, 5000, "the plugin did not exit");
  return { ...exit, stderr: plugin.stderr };
}

/**
 * A client of the plugin's `hookvisor.v1.Plugin` and `grpc.health.v1.Health` services: on its Unix
 * socket, or at `target` with `credentials` (remote mode).
 */
export class Clients {
  readonly plugin: proto.PluginClient;
  readonly health: HealthClient;

  constructor(
    socket: string,
    remote?: {
      target: string;
      credentials: grpc.ChannelCredentials;
      options?: grpc.ChannelOptions;
    },
  ) {
    const { Plugin } = loadHookvisorProto();
    const target = remote?.target ?? `unix:${socket}`;
    const credentials = remote?.credentials ?? grpc.credentials.createInsecure();
    this.plugin = new Plugin(target, credentials, remote?.options);
    const Health = loadHealth();
    this.health = new Health(target, credentials, remote?.options);
  }

  close(): void {
    this.plugin.close();
    this.health.close();
  }

  /** Describe, once the plugin listens on its socket (fails if it exits first). */
  async ready(plugin: PluginProcess): Promise<proto.PluginInfo__Output> {
    let gone = false;
    const exited = plugin.exited.then((exit) => {
      gone = true;
      throw new Error(`the plugin exited (${JSON.stringify(exit)}): ${plugin.stderr}`);
    });
    // A plain connect: refused (or no file) until the plugin listens, even over a stale socket,
    // and without grpc-js's reconnect backoff.
    const listening = (async () => {
      while (!gone && !(await accepts(plugin.socket))) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();
    await withTimeout(Promise.race([listening, exited]), 5000, "the plugin did not listen");
    return unary((done) =>
      this.plugin.Describe({ protocol_version: 1 }, { deadline: deadline(5000) }, done),
    );
  }

  beforeToolCall(
    request: proto.BeforeToolCallRequest,
    timeoutMs = 5000,
    requestId?: string,
    traceparent?: string,
  ): Promise<proto.ToolCallDecision__Output> {
    const metadata = new grpc.Metadata();
    if (requestId !== undefined) {
      metadata.set("x-hookvisor-request-id", requestId);
    }
    if (traceparent !== undefined) {
      metadata.set("traceparent", traceparent);
    }
    return unary((done) =>
      this.plugin.BeforeToolCall(request, metadata, { deadline: deadline(timeoutMs) }, done),
    );
  }

  beforeSessionCreate(
    request: proto.BeforeSessionCreateRequest,
  ): Promise<proto.SessionDecision__Output> {
    return unary((done) =>
      this.plugin.BeforeSessionCreate(request, { deadline: deadline(5000) }, done),
    );
  }

  sessionCreated(request: proto.SessionCreatedEvent): Promise<proto.Ack__Output> {
    return unary((done) => this.plugin.SessionCreated(request, { deadline: deadline(5000) }, done));
  }

  healthCheck(service: string): Promise<{ status: string }> {
    return unary((done) => this.health.Check({ service }, { deadline: deadline(5000) }, done));
  }
}

interface HealthClient extends grpc.Client {
  Check(
    request: { service: string },
    options: grpc.CallOptions,
    callback: grpc.requestCallback<{ status: string }>,
  ): grpc.ClientUnaryCall;
}

type HealthConstructor = new (
  address: string,
  credentials: grpc.ChannelCredentials,
  options?: grpc.ChannelOptions,
) => HealthClient;

function loadHealth(): HealthConstructor {
  const definition = protoLoader.loadSync(healthProtoPath, {
    keepCase: true,
    enums: String,
    defaults: true,
  });
  const root = grpc.loadPackageDefinition(definition) as unknown as {
    grpc: {
      health: { v1: { Health: HealthConstructor } };
    };
  };
  return root.grpc.health.v1.Health;
}

function accepts(socket: string): Promise<boolean> {
  return new Promise((resolve) => {
    const connection = net.connect(socket);
    connection.on("connect", () => {
      connection.destroy();
      resolve(true);
    });
    connection.on("error", () => resolve(false));
  });
}

/** A unary call as a promise; rejects with the grpc-js ServiceError. */
export function unary<T>(invoke: (done: grpc.requestCallback<T>) => unknown): Promise<T> {
  return new Promise((resolve, reject) => {
    invoke((err, value) => (err ? reject(err) : resolve(value as T)));
  });
}

export function deadline(ms: number): Date {
  return new Date(Date.now() + ms);
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** The gRPC status code a call failed with. */
export async function failureOf(call: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await call;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("the call succeeded");
}
