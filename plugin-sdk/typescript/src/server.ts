// The plugin process: handshake environment, socket (or remote mode's TLS port), gRPC and health
// services, signals, exit codes.

import * as fs from "node:fs";
import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import { HealthImplementation } from "grpc-health-check";

import { sessionAnswer, toolCallAnswer } from "./answer";
import { PluginError, SessionCreate, SessionCreated, ToolCall, messageOf } from "./call";
import type { PluginHandlers, PluginInfo } from "./generated";
import { toPluginInfo } from "./info";
import type { HookName } from "./info";
import type { Plugin } from "./plugin";
import { loadHookvisorProto } from "./proto";
import {
  REMOTE_LISTEN_ENV,
  Refusal,
  bindRemote,
  checkRemote,
  listeningLine,
  optionsFromEnv,
  refuseCookie,
} from "./remote";
import type { Remote, RemoteOptions } from "./remote";

/** The value hookvisor puts in `HOOKVISOR_MAGIC_COOKIE` (contract §2.2). */
export const MAGIC_COOKIE = "d7f0c2a4-hookvisor-plugin-v1";

/** What a process started by hand, without hookvisor's environment, prints before exiting 1. */
const NOT_BY_HAND =
  "this is a hookvisor plugin; it is started by hookvisor (see `hookvisor serve`), not run by hand";

/**
 * How long calls still in flight may finish after SIGTERM before the process exits anyway;
 * shorter than the supervisor's default grace period (2000 ms) so a hung handler cannot turn a
 * clean stop into a SIGKILL.
 */
export const DRAIN_LIMIT_MS = 1500;

/**
 * Hook handlers that may be unfinished at once. A handler whose call the supervisor cancelled
 * keeps its slot until its promise settles (JavaScript cannot stop it), so hung handlers cannot
 * pile up without limit: past this bound new calls get RESOURCE_EXHAUSTED (a failure, so a block)
 * until some finish, and the supervisor restarts a plugin whose calls keep timing out.
 */
export const MAX_CALLS_IN_FLIGHT = 128;

/** The gRPC service name the health service reports besides `""`. */
const PLUGIN_SERVICE = "hookvisor.v1.Plugin";

/** A plugin, or a function that builds one (reading its configuration) after the handshake checks. */
export type PluginSource = Plugin | (() => Plugin | Promise<Plugin>);

/** `run`'s options. */
export interface RunOptions {
  /**
   * Serve remotely with these settings (contract §2.6) rather than from the environment: TCP
   * with mutual TLS, as `HOOKVISOR_REMOTE_LISTEN` and the `HOOKVISOR_TLS_*` variables would.
   */
  remote?: RemoteOptions;
}

/**
 * Runs a hookvisor plugin process; never returns control to the caller's logic (the process exits).
 *
 * Checks `HOOKVISOR_MAGIC_COOKIE` (missing or wrong: one line on stderr, exit 1) and
 * `HOOKVISOR_PLUGIN_SOCKET` (must be absolute, else exit 1); then, if given a function, calls it to
 * build the plugin (a throw or rejection: its message on stderr, exit 1). Binds the socket
 * (replacing a stale socket file), serves `hookvisor.v1.Plugin` and `grpc.health.v1.Health` until
 * SIGTERM or SIGINT, then drains for at most `DRAIN_LIMIT_MS`, removes the socket and exits 0.
 * Bind errors: one line on stderr, exit 2.
 *
 * Remote mode, with `HOOKVISOR_REMOTE_LISTEN` set (or `options.remote`): no cookie (with the
 * cookie too: exit 1) and no socket file; serves on TCP with TLS from `HOOKVISOR_TLS_CERT` and
 * `HOOKVISOR_TLS_KEY`, requiring a client certificate that chains to `HOOKVISOR_TLS_CLIENT_CA`
 * (a missing variable, an unreadable file or a bad PEM: one line naming it, exit 1), and prints
 * `hookvisor plugin listening on HOST:PORT (TLS, client certificates required)` on stderr once it
 * listens, with the address bound.
 */
export function run(source: PluginSource, options: RunOptions = {}): void {
  main(source, options).then(
    (code) => process.exit(code),
    (err: unknown) => {
      printLine(`hookvisor plugin failed: ${messageOf(err)}`);
      process.exit(2);
    },
  );
}

async function main(source: PluginSource, options: RunOptions): Promise<number> {
  let target: Target;
  try {
    target = chooseTarget(options);
  } catch (err) {
    if (err instanceof Refusal) {
      printLine(err.message);
      return err.exitCode;
    }
    throw err;
  }

  // grpc-js logs its own errors on stderr; the one line this process prints says it better.
  // GRPC_VERBOSITY in the plugin's env still turns them on for debugging.
  if (process.env.GRPC_VERBOSITY === undefined) {
    grpc.setLogVerbosity(grpc.logVerbosity.NONE);
  }

  let plugin: Plugin;
  let info: PluginInfo;
  try {
    plugin = typeof source === "function" ? await source() : source;
    info = describe(plugin, process.env.HOOKVISOR_PLUGIN_NAME ?? "");
  } catch (err) {
    printLine(messageOf(err));
    return 1;
  }

  // Author code runs inside the same process as the server: a promise it forgot to await must
  // not take every other call down with it. Handler errors themselves never get here.
  process.on("unhandledRejection", (reason) => {
    printLine(`unhandled promise rejection (plugin keeps serving): ${messageOf(reason)}`);
  });
  const stopSignal = nextStopSignal();

  let running: RunningPlugin & { address?: string };
  try {
    running = await serveDescribed(plugin, info, target);
  } catch (err) {
    printLine(messageOf(err));
    return err instanceof Refusal ? err.exitCode : 2;
  }
  if (running.address !== undefined) {
    printLine(listeningLine(running.address));
  }

  // Stopping on a signal is routine, not a warning: this line goes to stdout, which hookvisor
  // logs at info (stderr at warn).
  printInfo(`received ${await stopSignal}; finishing calls in flight and exiting`);
  if (!(await running.stop(DRAIN_LIMIT_MS))) {
    printLine(`calls still running after ${DRAIN_LIMIT_MS} ms; exiting anyway`);
  }
  return 0;
}

/** Where to serve: hookvisor's Unix socket (a path), or remote mode's checked settings. */
type Target = string | Remote;

/** The target `run` serves on, from `options` or the environment; throws a `Refusal`. */
function chooseTarget(options: RunOptions): Target {
  if (options.remote !== undefined || process.env[REMOTE_LISTEN_ENV] !== undefined) {
    refuseCookie();
    return options.remote === undefined
      ? checkRemote(optionsFromEnv(), true)
      : checkRemote(options.remote, false);
  }
  if (process.env.HOOKVISOR_MAGIC_COOKIE !== MAGIC_COOKIE) {
    throw new Refusal(NOT_BY_HAND, 1);
  }
  const socketPath = process.env.HOOKVISOR_PLUGIN_SOCKET;
  if (socketPath === undefined || socketPath === "") {
    throw new Refusal(
      "HOOKVISOR_PLUGIN_SOCKET is not set; hookvisor sets it when it starts a plugin",
      1,
    );
  }
  if (!path.isAbsolute(socketPath)) {
    throw new Refusal(`HOOKVISOR_PLUGIN_SOCKET must be an absolute path, got "${socketPath}"`, 1);
  }
  return socketPath;
}

/** The first SIGTERM or SIGINT; later ones are ignored while the process drains. */
function nextStopSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    process.on("SIGTERM", resolve);
    process.on("SIGINT", resolve);
  });
}

/** A plugin being served by `serve`. */
export interface RunningPlugin {
  /**
   * Reports NOT_SERVING, stops accepting calls, lets calls in flight finish for at most `limitMs`,
   * then closes every connection and removes the socket. Resolves true if every call finished.
   */
  stop(limitMs?: number): Promise<boolean>;
}

/**
 * Serves `plugin` on the Unix socket `socketPath` without touching the environment, signals or
 * exit codes: the part of `run` that tests of a plugin can drive in-process. `Describe` answers
 * the plugin's own info.
 */
export async function serve(plugin: Plugin, socketPath: string): Promise<RunningPlugin> {
  return serveDescribed(plugin, describe(plugin, ""), socketPath);
}

/** A plugin being served remotely by `serveRemote`. */
export interface RemotePlugin extends RunningPlugin {
  /** The address bound, `host:port` (`[v6]:port`): with port 0, the port picked. */
  readonly address: string;
}

/**
 * Serves `plugin` on TCP with mutual TLS (contract §2.6) without touching the environment,
 * signals or exit codes: the part of remote mode that a program or a test can drive in-process.
 * Rejects with an error naming the option and the file for a bad setting, or the address when it
 * cannot be bound. `Describe` answers the plugin's own info.
 */
export async function serveRemote(plugin: Plugin, options: RemoteOptions): Promise<RemotePlugin> {
  const running = await serveDescribed(plugin, describe(plugin, ""), checkRemote(options, false));
  return running as RemotePlugin;
}

/** The plugin's `PluginInfo` (empty name: `configuredName`); warns about hooks with no handler. */
function describe(plugin: Plugin, configuredName: string): PluginInfo {
  const declared = plugin.info();
  const info = toPluginInfo(declared, configuredName);
  const handlers: Record<HookName, keyof Plugin> = {
    before_tool_call: "beforeToolCall",
    before_session_create: "beforeSessionCreate",
    session_created: "sessionCreated",
  };
  for (const registration of declared.hooks) {
    const method = handlers[registration.hook];
    if (typeof plugin[method] !== "function") {
      printLine(
        `warning: info() registers ${registration.hook} but the plugin has no ${method}(); ` +
          `it answers "no opinion"`,
      );
    }
  }
  return info;
}

async function serveDescribed(
  plugin: Plugin,
  info: PluginInfo,
  target: Target,
): Promise<RunningPlugin & { address?: string }> {
  const server = new grpc.Server({ "grpc.max_concurrent_streams": MAX_CALLS_IN_FLIGHT });
  const health = new HealthImplementation({ "": "SERVING", [PLUGIN_SERVICE]: "SERVING" });
  health.addToServer(server);
  server.addService(loadHookvisorProto().Plugin.service, handlers(plugin, info));
  let address: string | undefined;
  if (typeof target === "string") {
    await bind(server, target);
  } else {
    address = await bindRemote(server, target);
  }

  return {
    address,
    async stop(limitMs = DRAIN_LIMIT_MS) {
      health.setStatus("", "NOT_SERVING");
      health.setStatus(PLUGIN_SERVICE, "NOT_SERVING");
      let timer: NodeJS.Timeout | undefined;
      const drained = await Promise.race([
        new Promise<boolean>((resolve) => server.tryShutdown(() => resolve(true))),
        new Promise<boolean>((resolve) => (timer = setTimeout(resolve, limitMs, false))),
      ]);
      clearTimeout(timer);
      if (!drained) {
        server.forceShutdown();
      }
      if (typeof target === "string") {
        removeSocket(target);
      }
      return drained;
    },
  };
}

/** Binds `socketPath`, first removing a socket left there by an earlier run (never another file). */
async function bind(server: grpc.Server, socketPath: string): Promise<void> {
  const fail = (err: unknown) =>
    new Error(`cannot bind the plugin socket ${socketPath}: ${messageOf(err)}`);
  try {
    if (fs.lstatSync(socketPath, { throwIfNoEntry: false })?.isSocket()) {
      fs.unlinkSync(socketPath);
    }
  } catch (err) {
    throw fail(err);
  }
  await new Promise<void>((resolve, reject) => {
    server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) =>
      err ? reject(fail(err)) : resolve(),
    );
  });
}

function removeSocket(socketPath: string): void {
  try {
    if (fs.lstatSync(socketPath, { throwIfNoEntry: false })?.isSocket()) {
      fs.unlinkSync(socketPath);
    }
  } catch (err) {
    printLine(`cannot remove the plugin socket ${socketPath}: ${messageOf(err)}`);
  }
}

/** The gRPC handlers: requests turned into the SDK's views, answers and errors back into gRPC. */
function handlers(plugin: Plugin, info: PluginInfo): PluginHandlers {
  let inFlight = 0;

  /** One hook: bounded, cancellable through an AbortSignal, every throw a non-OK status. */
  function hook<Req, Res>(
    name: HookName,
    answer: (request: Req, signal: () => AbortSignal, ids: CallIds) => Promise<Res>,
  ): grpc.handleUnaryCall<Req, Res> {
    return (call, callback) => {
      if (inFlight >= MAX_CALLS_IN_FLIGHT) {
        callback({
          code: grpc.status.RESOURCE_EXHAUSTED,
          details: `${MAX_CALLS_IN_FLIGHT} calls are already in flight in this plugin`,
        });
        return;
      }
      inFlight += 1;
      const cancellation = new Cancellation();
      // grpc-js emits "cancelled" after every call, answered ones too (its stream closes): only
      // a cancel that comes before the answer aborts the signal.
      let answered = false;
      call.on("cancelled", () => answered || cancellation.cancel());
      answer(call.request, () => cancellation.signal(), callIds(call.metadata))
        .finally(() => {
          inFlight -= 1;
          answered = true;
        })
        .then(
          (response) => callback(null, response),
          (err: unknown) => {
            // An InvalidAnswer (what the handler returned is not an answer) is UNKNOWN too.
            const code = err instanceof PluginError ? err.code : grpc.status.UNKNOWN;
            const details = `${name} failed: ${messageOf(err)}`;
            if (!(err instanceof PluginError && code === grpc.status.INVALID_ARGUMENT)) {
              printLine(details);
            }
            callback({ code, details });
          },
        );
    };
  }

  return {
    Describe: (_call, callback) => callback(null, info),
    // A hook the plugin does not implement has no opinion; one it implements must answer with
    // the SDK's helpers (answer.ts): anything else is an InvalidAnswer, never "no opinion".
    BeforeToolCall: hook("before_tool_call", async (request, signal, ids) => {
      const call = new ToolCall(request, signal, ids.requestId, ids.traceparent);
      if (plugin.beforeToolCall == null) {
        return {};
      }
      return toolCallAnswer(await plugin.beforeToolCall(call));
    }),
    BeforeSessionCreate: hook("before_session_create", async (request, signal, ids) => {
      const session = new SessionCreate(request, signal, ids.requestId, ids.traceparent);
      if (plugin.beforeSessionCreate == null) {
        return {};
      }
      return sessionAnswer(await plugin.beforeSessionCreate(session));
    }),
    // Observation only: whatever the handler returns is ignored (its contract is `void`).
    SessionCreated: hook("session_created", async (request, signal, ids) => {
      const event = new SessionCreated(request, signal, ids.requestId, ids.traceparent);
      await plugin.sessionCreated?.(event);
      return {};
    }),
  };
}

/** The ids a call's metadata carries: "" for one that is absent (the views check traceparent). */
interface CallIds {
  requestId: string;
  traceparent: string;
}

function callIds(metadata: grpc.Metadata): CallIds {
  const first = (key: string): string => {
    const value = metadata.get(key)[0];
    return typeof value === "string" ? value : "";
  };
  return { requestId: first("x-hookvisor-request-id"), traceparent: first("traceparent") };
}

/**
 * A call's cancellation, its `AbortSignal` made only when a handler asks for it: an
 * `AbortController` and its abort (a `DOMException` with a stack trace) cost every call about as
 * much CPU as grpc-js's own work on it, and most handlers never look.
 */
class Cancellation {
  #controller: AbortController | undefined;
  #cancelled = false;

  signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#cancelled) {
        this.#controller.abort();
      }
    }
    return this.#controller.signal;
  }

  cancel(): void {
    this.#cancelled = true;
    this.#controller?.abort();
  }
}

function printLine(line: string): void {
  process.stderr.write(`${line}\n`);
}

/**
 * Writes `line` on stdout. A stdout nobody reads any more (EPIPE, say) must not turn a clean stop
 * into a crash: write errors are ignored from here on, and the line is lost.
 */
function printInfo(line: string): void {
  if (process.stdout.listenerCount("error") === 0) {
    process.stdout.on("error", () => {});
  }
  process.stdout.write(`${line}\n`);
}
