"""no-rm-rf: blocks `rm -rf` in `exec` commands; every other call goes through unchanged.

A starting point for a plugin of your own: copy this folder, rename the plugin in `info()` and
put your policy in `before_tool_call`. The SDK (`hookvisor-plugin`) owns the rest: the socket,
the handshake, health checks, signals and exit codes.
"""

from __future__ import annotations

import re

import hookvisor_plugin
from hookvisor_plugin import Info, Registration, ToolCall, ToolCallDecision, decision

#: `rm` given a recursive and a force flag, together or apart, in either order: `rm -rf`,
#: `rm -fr`, `rm -Rf`, `rm -r -f`, `rm --recursive --force`.
RM_RF = re.compile(
    r"\brm(?=(?:\s+-\S+)*\s+(?:-[a-zA-Z]*[rR]|--recursive\b))"
    r"(?=(?:\s+-\S+)*\s+(?:-[a-zA-Z]*f|--force\b))"
)


class NoRmRf(hookvisor_plugin.Plugin):
    def info(self) -> Info:
        # Asked about `exec` calls only; without `tools` it would be asked about every tool.
        return Info("no-rm-rf", "0.1.0", [Registration.before_tool_call(tools=["exec"])])

    def before_tool_call(self, call: ToolCall) -> ToolCallDecision:
        command = call.param_str("command") or ""
        if RM_RF.search(command):
            return decision.block(f"`rm -rf` is not allowed here: {command}")
        return decision.allow()


if __name__ == "__main__":
    hookvisor_plugin.run(NoRmRf)
