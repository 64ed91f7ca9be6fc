// The one connection to hookvisor's host socket (`hookvisor.v1.Hooks`), shared by every call in
// the process: unary gRPC calls written directly on Node's HTTP/2 client, one stream per call.
//
// Why not a grpc-js channel: a tool call waits for this call, and in a gateway every call pays
// grpc-js's layers (resolving, retrying, load-balancing and subchannel calls, interceptors, filter
// stacks, a promise per layer) in CPU and in garbage collected while the call is out. Measured
// with calls 100 ms apart, that was about a quarter of the call from a small process and more in
// a gateway (README, Latency). A unary call needs little of it: one HEADERS frame, one
// length-prefixed message, and the status in the trailers.
//
// What it keeps from a grpc-js channel with `waitForReady` off: a call never waits for hookvisor
// to come up. With no connection it connects (a Unix socket answers at once) and a failure fails
// the call UNAVAILABLE with the errno; for the backoff after a failure (100 ms, doubling to 1 s)
// every call fails at once with the same error, and the next call after it tries again, so calls
// go through within about a second of hookvisor coming back. A closed or draining (GOAWAY)
// connection is dropped and the next call opens a new one; a call whose stream the server refused
// unprocessed (past a GOAWAY's last stream) is sent again on a new one. Every call has a deadline (the timer
// closes its stream and fails it DEADLINE_EXCEEDED) and can be cancelled by an AbortSignal.
// Errors have grpc-js's shape (`code`, `details`, `metadata`), so callers read them alike.

import * as http2 from "node:http2";
import * as net from "node:net";

import { Metadata, status as Status, type ServiceError } from "@grpc/grpc-js";
import { loadHookvisorProto, type proto } from "@hookvisor/plugin";

/** The supervisor's limits on requests are its own (§8); never refuse a verdict here for size. */
const MAX_RECEIVE_BYTES = 8 * 1024 * 1024;
const INITIAL_BACKOFF_MS = 100;
const MAX_BACKOFF_MS = 1000;
/**
 * How many times one call is sent again after hookvisor refused its stream unprocessed
 * (REFUSED_STREAM: past the last stream of a GOAWAY, as when `hookvisor upgrade` moves its hosts
 * to the new image) or the connection closed before the stream could start. Both are safe to
 * resend (HTTP/2 §8.7: the server did nothing with them), and grpc-js would have resent them.
 */
const MAX_RESENDS = 3;

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_STATUS,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_TE,
  NGHTTP2_CANCEL,
  NGHTTP2_REFUSED_STREAM,
  NGHTTP2_ENHANCE_YOUR_CALM,
} = http2.constants;

/** What a call needs of a method of the loaded service definition. */
interface Method<Req, Res> {
  path: string;
  requestSerialize(value: Req): Buffer;
  responseDeserialize(bytes: Buffer): Res;
}

/** A client of hookvisor's host API with per-call deadlines and cancellation. */
export class HooksClient {
  private readonly methods: ReturnType<typeof loadHookvisorProto>["Hooks"]["service"];
  private session: http2.ClientHttp2Session | undefined;
  private connecting: Promise<http2.ClientHttp2Session> | undefined;
  /** Until this time (ms since the epoch), calls fail at once with `lastError`. */
  private retryAt = 0;
  private backoffMs = INITIAL_BACKOFF_MS;
  private lastError = "";
  private closed = false;
  /** The request headers per deadline: built once, not per call. */
  private readonly headers = new Map<string, http2.OutgoingHttpHeaders>();

  constructor(readonly socket: string) {
    this.methods = loadHookvisorProto().Hooks.service;
  }

  /** Asks `BeforeToolCall`; rejects with the gRPC error (deadline passed, unavailable, …). */
  beforeToolCall(
    request: proto.ToolCallRequest,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<proto.ToolCallVerdict__Output> {
    return this.unary(this.methods.BeforeToolCall, request, deadlineMs, signal);
  }

  /** Tells `SessionCreated` (an observation: it never blocks anything). */
  sessionCreated(
    notice: proto.SessionCreatedNotice,
    deadlineMs: number,
  ): Promise<proto.SessionCreatedReceipt__Output> {
    return this.unary(this.methods.SessionCreated, notice, deadlineMs);
  }

  /** Reports this host (`ReportHost`, contract §4.5). */
  reportHost(
    report: proto.HostReport,
    deadlineMs: number,
  ): Promise<proto.HostReportReceipt__Output> {
    return this.unary(this.methods.ReportHost, report, deadlineMs);
  }

  /** Closes the connection; calls in flight fail with CANCELLED, later calls with UNAVAILABLE. */
  close(): void {
    this.closed = true;
    this.session?.destroy();
    this.session = undefined;
  }

  private unary<Req, Res>(
    method: Method<Req, Res>,
    request: Req,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(serviceError(Status.CANCELLED, "the tool call was aborted"));
        return;
      }
      let message: Buffer;
      try {
        message = frame(method.requestSerialize(request));
      } catch (err) {
        reject(serviceError(Status.INTERNAL, `cannot encode the request (${describe(err)})`));
        return;
      }
      const call = new UnaryCall(method, resolve, reject);
      call.timer = setTimeout(
        () => call.fail(Status.DEADLINE_EXCEEDED, "Deadline exceeded"),
        deadlineMs,
      );
      if (signal !== undefined) {
        const onAbort = () => call.fail(Status.CANCELLED, "the tool call was aborted");
        signal.addEventListener("abort", onAbort, { once: true });
        call.onDone = () => signal.removeEventListener("abort", onAbort);
      }
      const send = () => {
        const session = this.ready();
        if (session instanceof Error) {
          call.fail(Status.UNAVAILABLE, session.message);
        } else if (session instanceof Promise) {
          session.then(
            (s) => this.start(call, s, message, deadlineMs),
            (err: Error) => call.fail(Status.UNAVAILABLE, err.message),
          );
        } else {
          this.start(call, session, message, deadlineMs);
        }
      };
      call.resend = send;
      send();
    });
  }

  private start<Res>(
    call: UnaryCall<Res>,
    session: http2.ClientHttp2Session,
    message: Buffer,
    deadlineMs: number,
  ): void {
    if (call.done) {
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(this.headersFor(call.path, deadlineMs), { endStream: false });
    } catch (err) {
      // The session closed under us (a GOAWAY, a reset): the call goes on a new one.
      this.drop(session);
      if (!call.sendAgain()) {
        call.fail(Status.UNAVAILABLE, `the connection to hookvisor closed (${describe(err)})`);
      }
      return;
    }
    call.attach(stream);
    stream.end(message);
  }

  /** The request headers; `grpc-timeout` tells the supervisor the caller's deadline. */
  private headersFor(path: string, deadlineMs: number): http2.OutgoingHttpHeaders {
    const key = `${path} ${deadlineMs}`;
    let headers = this.headers.get(key);
    if (headers === undefined) {
      headers = {
        [HTTP2_HEADER_METHOD]: "POST",
        [HTTP2_HEADER_PATH]: path,
        [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
        [HTTP2_HEADER_TE]: "trailers",
        "grpc-timeout": `${Math.max(1, Math.ceil(deadlineMs))}m`,
      };
      this.headers.set(key, headers);
    }
    return headers;
  }

  /** The open session, a connection attempt to wait for, or the error to fail with at once. */
  private ready(): http2.ClientHttp2Session | Promise<http2.ClientHttp2Session> | Error {
    if (this.closed) {
      return new Error("the client was closed");
    }
    const session = this.session;
    if (session !== undefined && !session.closed && !session.destroyed) {
      return session;
    }
    this.session = undefined;
    if (this.connecting !== undefined) {
      return this.connecting;
    }
    if (Date.now() < this.retryAt) {
      return new Error(this.lastError);
    }
    this.connecting = this.connect().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private connect(): Promise<http2.ClientHttp2Session> {
    return new Promise((resolve, reject) => {
      const session = http2.connect("http://localhost", {
        createConnection: () => net.connect(this.socket),
        maxSessionMemory: 64,
      });
      const fail = (err: Error) => {
        session.destroy();
        this.lastError = describe(err);
        this.retryAt = Date.now() + this.backoffMs;
        this.backoffMs = Math.min(this.backoffMs * 2, MAX_BACKOFF_MS);
        reject(new Error(this.lastError));
      };
      session.once("error", fail);
      session.once("connect", () => {
        session.off("error", fail);
        this.backoffMs = INITIAL_BACKOFF_MS;
        this.retryAt = 0;
        // An idle connection must not keep the process alive (`openclaw agent --local` exits).
        session.unref();
        // Errors are reported on each call's stream; a closed or draining session is dropped.
        session.on("error", () => this.drop(session));
        session.once("goaway", () => this.drop(session));
        session.once("close", () => this.drop(session));
        if (this.closed) {
          session.destroy();
          reject(new Error("the client was closed"));
          return;
        }
        this.session = session;
        resolve(session);
      });
    });
  }

  private drop(session: http2.ClientHttp2Session): void {
    if (this.session === session) {
      this.session = undefined;
    }
  }
}

/** One call in flight: its stream's answer, read into a verdict or a gRPC error. */
class UnaryCall<Res> {
  done = false;
  timer: NodeJS.Timeout | undefined;
  onDone: (() => void) | undefined;
  /** Sends the call on the current (or a new) connection. */
  resend: (() => void) | undefined;
  private resends = 0;
  private stream: http2.ClientHttp2Stream | undefined;
  private readonly chunks: Buffer[] = [];
  private received = 0;
  private status: string | undefined;
  private details = "";
  private httpStatus: number | undefined;

  constructor(
    private readonly method: Method<unknown, Res>,
    private readonly resolve: (value: Res) => void,
    private readonly reject: (err: ServiceError) => void,
  ) {}

  get path(): string {
    return this.method.path;
  }

  attach(stream: http2.ClientHttp2Stream): void {
    this.stream = stream;
    stream.on("response", (headers) => {
      this.httpStatus = Number(headers[HTTP2_HEADER_STATUS]);
      // A trailers-only answer (an error with no message) carries the status here.
      this.readStatus(headers);
    });
    stream.on("data", (chunk: Buffer) => {
      this.received += chunk.length;
      if (this.received > MAX_RECEIVE_BYTES + 5) {
        this.fail(
          Status.RESOURCE_EXHAUSTED,
          `the answer is larger than ${MAX_RECEIVE_BYTES} bytes`,
        );
        return;
      }
      this.chunks.push(chunk);
    });
    stream.on("trailers", (trailers) => this.readStatus(trailers));
    // The stream's errors end in "close", which says what happened.
    stream.on("error", () => undefined);
    stream.on("close", () => this.finish(stream.rstCode));
  }

  private readStatus(headers: http2.IncomingHttpHeaders): void {
    const status = headers["grpc-status"];
    if (typeof status === "string") {
      this.status = status;
      const details = headers["grpc-message"];
      this.details = typeof details === "string" ? percentDecode(details) : "";
    }
  }

  /** Sends the call again from the start, if it may be (see MAX_RESENDS); false if not. */
  sendAgain(): boolean {
    if (this.done || this.resend === undefined || this.resends >= MAX_RESENDS) {
      return false;
    }
    this.resends += 1;
    this.stream = undefined;
    this.chunks.length = 0;
    this.received = 0;
    this.status = undefined;
    this.details = "";
    this.httpStatus = undefined;
    this.resend();
    return true;
  }

  private finish(rstCode: number): void {
    if (this.done) {
      return;
    }
    if (this.status === undefined) {
      if (rstCode === NGHTTP2_REFUSED_STREAM && this.httpStatus === undefined && this.sendAgain()) {
        return;
      }
      if (rstCode === NGHTTP2_REFUSED_STREAM) {
        this.fail(Status.UNAVAILABLE, "the stream was refused: hookvisor is busy or closing");
      } else if (rstCode === NGHTTP2_CANCEL) {
        this.fail(Status.CANCELLED, "the stream was cancelled");
      } else if (rstCode === NGHTTP2_ENHANCE_YOUR_CALM) {
        this.fail(Status.RESOURCE_EXHAUSTED, "hookvisor asked to slow down (ENHANCE_YOUR_CALM)");
      } else if (this.httpStatus !== undefined && this.httpStatus !== 200) {
        this.fail(Status.UNKNOWN, `hookvisor answered HTTP status ${this.httpStatus}`);
      } else if (rstCode !== 0) {
        this.fail(Status.INTERNAL, `the stream was reset with code ${rstCode}`);
      } else {
        this.fail(Status.UNAVAILABLE, "the connection to hookvisor closed before its answer");
      }
      return;
    }
    const code = Number(this.status);
    if (code !== Status.OK) {
      this.fail(Number.isInteger(code) && code > 0 ? code : Status.UNKNOWN, this.details);
      return;
    }
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    if (body.length < 5 || body[0] !== 0 || body.readUInt32BE(1) !== body.length - 5) {
      this.fail(Status.INTERNAL, "the answer is not one uncompressed gRPC message");
      return;
    }
    let value: Res;
    try {
      value = this.method.responseDeserialize(body.subarray(5));
    } catch (err) {
      this.fail(Status.INTERNAL, `the answer cannot be decoded (${describe(err)})`);
      return;
    }
    this.end();
    this.resolve(value);
  }

  /** Ends the call with an error (once); closes its stream if it is still open. */
  fail(code: Status, details: string): void {
    if (this.done) {
      return;
    }
    this.end();
    if (this.stream !== undefined && !this.stream.closed) {
      this.stream.close(NGHTTP2_CANCEL);
    }
    this.reject(serviceError(code, details));
  }

  private end(): void {
    this.done = true;
    clearTimeout(this.timer);
    this.onDone?.();
  }
}

/** A gRPC message: the uncompressed flag and the length, then the bytes. */
function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(5 + payload.length);
  out[0] = 0;
  out.writeUInt32BE(payload.length, 1);
  payload.copy(out, 5);
  return out;
}

/** `grpc-message` is percent-encoded (gRPC over HTTP/2); a malformed one is shown as it is. */
function percentDecode(text: string): string {
  if (!text.includes("%")) {
    return text;
  }
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** An error shaped as grpc-js's (`code`, `details`, `metadata`). */
function serviceError(code: Status, details: string): ServiceError {
  return Object.assign(new Error(`${code} ${Status[code]}: ${details}`), {
    code,
    details,
    metadata: new Metadata(),
  });
}
