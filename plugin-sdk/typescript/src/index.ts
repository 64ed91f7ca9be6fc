// Write a hookvisor plugin in TypeScript: implement `Plugin`, call `run`.
//
// hookvisor starts every plugin as a child process and speaks gRPC (`hookvisor.v1.Plugin`) to it
// over a Unix socket. This package owns everything except the policy itself: the magic-cookie
// check, binding the socket, `Describe`, the `grpc.health.v1.Health` service, JSON parsing of
// params and metadata, SIGTERM/SIGINT and exit codes.
//
// Layout:
// - plugin.ts: the `Plugin` interface; every hook is optional ("no opinion").
// - info.ts: `Info` and `Registration`, which become `PluginInfo` in `Describe`.
// - call.ts: `ToolCall`, `SessionCreate`, `SessionCreated`, parsed views of the requests.
// - json.ts: `parseJson` and `stringifyJson`, JSON with every number kept exactly
//   (`LosslessNumber` for a number a double would not give back as written).
// - decision.ts and session.ts: constructors for answers, marked as the SDK's own.
// - answer.ts: checks what a handler returned; anything but a marked answer is refused.
// - server.ts: `run` (the whole process) and `serve` (the gRPC server alone, for tests);
//   `serveRemote`, the server alone on TCP with mutual TLS.
// - remote.ts: remote mode's settings (contract §2.6), checked, and its TLS port.
// - proto.ts and generated/: the contract's proto for grpc-js and a type for every message,
//   also for host-side code that calls `hookvisor.v1.Hooks`.

export { PluginError, SessionCreate, SessionCreated, ToolCall } from "./call";
export type { JsonObject, SignalSource } from "./call";
export { LosslessNumber, isLosslessNumber, parseJson, stringifyJson } from "./json";
export {
  MAX_DESCRIPTION_CHARS,
  MAX_TITLE_CHARS,
  allow,
  approvalRequest,
  block,
  combine,
  requireApproval,
  rewrite,
  truncate,
} from "./decision";
export type {
  ApprovalChoice,
  ApprovalOptions,
  ApprovalSeverity,
  ToolCallDecision,
} from "./decision";
export { PROTOCOL_VERSION } from "./info";
export type { HookName, Info, Registration, StageName } from "./info";
export type { MaybePromise, Plugin } from "./plugin";
export type { SessionDecision } from "./session";
export type { ApprovalRequest } from "./generated";
export { LOADER_OPTIONS, PROTO_PATH, loadHookvisorProto } from "./proto";
export type { HookvisorV1 } from "./proto";
export {
  DRAIN_LIMIT_MS,
  MAGIC_COOKIE,
  MAX_CALLS_IN_FLIGHT,
  run,
  serve,
  serveRemote,
} from "./server";
export type { PluginSource, RemotePlugin, RunOptions, RunningPlugin } from "./server";
export type { RemoteOptions } from "./remote";
export * as session from "./session";
export * as proto from "./generated";
export { status as Status } from "@grpc/grpc-js";
// The grpc-js this package runs on: a client made by loadHookvisorProto() needs credentials from
// the same copy (grpc-js checks with instanceof).
export * as grpc from "@grpc/grpc-js";
