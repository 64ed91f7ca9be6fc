// The contract's proto loaded for grpc-js, shared by the plugin server and by host-side clients.
//
// A host adapter (a program that calls `hookvisor.v1.Hooks` on the supervisor's socket) needs only
// this and the `proto` types:
//
//   const { Hooks } = loadHookvisorProto();
//   const hooks = new Hooks("unix:/run/hookvisor/hookvisor.sock", grpc.credentials.createInsecure());
//   hooks.beforeToolCall({ tool_name: "exec", params_json: "{}" }, (err, verdict) => { ... });

import * as path from "node:path";

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";

import type { ProtoGrpcType } from "./generated/hookvisor";

/** The copy of `hookvisor.proto` shipped in this package (generate.sh keeps it in step). */
export const PROTO_PATH = path.join(
  __dirname,
  "..",
  "..",
  "proto",
  "hookvisor",
  "v1",
  "hookvisor.proto",
);

/**
 * The loader options the generated `proto` types describe: field names as in the .proto
 * (`params_json`), enums as their names, 64-bit integers as strings, unset fields filled with
 * their defaults on messages received.
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: String,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** The `hookvisor.v1` package: both services' client constructors and definitions, typed. */
export type HookvisorV1 = ProtoGrpcType["hookvisor"]["v1"];

let loaded: HookvisorV1 | undefined;

/** Loads (once) `hookvisor.v1` from the shipped proto for grpc-js. */
export function loadHookvisorProto(): HookvisorV1 {
  if (loaded === undefined) {
    const definition = protoLoader.loadSync(PROTO_PATH, LOADER_OPTIONS);
    const root = grpc.loadPackageDefinition(definition) as unknown as ProtoGrpcType;
    loaded = root.hookvisor.v1;
  }
  return loaded;
}
