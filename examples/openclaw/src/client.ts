// The one gRPC channel to hookvisor's host socket (`hookvisor.v1.Hooks`), shared by every call
// in the process. grpc-js reconnects it by itself; the backoff is kept short so that calls work
// again within a second of hookvisor coming back. Calls never wait for a connection
// (`waitForReady` off): while hookvisor is down they fail at once, and the caller blocks.

import * as grpc from "@grpc/grpc-js";
import { loadHookvisorProto, type proto } from "@hookvisor/plugin";

const CHANNEL_OPTIONS: grpc.ChannelOptions = {
  "grpc.initial_reconnect_backoff_ms": 100,
  "grpc.min_reconnect_backoff_ms": 100,
  "grpc.max_reconnect_backoff_ms": 1000,
  // The supervisor's limits on requests are its own (§8); never refuse a verdict here for size.
  "grpc.max_receive_message_length": 8 * 1024 * 1024,
};

/** A client of hookvisor's host API with per-call deadlines and cancellation. */
export class HooksClient {
  private readonly client: proto.HooksClient;

  constructor(readonly socket: string) {
    const { Hooks } = loadHookvisorProto();
    this.client = new Hooks(`unix:${socket}`, grpc.credentials.createInsecure(), CHANNEL_OPTIONS);
  }

  /** Asks `BeforeToolCall`; rejects with the gRPC error (deadline passed, unavailable, …). */
  beforeToolCall(
    request: proto.ToolCallRequest,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<proto.ToolCallVerdict__Output> {
    return this.unary(
      (options, done) => this.client.beforeToolCall(request, options, done),
      deadlineMs,
      signal,
    );
  }

  /** Tells `SessionCreated` (an observation: it never blocks anything). */
  sessionCreated(
    notice: proto.SessionCreatedNotice,
    deadlineMs: number,
  ): Promise<proto.SessionCreatedReceipt__Output> {
    return this.unary(
      (options, done) => this.client.sessionCreated(notice, options, done),
      deadlineMs,
    );
  }

  /** Reports this host (`ReportHost`, contract §4.5). */
  reportHost(
    report: proto.HostReport,
    deadlineMs: number,
  ): Promise<proto.HostReportReceipt__Output> {
    return this.unary((options, done) => this.client.reportHost(report, options, done), deadlineMs);
  }

  /** Closes the channel; calls in flight fail with CANCELLED. */
  close(): void {
    this.client.close();
  }

  private unary<T>(
    start: (options: grpc.CallOptions, done: grpc.requestCallback<T>) => grpc.ClientUnaryCall,
    deadlineMs: number,
    signal?: AbortSignal,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(cancelled());
        return;
      }
      const onAbort = () => call.cancel();
      const call = start({ deadline: Date.now() + deadlineMs }, (err, value) => {
        signal?.removeEventListener("abort", onAbort);
        if (err) {
          reject(err);
        } else if (value === undefined) {
          reject(Object.assign(new Error("empty answer"), { code: grpc.status.INTERNAL }));
        } else {
          resolve(value);
        }
      });
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}

function cancelled(): grpc.ServiceError {
  return Object.assign(new Error("cancelled"), {
    code: grpc.status.CANCELLED,
    details: "the tool call was aborted",
    metadata: new grpc.Metadata(),
  });
}
