# `opa test examples/opa/bundle examples/opa/tests`: the example policy's answers, without the
# bridge (tests/tests/opa.rs runs it, and the same cases through the bridge and hookvisor).
package hookvisor_test

import data.hookvisor

test_allows_an_ordinary_call if {
	hookvisor.decision == {"allow": true} with input as {"tool_name": "read", "params": {"path": "a.txt"}}
}

test_blocks_a_listed_tool if {
	d := hookvisor.decision with input as {"tool_name": "dangerous_tool", "params": {}}
	d.allow == false
	d.reason == "the tool 'dangerous_tool' is not allowed by the organisation's policy"
}

test_blocks_a_destructive_command if {
	d := hookvisor.decision with input as {"tool_name": "exec", "params": {"command": "rm -rf /"}}
	d == {"allow": false, "reason": "the command 'rm -rf /' is destructive"}
}

test_allows_removing_a_build_directory if {
	hookvisor.decision == {"allow": true} with input as {"tool_name": "exec", "params": {"command": "rm -rf ./build"}}
}

test_rewrites_plain_http_to_https if {
	d := hookvisor.decision with input as {"tool_name": "web_fetch", "params": {"url": "http://example.com/a", "max": 5}}
	d == {"allow": true, "params": {"url": "https://example.com/a", "max": 5}}
}

test_asks_before_a_push if {
	d := hookvisor.decision with input as {"tool_name": "exec", "params": {"command": "git push origin main"}, "context": {"agent_id": "main"}}
	d.allow == true
	d.approval.title == "Push to a remote?"
	d.approval.description == "Agent 'main' wants to run: git push origin main"
}
