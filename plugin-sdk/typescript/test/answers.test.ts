// Answer constructors, registrations and request views, without a process.

import assert from "node:assert/strict";
import { test } from "node:test";

import { status } from "@grpc/grpc-js";

import {
  MAX_DESCRIPTION_CHARS,
  MAX_TITLE_CHARS,
  PluginError,
  ToolCall,
  allow,
  approvalRequest,
  block,
  combine,
  requireApproval,
  rewrite,
  session,
  truncate,
} from "../src";
import type { HookName } from "../src";
import { InvalidAnswer, sessionAnswer, toolCallAnswer } from "../src/answer";
import { DECISION } from "../src/decision";
import { toPluginInfo } from "../src/info";

test("tool call decisions", () => {
  assert.deepEqual(allow(), {});
  assert.deepEqual(block("no"), { block: true, block_reason: "no" });
  assert.deepEqual(rewrite({ b: 1, a: [null] }), { params_json: '{"b":1,"a":[null]}' });
  assert.throws(() => rewrite([] as unknown as Record<string, unknown>), TypeError);
});

test("helpers' answers are marked, and become the message they say", () => {
  for (const decision of [allow(), block("no"), rewrite({}), requireApproval({ title: "t" })]) {
    assert.equal(decision[DECISION], "tool_call");
    assert.deepEqual(toolCallAnswer(decision), decision);
  }
  for (const decision of [session.allow(), session.block("no"), session.patch(1)]) {
    assert.equal(decision[DECISION], "session");
    assert.deepEqual(sessionAnswer(decision), decision);
  }
  const combined = combine(rewrite({ a: 1 }), requireApproval({ title: "t" }), block("no"));
  assert.equal(combined[DECISION], "tool_call");
  assert.deepEqual(Object.keys(toolCallAnswer(combined)), [
    "block",
    "block_reason",
    "params_json",
    "require_approval",
  ]);
  assert.throws(() => combine(allow(), {} as ReturnType<typeof allow>), /argument 2 is not one/);
  // The mark is not enumerable: JSON, deepEqual and spread copies never see it.
  assert.equal(JSON.stringify(block("no")), '{"block":true,"block_reason":"no"}');
  assert.equal({ ...allow() }[DECISION], undefined);
});

test("anything else is an InvalidAnswer naming what came back", () => {
  const refused: [unknown, RegExp][] = [
    [undefined, /^handler beforeToolCall returned undefined; return allow\(\), block\(reason\)/],
    [null, /returned null;/],
    [7, /returned the number 7;/],
    ["x".repeat(100), /returned the string "x{38}…;/],
    [{}, /returned an object that none of the SDK's helpers made \(no keys\);/],
    [{ blocked: true }, /made \(keys "blocked"\);/],
    [{ ...rewrite({}) }, /made \(keys "params_json"; a spread copy of an answer is not one, join/],
    [new Map(), /returned an object that is not an answer \(an instance of Map\);/],
    [Object.assign(allow(), { blockReason: "x", why: 1 }), /unknown keys "blockReason", "why";/],
    [
      Object.assign(allow(), { params_json: 1 }),
      /whose params_json is the number 1, not a string;/,
    ],
    [Object.assign(allow(), { require_approval: "yes" }), /require_approval is the string "yes";/],
    [Object.assign(allow(), { require_approval: { title: 1 } }), /approval.title is the number 1;/],
    [session.allow(), /returned an answer to a session/],
  ];
  for (const [value, message] of refused) {
    assert.throws(
      () => toolCallAnswer(value),
      (err: unknown) => err instanceof InvalidAnswer && message.test(err.message),
      String(message),
    );
  }
  assert.throws(() => sessionAnswer(allow()), /beforeSessionCreate returned an answer to a tool/);
  assert.throws(
    () => sessionAnswer(undefined),
    /; return session.allow\(\), session.block\(reason\) or session.patch\(value\)$/,
  );
});

test("approval requests: defaults, names, limits", () => {
  assert.deepEqual(requireApproval({ title: "Run exec?" }).require_approval, {
    title: "Run exec?",
    description: "",
    severity: "SEVERITY_UNSPECIFIED",
    timeout_ms: 0,
    allowed_decisions: [],
  });
  const ask = approvalRequest({
    title: "t".repeat(200),
    description: "é".repeat(1000),
    severity: "warning",
    allowedDecisions: ["allow-always"],
  });
  assert.equal(Array.from(ask.title ?? "").length, MAX_TITLE_CHARS);
  assert.ok(ask.title?.endsWith("…"));
  assert.equal(Array.from(ask.description ?? "").length, MAX_DESCRIPTION_CHARS);
  assert.equal(ask.severity, "SEVERITY_WARNING");
  assert.deepEqual(ask.allowed_decisions, ["APPROVAL_DECISION_ALLOW_ALWAYS"]);
  assert.equal(approvalRequest({ title: "  " }).title, "Approval required");
});

test("truncate counts code points", () => {
  assert.equal(truncate("abc", 3), "abc");
  assert.equal(truncate("abcd", 3), "ab…");
  assert.equal(truncate("😀😀😀", 3), "😀😀😀");
  assert.equal(truncate("abc", 0), "…");
});

test("session decisions", () => {
  assert.deepEqual(session.allow(), {});
  assert.deepEqual(session.block("nope"), { block: true, block_reason: "nope" });
  assert.deepEqual(session.patch({ labels: ["a"] }), { metadata_json: '{"labels":["a"]}' });
  assert.deepEqual(session.patch(null), { metadata_json: "null" });
  assert.throws(() => session.patch(undefined), TypeError);
});

test("registrations become PluginInfo; unknown hooks are refused", () => {
  const info = toPluginInfo(
    {
      version: "1",
      hooks: [
        {
          hook: "before_tool_call",
          stage: "policy",
          priority: 100,
          tools: ["exec"],
          timeoutMs: 200,
        },
      ],
    },
    "configured",
  );
  assert.deepEqual(info, {
    name: "configured",
    version: "1",
    protocol_version: 1,
    hooks: [
      {
        hook: "HOOK_BEFORE_TOOL_CALL",
        stage: "STAGE_POLICY",
        priority: 100,
        tools: ["exec"],
        timeout_ms: 200,
      },
    ],
  });
  assert.throws(
    () => toPluginInfo({ hooks: [{ hook: "after_tool_call" as HookName }] }, ""),
    /unknown hook "after_tool_call"/,
  );
});

test("a tool call view refuses params that are not an object", () => {
  const request = {
    tool_name: "exec",
    params_json: '{"command":"ls","n":1}',
    context: null,
    session_metadata_json: "",
    deadline_ms: 0,
  };
  const call = new ToolCall(request, new AbortController().signal);
  assert.equal(call.paramStr("command"), "ls");
  assert.equal(call.paramStr("n"), undefined);
  assert.equal(call.metadata, undefined);
  assert.equal(call.workspaceDir, "");
  assert.throws(
    () => new ToolCall({ ...request, params_json: "[]" }, new AbortController().signal),
    (err: unknown) =>
      err instanceof PluginError &&
      err.code === status.INVALID_ARGUMENT &&
      err.message === "params_json must be a JSON object, got an array",
  );
});
