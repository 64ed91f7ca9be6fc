// The translation tables, without OpenClaw or hookvisor: request fields, each outcome, each
// failure, and the config schema (code and manifest agree).

import * as assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { describe, it } from "node:test";

import { status as Status } from "@grpc/grpc-js";
import type { proto } from "@hookvisor/plugin";

import {
  DEFAULT_DEADLINE_MS,
  DEFAULT_REPORT_INTERVAL_MS,
  DEFAULT_SOCKET,
  defaultHost,
  parseConfig,
} from "../src/config";
import { MAX_REPORT_TOOLS, OTHER_TOOL, ToolCounts } from "../src/report";
import {
  decisionFromError,
  decisionFromVerdict,
  toolCallRequest,
  unavailableCause,
} from "../src/verdict";

function verdict(fields: Partial<proto.ToolCallVerdict__Output>): proto.ToolCallVerdict__Output {
  return {
    outcome: "OUTCOME_ALLOW",
    params_json: "{}",
    params_changed: false,
    block_reason: "",
    block_kind: "BLOCK_KIND_UNSPECIFIED",
    decided_by: "",
    approval: null,
    approval_plugin: "",
    trace: [],
    ...fields,
  };
}

describe("toolCallRequest", () => {
  it("maps the event, the context and the workspace", () => {
    const request = toolCallRequest(
      { toolName: "write", params: { path: "a.txt" }, runId: "run-1", toolCallId: "call-1" },
      {
        agentId: "main",
        sessionKey: "agent:main:main",
        sessionId: "s-1",
        channelId: "discord",
        requester: { channel: "discord", accountId: "acc", senderId: "u1", senderIsOwner: true },
      },
      "/srv/ws",
    );
    assert.deepEqual(request, {
      tool_name: "write",
      params_json: '{"path":"a.txt"}',
      context: {
        agent_id: "main",
        session_key: "agent:main:main",
        session_id: "s-1",
        run_id: "run-1",
        tool_call_id: "call-1",
        workspace_dir: "/srv/ws",
        channel_id: "discord",
        requester: {
          channel: "discord",
          account_id: "acc",
          sender_id: "u1",
          sender_is_owner: true,
        },
      },
      session_metadata: {},
      dispatch: false,
    });
  });

  it("marks Tool Search's tool_call as a dispatch", () => {
    const request = toolCallRequest(
      { toolName: "tool_call", params: { name: "exec", args: {} } },
      {},
      undefined,
    );
    assert.equal(request.dispatch, true);
  });

  it("takes run and call ids from the context when the event has none", () => {
    const request = toolCallRequest(
      { toolName: "x", params: {} },
      { runId: "r", toolCallId: "c" },
      undefined,
    );
    assert.equal(request.context?.run_id, "r");
    assert.equal(request.context?.tool_call_id, "c");
    assert.equal(request.context?.workspace_dir, "");
    assert.equal(request.context?.requester, null);
  });

  it("throws on params that are not JSON", () => {
    assert.throws(() => toolCallRequest({ toolName: "x", params: { n: 1n } }, {}, undefined));
  });
});

describe("decisionFromVerdict", () => {
  it("allows with no opinion when nothing changed", () => {
    assert.equal(decisionFromVerdict(verdict({ params_json: '{"a":1}' })), undefined);
  });

  it("hands back rewritten params", () => {
    assert.deepEqual(
      decisionFromVerdict(verdict({ params_json: '{"path":"/ws/a"}', params_changed: true })),
      { params: { path: "/ws/a" } },
    );
  });

  it("blocks naming the deciding plugin", () => {
    assert.deepEqual(
      decisionFromVerdict(
        verdict({ outcome: "OUTCOME_BLOCK", block_reason: "no", decided_by: "deny-list" }),
      ),
      { block: true, blockReason: "hookvisor: blocked by plugin 'deny-list': no" },
    );
  });

  it("names a failing plugin once, with what happened", () => {
    assert.equal(
      decisionFromVerdict(
        verdict({
          outcome: "OUTCOME_BLOCK",
          block_kind: "BLOCK_KIND_FAILURE",
          block_reason: "plugin 'oc3-guard' timed out after 1499 ms",
          decided_by: "oc3-guard",
        }),
      )?.blockReason,
      "hookvisor: plugin 'oc3-guard' timed out after 1499 ms; the call is blocked",
    );
    assert.equal(
      decisionFromVerdict(
        verdict({
          outcome: "OUTCOME_BLOCK",
          block_kind: "BLOCK_KIND_POLICY",
          block_reason: "blocked by deny-list",
          decided_by: "deny-list",
        }),
      )?.blockReason,
      "hookvisor: blocked by plugin 'deny-list'",
    );
  });

  it("asks for approval with every field, defaults filled in", () => {
    const decision = decisionFromVerdict(
      verdict({
        outcome: "OUTCOME_REQUIRE_APPROVAL",
        params_json: '{"command":"ls"}',
        params_changed: true,
        approval: {
          title: "Run exec?",
          description: "main wants to run ls",
          severity: "SEVERITY_UNSPECIFIED",
          timeout_ms: 0,
          allowed_decisions: [],
        },
        approval_plugin: "approval-gate",
      }),
    );
    assert.deepEqual(decision, {
      params: { command: "ls" },
      requireApproval: {
        title: "Run exec?",
        description: "main wants to run ls",
        severity: "warning",
        timeoutMs: 120_000,
        allowedDecisions: ["allow-once", "allow-always", "deny"],
      },
    });
  });

  it("maps severity, timeout and allowed decisions as given", () => {
    const decision = decisionFromVerdict(
      verdict({
        outcome: "OUTCOME_REQUIRE_APPROVAL",
        approval: {
          title: "t",
          description: "d",
          severity: "SEVERITY_CRITICAL",
          timeout_ms: 3000,
          allowed_decisions: ["APPROVAL_DECISION_ALLOW_ONCE", "APPROVAL_DECISION_DENY"],
        },
      }),
    );
    assert.deepEqual(decision?.requireApproval, {
      title: "t",
      description: "d",
      severity: "critical",
      timeoutMs: 3000,
      allowedDecisions: ["allow-once", "deny"],
    });
  });

  it("blocks on anything it cannot read", () => {
    for (const bad of [
      verdict({ outcome: "OUTCOME_UNSPECIFIED" }),
      verdict({ params_json: "[1]", params_changed: true }),
      verdict({ params_json: "{", params_changed: true }),
      verdict({ outcome: "OUTCOME_REQUIRE_APPROVAL", approval: null }),
    ]) {
      assert.equal(decisionFromVerdict(bad)?.block, true, JSON.stringify(bad));
    }
  });
});

describe("decisionFromError", () => {
  it("blocks with a reason for each status", () => {
    const reason = (code: Status, details = "") =>
      decisionFromError({ code, details }, "/run/h.sock", 250).blockReason;
    assert.equal(
      reason(
        Status.UNAVAILABLE,
        "No connection established. Last error: connect ENOENT /run/h.sock. Resolution note: ",
      ),
      "hookvisor is unavailable at /run/h.sock (no socket there: is hookvisor running, and is this its socket?); the call is blocked",
    );
    assert.equal(reason(Status.UNAVAILABLE, "hookvisor is shutting down")?.includes("note"), false);
    assert.equal(
      reason(Status.DEADLINE_EXCEEDED),
      "hookvisor gave no verdict within 250 ms; the call is blocked",
    );
    assert.match(
      reason(Status.INVALID_ARGUMENT, "params_json: duplicate key") ?? "",
      /INVALID_ARGUMENT: params_json: duplicate key/,
    );
    assert.match(
      reason(Status.RESOURCE_EXHAUSTED) ?? "",
      /RESOURCE_EXHAUSTED; the call is blocked/,
    );
  });
});

describe("unavailableCause", () => {
  it("says what to do for each errno, and drops grpc-js's empty note", () => {
    const details = (error: string) =>
      `No connection established. Last error: ${error}. Resolution note: `;
    assert.match(unavailableCause(details("connect ECONNREFUSED /r.sock")), /nothing listens/);
    assert.match(unavailableCause(details("connect EACCES /r.sock")), /socket_mode/);
    assert.equal(unavailableCause(details("Error: odd")), "Error: odd");
    assert.equal(unavailableCause(""), "no connection");
  });
});

describe("ToolCounts", () => {
  it("counts per tool and keeps to the contract's caps", () => {
    const counts = new ToolCounts();
    counts.asked("exec");
    counts.ran("exec");
    counts.ran("exec");
    for (let i = 0; i < MAX_REPORT_TOOLS + 10; i++) counts.asked(`t${i}`);
    counts.asked("x".repeat(257));
    const report = counts.toReport();
    assert.equal(report.length, MAX_REPORT_TOOLS);
    assert.deepEqual(report[0], { tool: "exec", asked: 1, ran: 2 });
    // 255 named tools fit; 12 more and the over-long name go to _other.
    assert.equal(report.find((t) => t.tool === OTHER_TOOL)?.asked, 13);
  });
});

describe("config", () => {
  it("defaults when absent", () => {
    assert.deepEqual(parseConfig(undefined), {
      ok: true,
      value: {
        socket: DEFAULT_SOCKET,
        deadlineMs: DEFAULT_DEADLINE_MS,
        host: defaultHost(),
        reportIntervalMs: DEFAULT_REPORT_INTERVAL_MS,
      },
    });
  });

  it("refuses bad values, control characters and unknown keys", () => {
    for (const bad of [
      { socket: "relative.sock" },
      { socket: "/run/hook\nvisor.sock" },
      { socket: "/run/hook\u0007visor.sock" },
      { socket: "/run/hook\u009bvisor.sock" },
      { socket: "/" + "s".repeat(107) },
      { deadlineMs: 0 },
      { deadlineMs: 1.5 },
      { host: "" },
      { host: "gw\u001b[2J" },
      { host: "unreported" },
      { host: "h".repeat(129) },
      { reportIntervalMs: 99 },
      { reportIntervalMs: 3_600_001 },
      { nope: 1 },
      [],
      "x",
    ]) {
      assert.equal(parseConfig(bad).ok, false, JSON.stringify(bad));
    }
  });

  it("agrees with the manifest's schema", () => {
    const manifest = JSON.parse(
      fs.readFileSync(path.join(__dirname, "..", "..", "openclaw.plugin.json"), "utf8"),
    );
    const props = manifest.configSchema.properties;
    assert.deepEqual(Object.keys(props).sort(), [
      "deadlineMs",
      "host",
      "reportIntervalMs",
      "socket",
    ]);
    assert.equal(props.socket.default, DEFAULT_SOCKET);
    assert.equal(props.deadlineMs.default, DEFAULT_DEADLINE_MS);
    assert.equal(props.reportIntervalMs.default, DEFAULT_REPORT_INTERVAL_MS);
    // Nothing in it refuses a value: OpenClaw would not load the plugin, and nothing would block.
    const refusing = ["type", "minimum", "maximum", "minLength", "pattern", "additionalProperties"];
    for (const schema of [manifest.configSchema, ...Object.values(props)]) {
      for (const keyword of refusing) {
        assert.equal(keyword in (schema as object), false, keyword);
      }
    }
    assert.deepEqual(manifest.contracts.trustedToolPolicies, ["hookvisor"]);
  });
});
