# The example policy of docs/opa.md, asked by the OPA bridge (examples/plugins/opa-bridge) at
# data.hookvisor.decision (OPA_BRIDGE_PATH=hookvisor/decision). The bridge's input is the tool
# call: {hook, tool_name, params, context, metadata, request_id}. The decision is an object with
# `allow` and, as the case may be, `reason`, `params` (the rewritten params) or `approval`.
package hookvisor

# Denied first, then rewritten, then asked, else allowed: exactly one value, never a conflict.
decision := {"allow": false, "reason": concat("; ", sort(denials))} if {
	count(denials) > 0
} else := {"allow": true, "params": rewritten} if {
	rewritten
} else := {"allow": true, "approval": approval} if {
	approval
} else := {"allow": true}

shell_tools := {"exec", "bash", "shell"}

denials contains sprintf("the tool '%s' is not allowed by the organisation's policy", [input.tool_name]) if {
	input.tool_name in {"dangerous_tool", "format_disk"}
}

denials contains sprintf("the command '%s' is destructive", [input.params.command]) if {
	input.tool_name in shell_tools
	regex.match(`rm\s+-[a-zA-Z]*r[a-zA-Z]*\s+/(\s|$)`, input.params.command)
}

# Plain-HTTP fetches go over HTTPS instead.
rewritten := object.union(input.params, {"url": concat("", ["https://", trim_prefix(input.params.url, "http://")])}) if {
	input.tool_name == "web_fetch"
	startswith(input.params.url, "http://")
}

# A push leaves the machine: a human says yes first.
approval := {
	"title": "Push to a remote?",
	"description": sprintf("Agent '%s' wants to run: %s", [input.context.agent_id, input.params.command]),
	"severity": "warning",
	"timeout_ms": 60000,
} if {
	input.tool_name in shell_tools
	startswith(input.params.command, "git push")
}
