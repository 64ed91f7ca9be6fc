// Remote mode (contract §2.6): the sample plugin served on TCP with mutual TLS, certificates made
// at test time, called by grpc-js clients with and without a good client certificate. Also the
// `traceparent` a handler sees.

import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as net from "node:net";
import * as path from "node:path";
import * as tls from "node:tls";
import { after, before, describe, test } from "node:test";

import * as grpc from "@grpc/grpc-js";

import { MAGIC_COOKIE } from "../src";
import type { proto } from "../src";
import {
  Clients,
  deadline,
  failureOf,
  runToExit,
  spawnPlugin,
  tempDir,
  unary,
  withTimeout,
} from "./harness";
import type { PluginProcess } from "./harness";
import { makePki } from "./pki";
import type { Issued, Pki } from "./pki";

const LISTENING =
  /^hookvisor plugin listening on (\S+):(\d+) \(TLS, client certificates required\)$/m;
const TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

let pki: Pki;
let dir: string;

before(() => {
  dir = tempDir();
  pki = makePki(dir);
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));

/** Remote mode's environment, without hookvisor's cookie and socket. */
function remoteEnv(listen = "127.0.0.1:0"): Record<string, string | undefined> {
  return {
    HOOKVISOR_MAGIC_COOKIE: undefined,
    HOOKVISOR_PLUGIN_SOCKET: undefined,
    HOOKVISOR_PLUGIN_NAME: undefined,
    HOOKVISOR_REMOTE_LISTEN: listen,
    HOOKVISOR_TLS_CERT: pki.serverCert,
    HOOKVISOR_TLS_KEY: pki.serverKey,
    HOOKVISOR_TLS_CLIENT_CA: pki.ca,
  };
}

interface Remote {
  plugin: PluginProcess;
  host: string;
  port: number;
  /** Clients presenting `client` (none: no certificate). */
  clients(client?: Issued): Clients;
}

const opened: Clients[] = [];
const started: PluginProcess[] = [];

after(() => {
  for (const clients of opened) clients.close();
  for (const plugin of started) plugin.kill();
});

/** Starts the sample in remote mode and waits for its listening line. */
async function startRemote(
  env: Record<string, string | undefined>,
  args: string[] = [],
): Promise<Remote> {
  const plugin = spawnPlugin("sample.js", env, { args, socket: "" });
  started.push(plugin);
  let exited = false;
  void plugin.exited.then(() => (exited = true));
  const deadline = Date.now() + 10_000;
  let match: RegExpExecArray | null = null;
  while ((match = LISTENING.exec(plugin.stderr)) === null && !exited && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok(match, `no listening line; stderr: ${JSON.stringify(plugin.stderr)}`);
  const [, host, port] = match;
  return {
    plugin,
    host,
    port: Number(port),
    clients(client?: Issued) {
      const credentials = grpc.credentials.createSsl(
        pki.caPem,
        client && Buffer.from(client.key),
        client && Buffer.from(client.cert),
      );
      const options = { "grpc.ssl_target_name_override": "localhost" };
      const clients = new Clients("", { target: `${host}:${port}`, credentials, options });
      opened.push(clients);
      return clients;
    },
  };
}

async function echo(clients: Clients, traceparent?: string): Promise<Record<string, unknown>> {
  const request = { tool_name: "echo", params_json: '{"n":1}' };
  const decision = await clients.beforeToolCall(request, 5000, "req-7", traceparent);
  return JSON.parse(decision.block_reason) as Record<string, unknown>;
}

describe("remote mode", () => {
  test("serves Describe, health and calls over mutual TLS; SIGTERM drains", async () => {
    const remote = await startRemote(remoteEnv());
    assert.equal(remote.host, "127.0.0.1");
    assert.notEqual(remote.port, 0);
    const clients = remote.clients(pki.client);
    const info = await unary<proto.PluginInfo__Output>((done) =>
      clients.plugin.Describe({ protocol_version: 1 }, { deadline: deadline(5000) }, done),
    );
    assert.deepEqual([info.name, info.version, info.protocol_version], ["sample", "1.2.3", 1]);
    assert.equal((await clients.healthCheck("hookvisor.v1.Plugin")).status, "SERVING");
    const seen = await echo(clients);
    assert.deepEqual([seen.params, seen.requestId], [{ n: 1 }, "req-7"]);
    clients.close();
    remote.plugin.kill("SIGTERM");
    const exit = await withTimeout(remote.plugin.exited, 5000, "no exit after SIGTERM");
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.equal(remote.plugin.stdout, "received SIGTERM; finishing calls in flight and exiting\n");
    assert.match(remote.plugin.stderr, LISTENING);
    assert.equal(remote.plugin.stderr.split("\n").length, 2, remote.plugin.stderr);
  });

  test("a client without a certificate or with one of another CA is refused", async () => {
    const remote = await startRemote(remoteEnv());
    for (const client of [undefined, pki.stranger]) {
      const failure = await failureOf(remote.clients(client).healthCheck(""));
      assert.equal(failure.code, grpc.status.UNAVAILABLE);
    }
    // Refusing them took nothing away from a client with a good certificate.
    assert.equal((await remote.clients(pki.client).healthCheck("")).status, "SERVING");
  });

  test("below gRPC: the server ends the TLS handshake of a client without a certificate", async () => {
    const remote = await startRemote(remoteEnv());
    const outcome = await new Promise<string>((resolve) => {
      const socket = tls.connect({
        host: remote.host,
        port: remote.port,
        ca: pki.caPem,
        servername: "localhost",
        ALPNProtocols: ["h2"],
      });
      socket.on("error", (err) => resolve(`error: ${err.message}`));
      // TLS 1.3: the client's side completes first; the server's alert follows.
      socket.on("secureConnect", () => socket.write("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"));
      socket.on("close", () => resolve("closed"));
    });
    assert.match(outcome, /certificate required|alert|closed|ECONNRESET/i);
    assert.notEqual(outcome, "connected");
  });

  test("a valid traceparent reaches the handler; junk never does", async () => {
    const remote = await startRemote(remoteEnv());
    const clients = remote.clients(pki.client);
    assert.equal((await echo(clients, TRACEPARENT)).traceparent, TRACEPARENT);
    for (const junk of [
      TRACEPARENT.toUpperCase(),
      `${TRACEPARENT}-00`,
      TRACEPARENT.slice(0, -1),
      "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
      "not a trace",
      TRACEPARENT.replaceAll("-", "_"),
    ]) {
      assert.equal((await echo(clients, junk)).traceparent, "", junk);
    }
    assert.equal((await echo(clients)).traceparent, "");
  });

  for (const how of ["paths", "buffers"]) {
    test(`run's remote option, with PEM ${how}, on IPv6`, async () => {
      const files = [pki.serverCert, pki.serverKey, pki.ca];
      const env = { ...remoteEnv(), HOOKVISOR_REMOTE_LISTEN: undefined };
      const remote = await startRemote(env, ["remote", how, "[::1]:0", ...files]);
      assert.equal(remote.host, "[::1]");
      const seen = await echo(remote.clients(pki.client), TRACEPARENT);
      assert.equal(seen.traceparent, TRACEPARENT);
    });
  }

  test("the cookie and remote mode together: exit 1", async () => {
    const env = { ...remoteEnv(), HOOKVISOR_MAGIC_COOKIE: MAGIC_COOKIE, SAMPLE_FAIL_INIT: "x" };
    for (const args of [
      [],
      ["remote", "paths", "127.0.0.1:0", pki.serverCert, pki.serverKey, pki.ca],
    ]) {
      const exit = await runToExit("sample.js", env, { args, socket: "" });
      assert.equal(exit.code, 1);
      assert.match(exit.stderr, /^HOOKVISOR_MAGIC_COOKIE and HOOKVISOR_REMOTE_LISTEN are both set/);
      assert.equal(exit.stderr.split("\n").length, 2);
    }
  });

  for (const name of ["HOOKVISOR_TLS_CERT", "HOOKVISOR_TLS_KEY", "HOOKVISOR_TLS_CLIENT_CA"]) {
    test(`a missing ${name}: exit 1 naming it`, async () => {
      const exit = await runToExit(
        "sample.js",
        { ...remoteEnv(), [name]: undefined },
        { socket: "" },
      );
      assert.equal(exit.code, 1);
      assert.ok(
        exit.stderr.startsWith(`${name} is not set; remote mode (HOOKVISOR_REMOTE_LISTEN) needs`),
        exit.stderr,
      );
      assert.equal(exit.stderr.split("\n").length, 2);
    });
  }

  test("an unreadable file, a bad PEM or a key of another certificate: exit 1 naming both", async () => {
    const missing = path.join(dir, "missing.pem");
    const junk = path.join(dir, "junk.pem");
    fs.writeFileSync(junk, "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n");
    const otherKey = path.join(dir, "other.key");
    fs.writeFileSync(otherKey, pki.client.key);
    const cases: [string, string, RegExp][] = [
      ["HOOKVISOR_TLS_CERT", missing, /^cannot read HOOKVISOR_TLS_CERT file .*missing\.pem: /],
      ["HOOKVISOR_TLS_KEY", pki.ca, /^HOOKVISOR_TLS_KEY file .*ca\.pem is not a valid PEM file/],
      ["HOOKVISOR_TLS_CLIENT_CA", junk, /^HOOKVISOR_TLS_CLIENT_CA file .*junk\.pem is not a valid/],
      [
        "HOOKVISOR_TLS_KEY",
        otherKey,
        /^HOOKVISOR_TLS_KEY file .*other\.key is not the key of HOOKVISOR_TLS_CERT file .*server\.pem$/m,
      ],
    ];
    for (const [name, file, expected] of cases) {
      const exit = await runToExit("sample.js", { ...remoteEnv(), [name]: file }, { socket: "" });
      assert.equal(exit.code, 1, exit.stderr);
      assert.match(exit.stderr, expected);
      assert.equal(exit.stderr.split("\n").length, 2, exit.stderr);
    }
  });

  test("a bad address: exit 1; one that cannot be bound: exit 2", async () => {
    const bad = await runToExit("sample.js", remoteEnv("8443"), { socket: "" });
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^HOOKVISOR_REMOTE_LISTEN must be HOST:PORT/);
    const taken = net.createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as net.AddressInfo;
    try {
      const exit = await runToExit("sample.js", remoteEnv(`127.0.0.1:${port}`), { socket: "" });
      assert.equal(exit.code, 2);
      assert.equal(exit.stderr, `cannot listen on 127.0.0.1:${port}: address already in use\n`);
    } finally {
      taken.close();
    }
  });

  test("remote mode makes no socket file", async () => {
    const socketDir = tempDir();
    const env = { ...remoteEnv(), HOOKVISOR_PLUGIN_SOCKET: path.join(socketDir, "p.sock") };
    const remote = await startRemote(env);
    remote.plugin.kill("SIGTERM");
    assert.equal((await withTimeout(remote.plugin.exited, 5000, "no exit")).code, 0);
    assert.deepEqual(fs.readdirSync(socketDir), []);
  });
});
