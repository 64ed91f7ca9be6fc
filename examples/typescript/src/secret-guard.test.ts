import assert from "node:assert/strict";
import { test } from "node:test";

import { BUILT_IN, SecretGuard, findSecret, parsePatterns } from "./secret-guard";
import { ToolCall } from "@hookvisor/plugin";

// Made-up credentials of the right shapes, assembled so no scanner flags this file.
const AWS = "AKIA" + "IOSFODNN7EXAMPLE";
const GITHUB = "ghp_" + "a".repeat(36);
const GITHUB_PAT = "github_pat_" + "11ABCDEFG0".repeat(3);
const SLACK = "xox" + "b-1234567890-abcdef";
const PEM =
  "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=\n-----END OPENSSH PRIVATE KEY-----";

test("finds each built-in kind and names its path, never the secret", () => {
  const cases: [unknown, string][] = [
    [{ env: { KEY: AWS } }, "params contain an AWS access key id at $.env.KEY"],
    [
      { files: [{ text: "x" }, { text: PEM }] },
      "params contain a PEM private key at $.files[1].text",
    ],
    [
      { command: `git clone https://${GITHUB}@github.com/o/r` },
      "params contain a GitHub token at $.command",
    ],
    [{ token: GITHUB_PAT }, "params contain a GitHub token at $.token"],
    [{ "x-header": `Bearer ${SLACK}` }, 'params contain a Slack token at $["x-header"]'],
    [{ [AWS]: 1 }, "params contain an AWS access key id in a key of $"],
  ];
  for (const [params, reason] of cases) {
    const found = findSecret(params, BUILT_IN);
    assert.equal(found, reason);
    for (const secret of [AWS, GITHUB, GITHUB_PAT, SLACK, "OPENSSH PRIVATE"]) {
      assert.ok(!found?.includes(secret), found);
    }
  }
});

test("ordinary params pass", () => {
  const params = {
    command: "ls -la",
    n: 3,
    nested: [null, true, { path: "/srv/AKIA", note: "xoxb- ghp_short -----BEGIN PUBLIC KEY-----" }],
  };
  assert.equal(findSecret(params, BUILT_IN), undefined);
});

test("extra patterns: newline or ;; separated, invalid ones refused", () => {
  const extra = parsePatterns("corp-[0-9]{6}\n ;; sk_live_\\w+ ;;");
  assert.equal(extra.length, 2);
  assert.equal(
    findSecret({ a: ["x", "key sk_live_abc"] }, extra),
    "params contain a match of SECRET_GUARD_PATTERNS #2 at $.a[1]",
  );
  assert.deepEqual(parsePatterns(""), []);
  assert.throws(
    () => parsePatterns("ok;;(unclosed"),
    /SECRET_GUARD_PATTERNS: pattern #2 is not a valid regex/,
  );
});

test("the plugin blocks secrets in any tool but never the probe", () => {
  const guard = new SecretGuard(BUILT_IN);
  const call = (tool: string) =>
    new ToolCall(
      {
        tool_name: tool,
        params_json: JSON.stringify({ env: { KEY: AWS } }),
        context: null,
        session_metadata_json: "",
        deadline_ms: 0,
      },
      new AbortController().signal,
    );
  assert.equal(
    guard.beforeToolCall(call("exec")).block_reason,
    "params contain an AWS access key id at $.env.KEY",
  );
  assert.deepEqual(guard.beforeToolCall(call("hookvisor-noop-probe")), {});
});
