#!/usr/bin/env node
// no-rm-rf: blocks `exec` commands that run `rm` both recursive and forced (`rm -rf`, `rm -fr`,
// `rm -r -f`, `rm --recursive --force`); every other call has no opinion from it.
import { allow, block, run } from "@hookvisor/plugin";
import type { Info, Plugin, ToolCall, ToolCallDecision } from "@hookvisor/plugin";

class NoRmRf implements Plugin {
  info(): Info {
    return {
      name: "no-rm-rf",
      version: "0.1.0",
      // Only `exec` calls; leave `tools` out to be asked about every tool.
      hooks: [{ hook: "before_tool_call", tools: ["exec"], timeoutMs: 500 }],
    };
  }

  beforeToolCall(call: ToolCall): ToolCallDecision {
    const command = call.paramStr("command") ?? "";
    return runsRmRf(command) ? block(`'rm -rf' is not allowed: ${command}`) : allow();
  }
}

/** Whether one of the shell commands in `command` is `rm` with -r (or -R) and -f. */
function runsRmRf(command: string): boolean {
  return command.split(/[;&|\n()]+/).some((part) => {
    const words = part.trim().split(/\s+/);
    if (words[0] !== "rm" && !words[0].endsWith("/rm")) {
      return false;
    }
    const flags = words.slice(1).filter((word) => word.startsWith("-"));
    const has = (short: RegExp, long: string) =>
      flags.some((flag) => flag === long || (/^-[a-zA-Z]+$/.test(flag) && short.test(flag)));
    return has(/[rR]/, "--recursive") && has(/f/, "--force");
  });
}

run(new NoRmRf());
