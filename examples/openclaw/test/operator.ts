// An operator client of the OpenClaw gateway that can approve, run as its own process by
// approval.test.ts (`node dist/test/operator.js URL TOKEN [no-approvals]`, with the OpenClaw
// home's environment, so its device identity lives in that home). It is OpenClaw's own
// `GatewayClient`, connected as a backend with the scopes operator.read, operator.write and
// operator.approvals and the `approvals` capability (left out with `no-approvals`): the gateway
// delivers plugin approvals only while a client with both is connected. Each line on stdin is a
// request `{"id", "method", "params"}`; each line on stdout is JSON: `{"ready": true}` once
// connected, `{"id", "ok", "result" | "error"}` for a request, `{"event", "payload"}` for plugin
// approval events and for the end of a chat run, and `{"closed"}` or `{"connectError"}` when the
// connection fails.

import * as readline from "node:readline";

function print(line: unknown): void {
  process.stdout.write(JSON.stringify(line) + "\n");
}

/** The events the test waits on: approvals asked and answered, and chat runs ending. */
function wanted(event: string, payload: unknown): boolean {
  if (event.startsWith("plugin.approval.")) return true;
  const state = (payload as { state?: unknown } | undefined)?.state;
  return event === "chat" && (state === "final" || state === "error" || state === "aborted");
}

async function main(): Promise<void> {
  const [url, token, mode] = process.argv.slice(2);
  if (!url || !token || (mode !== undefined && mode !== "no-approvals")) {
    throw new Error("usage: operator.js URL TOKEN [no-approvals]");
  }
  const { GatewayClient } = await import("openclaw/plugin-sdk/gateway-runtime");
  const client = new GatewayClient({
    url,
    token,
    clientName: "gateway-client",
    clientDisplayName: "hookvisor approval test",
    mode: "backend",
    scopes: ["operator.read", "operator.write", "operator.approvals"],
    caps: mode === "no-approvals" ? [] : ["approvals"],
    onHelloOk: () => print({ ready: true }),
    onConnectError: (err) => print({ connectError: String(err) }),
    onClose: (code, reason) => print({ closed: code, reason }),
    onEvent: (frame) => {
      if (wanted(frame.event, frame.payload)) print({ event: frame.event, payload: frame.payload });
    },
  });
  client.start();
  readline.createInterface({ input: process.stdin }).on("line", (line) => {
    const { id, method, params } = JSON.parse(line) as {
      id: number;
      method: string;
      params: unknown;
    };
    client.request(method, params).then(
      (result) => print({ id, ok: true, result }),
      (err: unknown) => print({ id, ok: false, error: String(err) }),
    );
  });
  process.on("SIGTERM", () => {
    client.stop();
    process.exit(0);
  });
}

main().catch((err: unknown) => {
  print({ connectError: String(err) });
  process.exit(1);
});
