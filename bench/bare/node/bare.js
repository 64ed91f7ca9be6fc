#!/usr/bin/env node
// The bare grpc-js server of `hookvisor bench` (issue 21 §2): hookvisor.v1.Plugin written directly
// on @grpc/grpc-js and @grpc/proto-loader, nothing of the SDK, so the TypeScript SDK's trivial
// plugin can be held against the floor its own library sets. `Describe` answers a valid PluginInfo
// (before_tool_call, every tool); `BeforeToolCall` decodes the request and answers "no opinion"
// (an empty ToolCallDecision). Listens on the Unix socket named by HOOKVISOR_PLUGIN_SOCKET.
//
// Plain JavaScript, no build step. grpc-js and proto-loader come from the TypeScript SDK's
// node_modules and the proto from the repository's proto/, both found from this file's place.
// proto-loader (protobufjs reflection, messages decoded into plain objects) is the fastest plain
// grpc-js way there is: grpc-js has no static code generator of its own (grpc-tools' static code
// needs protoc and google-protobuf, which decodes no faster), and the SDK loads the same way.
"use strict";

const path = require("node:path");

const repo = path.join(__dirname, "..", "..", "..");
const modules = path.join(repo, "plugin-sdk", "typescript", "node_modules");
const grpc = require(path.join(modules, "@grpc", "grpc-js"));
const protoLoader = require(path.join(modules, "@grpc", "proto-loader"));

const socketPath = process.env.HOOKVISOR_PLUGIN_SOCKET;
if (!socketPath || !path.isAbsolute(socketPath)) {
  process.stderr.write("bare.js: HOOKVISOR_PLUGIN_SOCKET must be an absolute socket path\n");
  process.exit(1);
}

const definition = protoLoader.loadSync(
  path.join(repo, "proto", "hookvisor", "v1", "hookvisor.proto"),
  {
    keepCase: true,
    enums: String,
  },
);
const { Plugin } = grpc.loadPackageDefinition(definition).hookvisor.v1;

const info = {
  name: "bare-node",
  version: "0.1.0",
  protocol_version: 1,
  hooks: [{ hook: "HOOK_BEFORE_TOOL_CALL", stage: "STAGE_HOOK" }],
};
const noOpinion = {};

const server = new grpc.Server();
server.addService(Plugin.service, {
  Describe: (_call, callback) => callback(null, info),
  BeforeToolCall: (_call, callback) => callback(null, noOpinion),
  BeforeSessionCreate: (_call, callback) => callback(null, {}),
  SessionCreated: (_call, callback) => callback(null, {}),
});
server.bindAsync(`unix:${socketPath}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`bare.js: cannot bind ${socketPath}: ${err.message}\n`);
    process.exit(2);
  }
});
for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => server.tryShutdown(() => process.exit(0)));
}
