// A fake OpenAI-compatible chat-completions server on 127.0.0.1 that scripts tool calls.
//
// Each script is keyed by a word in the user's message (`case:NAME`). The reply to a request is the
// script's step N, where N is how many assistant turns the conversation already holds after that
// message: so the first request gets step 0 (usually tool calls), the request that carries their
// results gets step 1, and past the end every reply is the text "done". Being a function of the
// conversation, it answers retries the same way. Replies stream as SSE `chat.completion.chunk`
// events (OpenClaw streams), or come whole when the request does not ask to stream.

import * as http from "node:http";
import type { AddressInfo } from "node:net";

export interface ToolCallStep {
  toolCalls: Array<{ name: string; args: Record<string, unknown> }>;
}
export interface TextStep {
  text: string;
}
export type Step = ToolCallStep | TextStep;

interface ChatMessage {
  role: string;
  content?: unknown;
  tool_calls?: unknown[];
  tool_call_id?: string;
}

/** One request the fake received, with the messages OpenClaw sent after the case's message. */
export interface ModelRequest {
  caseName: string | undefined;
  messages: ChatMessage[];
}

export class FakeModel {
  private readonly server: http.Server;
  private readonly scripts = new Map<string, Step[]>();
  readonly requests: ModelRequest[] = [];
  private callCounter = 0;

  private constructor() {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  static async start(): Promise<FakeModel> {
    const model = new FakeModel();
    await new Promise<void>((resolve) => model.server.listen(0, "127.0.0.1", resolve));
    return model;
  }

  get baseUrl(): string {
    const { port } = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/v1`;
  }

  /** Scripts the replies to the conversation whose user message contains `case:NAME`. */
  script(name: string, steps: Step[]): void {
    this.scripts.set(name, steps);
  }

  /** The content of every tool-result message OpenClaw sent back for the case, in order. */
  toolResults(name: string): string[] {
    const results = new Map<string, string>();
    for (const request of this.requests) {
      if (request.caseName !== name) continue;
      for (const message of request.messages) {
        if (message.role === "tool" && message.tool_call_id !== undefined) {
          results.set(message.tool_call_id, textOf(message.content));
        }
      }
    }
    return [...results.values()];
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      if (req.method !== "POST" || !req.url?.endsWith("/chat/completions")) {
        res.writeHead(404, { "content-type": "application/json" });
        res.end(JSON.stringify({ error: { message: `no route ${req.method} ${req.url}` } }));
        return;
      }
      let body: { messages?: ChatMessage[]; stream?: boolean; model?: string };
      try {
        body = JSON.parse(Buffer.concat(chunks).toString("utf8"));
      } catch {
        res.writeHead(400).end();
        return;
      }
      const messages = body.messages ?? [];
      const { caseName, start, step } = this.locate(messages);
      this.requests.push({ caseName, messages: messages.slice(start) });
      const steps = caseName === undefined ? undefined : this.scripts.get(caseName);
      const reply: Step = steps?.[step] ?? { text: "done" };
      this.reply(res, reply, body.model ?? "fake-model", body.stream === true);
    });
  }

  private locate(messages: ChatMessage[]): {
    caseName: string | undefined;
    start: number;
    step: number;
  } {
    let index = -1;
    let caseName: string | undefined;
    messages.forEach((message, i) => {
      if (message.role !== "user") return;
      const match = /case:([A-Za-z0-9_-]+)/.exec(textOf(message.content));
      if (match) {
        index = i;
        caseName = match[1];
      }
    });
    const step = messages.slice(index + 1).filter((m) => m.role === "assistant").length;
    return { caseName, start: index + 1, step };
  }

  private reply(res: http.ServerResponse, step: Step, model: string, stream: boolean): void {
    const id = `chatcmpl-${++this.callCounter}`;
    const created = Math.floor(Date.now() / 1000);
    const toolCalls =
      "toolCalls" in step
        ? step.toolCalls.map((call, index) => ({
            index,
            id: `call_${this.callCounter}_${index}`,
            type: "function",
            function: { name: call.name, arguments: JSON.stringify(call.args) },
          }))
        : undefined;
    const finish = toolCalls ? "tool_calls" : "stop";
    const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
    if (!stream) {
      const message = toolCalls
        ? { role: "assistant", content: null, tool_calls: toolCalls.map(({ index, ...c }) => c) }
        : { role: "assistant", content: (step as TextStep).text };
      res.writeHead(200, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id,
          object: "chat.completion",
          created,
          model,
          choices: [{ index: 0, message, finish_reason: finish }],
          usage,
        }),
      );
      return;
    }
    res.writeHead(200, {
      "content-type": "text/event-stream",
      "cache-control": "no-cache",
      connection: "keep-alive",
    });
    const chunk = (choice: unknown, extra: Record<string, unknown> = {}) =>
      res.write(
        `data: ${JSON.stringify({ id, object: "chat.completion.chunk", created, model, choices: [choice], ...extra })}\n\n`,
      );
    const delta = toolCalls
      ? { role: "assistant", content: null, tool_calls: toolCalls }
      : { role: "assistant", content: (step as TextStep).text };
    chunk({ index: 0, delta, finish_reason: null });
    chunk({ index: 0, delta: {}, finish_reason: finish }, { usage });
    res.end("data: [DONE]\n\n");
  }
}

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content
      .map((part) =>
        typeof part === "object" && part !== null && "text" in part ? String(part.text) : "",
      )
      .join("");
  }
  return "";
}
