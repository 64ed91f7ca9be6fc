// The adapter's client (src/client.ts, unary gRPC on Node's HTTP/2) against a real grpc-js server
// serving `hookvisor.v1.Hooks` on a real Unix socket: a verdict, an error status and its message,
// no socket, a deadline, an abort, an answer over the size limit, and reconnecting once the
// server is back (the same paths run against the real supervisor in e2e.test.ts).

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as http2 from "node:http2";
import * as path from "node:path";
import { after, before, describe, it } from "node:test";

import * as grpc from "@grpc/grpc-js";
import { loadHookvisorProto, type proto } from "@hookvisor/plugin";

import { HooksClient } from "../src/client";
import { unavailableCause } from "../src/verdict";
import { tempDir, until } from "./harness";

type Answer = (
  request: proto.ToolCallRequest__Output,
  done: grpc.sendUnaryData<proto.ToolCallVerdict>,
) => void;

/** A Hooks server whose BeforeToolCall answers with `answer` (replaceable per test). */
class Server {
  private server: grpc.Server | undefined;
  answer: Answer = (_request, done) => done(null, { outcome: "OUTCOME_ALLOW" });

  constructor(readonly socket: string) {}

  async start(): Promise<void> {
    const server = new grpc.Server();
    const unimplemented = (_call: unknown, done: grpc.sendUnaryData<never>) =>
      done({ code: grpc.status.UNIMPLEMENTED });
    server.addService(loadHookvisorProto().Hooks.service, {
      BeforeToolCall: (
        call: grpc.ServerUnaryCall<proto.ToolCallRequest__Output, proto.ToolCallVerdict>,
        done: grpc.sendUnaryData<proto.ToolCallVerdict>,
      ) => this.answer(call.request, done),
      BeforeSessionCreate: unimplemented,
      SessionCreated: unimplemented,
      ReportHost: unimplemented,
    });
    await new Promise<void>((resolve, reject) =>
      server.bindAsync(`unix:${this.socket}`, grpc.ServerCredentials.createInsecure(), (err) =>
        err ? reject(err) : resolve(),
      ),
    );
    this.server = server;
  }

  stop(): void {
    this.server?.forceShutdown();
    this.server = undefined;
    fs.rmSync(this.socket, { force: true });
  }
}

const REQUEST: proto.ToolCallRequest = { tool_name: "exec", params_json: '{"cmd":"ls"}' };

async function failure(promise: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await promise;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error("the call succeeded");
}

describe("HooksClient", () => {
  let dir: string;
  let server: Server;
  let client: HooksClient;

  before(async () => {
    dir = tempDir();
    server = new Server(path.join(dir, "hooks.sock"));
    await server.start();
    client = new HooksClient(server.socket);
  });

  after(() => {
    client?.close();
    server?.stop();
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  it("returns the verdict, and the server saw the request", async () => {
    let seen: proto.ToolCallRequest__Output | undefined;
    server.answer = (request, done) => {
      seen = request;
      done(null, { outcome: "OUTCOME_BLOCK", block_reason: "no", decided_by: "guard" });
    };
    const verdict = await client.beforeToolCall(REQUEST, 5000);
    assert.equal(verdict.outcome, "OUTCOME_BLOCK");
    assert.equal(verdict.block_reason, "no");
    assert.equal(verdict.decided_by, "guard");
    assert.equal(seen?.tool_name, "exec");
    assert.equal(seen?.params_json, '{"cmd":"ls"}');
    // The same connection serves the next calls.
    for (let i = 0; i < 3; i++) {
      assert.equal((await client.beforeToolCall(REQUEST, 5000)).outcome, "OUTCOME_BLOCK");
    }
  });

  it("fails with the server's status and its message, decoded", async () => {
    server.answer = (_request, done) =>
      done({ code: grpc.status.INVALID_ARGUMENT, details: "params_json: not ✓ JSON (100%)" });
    const err = await failure(client.beforeToolCall(REQUEST, 5000));
    assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
    assert.equal(err.details, "params_json: not ✓ JSON (100%)");
  });

  it("fails DEADLINE_EXCEEDED at its deadline when no answer comes", async () => {
    server.answer = () => undefined; // never answers
    const start = performance.now();
    const err = await failure(client.beforeToolCall(REQUEST, 200));
    const took = performance.now() - start;
    assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
    assert.ok(took >= 190 && took < 1500, `took ${took} ms`);
  });

  it("fails CANCELLED at once when aborted, before or during the call", async () => {
    server.answer = () => undefined;
    const aborted = new AbortController();
    aborted.abort();
    assert.equal(
      (await failure(client.beforeToolCall(REQUEST, 5000, aborted.signal))).code,
      grpc.status.CANCELLED,
    );
    const controller = new AbortController();
    const start = performance.now();
    const call = client.beforeToolCall(REQUEST, 5000, controller.signal);
    setTimeout(() => controller.abort(), 50);
    assert.equal((await failure(call)).code, grpc.status.CANCELLED);
    assert.ok(performance.now() - start < 1000);
  });

  it("refuses an answer over 8 MiB", async () => {
    server.answer = (_request, done) =>
      done(null, {
        outcome: "OUTCOME_ALLOW",
        params_changed: true,
        params_json: JSON.stringify({ big: "x".repeat(9 * 1024 * 1024) }),
      });
    const err = await failure(client.beforeToolCall(REQUEST, 10_000));
    assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  });

  it("fails UNAVAILABLE at once while the server is down, and works again once it is back", async () => {
    server.answer = (_request, done) => done(null, { outcome: "OUTCOME_ALLOW" });
    assert.equal((await client.beforeToolCall(REQUEST, 5000)).outcome, "OUTCOME_ALLOW");
    server.stop();
    // A call on the closing connection may be refused first; then the socket is gone.
    const down = await until(
      "the call to fail UNAVAILABLE for the missing socket",
      5000,
      async () => {
        const err = await failure(client.beforeToolCall(REQUEST, 5000));
        assert.equal(err.code, grpc.status.UNAVAILABLE, err.message);
        return /ENOENT/.test(err.details) ? err : undefined;
      },
    );
    assert.equal(
      unavailableCause(down.details),
      "no socket there: is hookvisor running, and is this its socket?",
    );
    // While down, calls never wait for a connection.
    for (let i = 0; i < 5; i++) {
      const start = performance.now();
      const err = await failure(client.beforeToolCall(REQUEST, 5000));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.ok(performance.now() - start < 500);
    }
    await server.start();
    const back = performance.now();
    await until(
      "calls to go through again",
      5000,
      () =>
        client.beforeToolCall(REQUEST, 5000).then(
          (verdict) => verdict.outcome,
          () => undefined,
        ),
      20,
    );
    assert.ok(performance.now() - back < 1500, "back within the 1 s backoff");
  });

  it("fails UNAVAILABLE with the errno when there is no socket at all", async () => {
    const lone = new HooksClient(path.join(dir, "missing.sock"));
    try {
      const err = await failure(lone.beforeToolCall(REQUEST, 5000));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.match(err.details, /ENOENT/);
    } finally {
      lone.close();
    }
  });

  it("sends a call again when its stream was refused unprocessed, as past an upgrade's GOAWAY", async () => {
    // A bare HTTP/2 server: the first stream of each connection is refused (REFUSED_STREAM,
    // what a draining hookvisor does to streams past its GOAWAY's last one), the next answered.
    const socket = path.join(dir, "refusing.sock");
    let streams = 0;
    let alwaysRefuse = false;
    const refusing = http2.createServer();
    refusing.on("session", (session) => {
      let first = true;
      session.on("stream", (stream) => {
        streams += 1;
        if (first || alwaysRefuse) {
          first = false;
          stream.on("error", () => undefined); // the reset is reported on this side too
          stream.close(http2.constants.NGHTTP2_REFUSED_STREAM);
          return;
        }
        stream.respond(
          { ":status": 200, "content-type": "application/grpc" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        // An empty ToolCallVerdict: outcome unset.
        stream.end(Buffer.from([0, 0, 0, 0, 0]));
      });
    });
    await new Promise<void>((resolve) => refusing.listen(socket, resolve));
    const lone = new HooksClient(socket);
    try {
      const verdict = await lone.beforeToolCall(REQUEST, 5000);
      assert.equal(verdict.outcome, "OUTCOME_UNSPECIFIED");
      assert.equal(streams, 2, "refused once, then sent again");
      // A server that refuses every stream is not asked forever: three resends, then the call
      // fails UNAVAILABLE (the adapter blocks the tool call with the reason).
      alwaysRefuse = true;
      streams = 0;
      const err = await failure(lone.beforeToolCall(REQUEST, 5000));
      assert.equal(err.code, grpc.status.UNAVAILABLE);
      assert.match(err.details, /refused/);
      assert.equal(streams, 4, "the call and three resends");
    } finally {
      lone.close();
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
  });
});
