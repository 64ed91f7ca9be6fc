// Command path-guard keeps file tools inside the session's workspace (a port of the Rust example
// examples/plugins/src/bin/path-guard.rs, with the same behaviour and messages).
//
// It registers before_tool_call in the hook stage for the file tools. For each of the params
// "path" and "file_path" that is a string, it resolves the path against the call context's
// workspace_dir and normalizes it lexically ("." and ".." folded; the filesystem is not touched,
// so symlinks are not followed). A path that ends up outside the workspace is blocked; a path that
// was relative or not normalized is rewritten to the absolute normalized form (the whole params
// object is returned with only those keys replaced). Calls without those params pass. A call with
// a path but no (or a relative) workspace_dir in its context is blocked.
//
// Configuration (environment):
//   - PATH_GUARD_TOOLS: comma-separated tool names to guard; default "read,write,edit";
//     "*" alone guards every tool (a registration with no tools filter).
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	hookvisor "hookvisor.dev/plugin-sdk/go"
)

const version = "0.1.0"

var pathKeys = []string{"path", "file_path"}

type pathGuard struct {
	tools []string // nil: every tool
}

func (g pathGuard) Info() hookvisor.Info {
	return hookvisor.Info{Name: "path-guard", Version: version, Hooks: []hookvisor.Registration{
		{Hook: hookvisor.HookBeforeToolCall, Stage: hookvisor.StageHook, Tools: g.tools},
	}}
}

func (pathGuard) BeforeToolCall(_ context.Context, call *hookvisor.ToolCall) (*hookvisor.Decision, error) {
	params, err := guard(call.WorkspaceDir, call.Params)
	switch {
	case err != nil:
		return hookvisor.Block(err.Error()), nil
	case params != nil:
		return hookvisor.Rewrite(params)
	default:
		return hookvisor.Allow(), nil
	}
}

// guard is params with every path key resolved: nil when nothing changes, an error to block.
func guard(workspace string, params map[string]any) (map[string]any, error) {
	var rewritten map[string]any
	for _, key := range pathKeys {
		path, ok := params[key].(string)
		if !ok {
			continue
		}
		resolved, err := resolve(workspace, path)
		if err != nil {
			return nil, err
		}
		if resolved != path {
			if rewritten == nil {
				rewritten = make(map[string]any, len(params))
				for k, v := range params {
					rewritten[k] = v
				}
			}
			rewritten[key] = resolved
		}
	}
	return rewritten, nil
}

// resolve is the absolute normalized form of path inside workspace, or why it is refused.
// filepath.Clean folds "." and ".." lexically; ".." at the root stays there.
func resolve(workspace, path string) (string, error) {
	if workspace == "" {
		return "", fmt.Errorf("no workspace_dir in the call context")
	}
	if !filepath.IsAbs(workspace) {
		return "", fmt.Errorf("workspace_dir '%s' is not an absolute path", workspace)
	}
	root := filepath.Clean(workspace)
	resolved := filepath.Clean(path)
	if !filepath.IsAbs(path) {
		resolved = filepath.Join(root, path)
	}
	if !within(root, resolved) {
		return "", fmt.Errorf("path '%s' escapes the workspace '%s'", path, workspace)
	}
	return resolved, nil
}

// within compares whole components: /ws2 is not inside /ws.
func within(root, path string) bool {
	return root == "/" || path == root || strings.HasPrefix(path, root+"/")
}

// load reads PATH_GUARD_TOOLS after the handshake checks, so a bad value is a start failure.
func load() (hookvisor.Plugin, error) {
	const name, fallback = "PATH_GUARD_TOOLS", "read,write,edit"
	value, ok := os.LookupEnv(name)
	if !ok {
		value = fallback
	}
	tools := commaList(value)
	switch {
	case len(tools) == 0:
		return nil, fmt.Errorf("%s lists no tools; name at least one (default: %s)", name, fallback)
	case slices.Equal(tools, []string{"*"}):
		return pathGuard{}, nil
	case slices.Contains(tools, "*"):
		return nil, fmt.Errorf("%s mixes '*' with tool names; use '*' alone to guard every tool", name)
	}
	return pathGuard{tools: tools}, nil
}

// commaList splits a comma-separated list: entries trimmed, empty ones dropped.
func commaList(value string) []string {
	var out []string
	for _, entry := range strings.Split(value, ",") {
		if entry = strings.TrimSpace(entry); entry != "" {
			out = append(out, entry)
		}
	}
	return out
}

func main() {
	os.Exit(hookvisor.RunWith(load))
}
