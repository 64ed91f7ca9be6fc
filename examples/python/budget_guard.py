"""budget-guard: blocks a session's tool calls past a configured count.

Registers `before_tool_call` in the hook stage, for the tools in `BUDGET_TOOLS` (every tool when
empty). Each call with a `context.session_key` counts against that session's budget; the call
that would exceed `BUDGET_MAX_CALLS` and every later one is blocked with
`session 'KEY' used its budget of N tool calls`. Calls without a session key are neither counted
nor blocked, and the probe tool `hookvisor-noop-probe` never is.

The count is what this plugin allowed, not what ran: a call another plugin blocked still counts.
At most `MAX_SESSIONS` sessions are tracked; past that the one seen least recently is forgotten
(and would start again from zero), which bounds the memory. Counts live in memory only: a
restart of the plugin starts every session from zero.

Configuration (environment):
- `BUDGET_MAX_CALLS`: required, a positive integer.
- `BUDGET_TOOLS`: optional comma-separated tool names to count (default: every tool).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict

import hookvisor_plugin
from hookvisor_plugin import ConfigError, Info, Registration, ToolCall, ToolCallDecision, decision

#: How many sessions are tracked at once; the least recently seen is forgotten past this.
MAX_SESSIONS = 10_000
#: The tool hookvisor's conformance check sends; it must get "no opinion".
PROBE_TOOL = "hookvisor-noop-probe"


class BudgetGuard(hookvisor_plugin.Plugin):
    def __init__(self, max_calls: int, tools: list[str]) -> None:
        self.max_calls = max_calls
        self.tools = tools
        self.used: OrderedDict[str, int] = OrderedDict()
        # Handlers run on several threads at once.
        self.lock = threading.Lock()

    @classmethod
    def from_env(cls) -> BudgetGuard:
        raw = os.environ.get("BUDGET_MAX_CALLS", "")
        try:
            max_calls = int(raw)
        except ValueError:
            max_calls = 0
        if max_calls < 1:
            raise ConfigError(f"BUDGET_MAX_CALLS must be a positive integer, got {raw!r}")
        tools = [t.strip() for t in os.environ.get("BUDGET_TOOLS", "").split(",") if t.strip()]
        return cls(max_calls, tools)

    def info(self) -> Info:
        return Info("budget-guard", "0.1.0", [Registration.before_tool_call(tools=self.tools)])

    def before_tool_call(self, call: ToolCall) -> ToolCallDecision:
        key = call.session_key
        if not key or call.tool_name == PROBE_TOOL:
            return decision.allow()
        if self.tools and call.tool_name not in self.tools:
            # Only before its first Describe is the plugin asked about other tools.
            return decision.allow()
        with self.lock:
            used = self.used.pop(key, 0)
            allowed = used < self.max_calls
            # Re-inserted last: the dict runs from least to most recently seen.
            self.used[key] = used + 1 if allowed else used
            if len(self.used) > MAX_SESSIONS:
                self.used.popitem(last=False)
        if allowed:
            return decision.allow()
        return decision.block(f"session '{key}' used its budget of {self.max_calls} tool calls")


if __name__ == "__main__":
    hookvisor_plugin.run(BudgetGuard.from_env)
