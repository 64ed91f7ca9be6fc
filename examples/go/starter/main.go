// Command starter is a hookvisor plugin to copy and make your own: it blocks `exec` calls whose
// command runs `rm` with both -r and -f (`rm -rf /`, `rm -fr build`, `rm -r -f x`,
// `rm --recursive --force x`) and lets every other call through.
package main

import (
	"context"
	"os"
	"strings"

	hookvisor "hookvisor.dev/plugin-sdk/go"
)

type starter struct{}

// Info registers before_tool_call in the hook stage for the exec tool only (leave Tools out to
// be asked about every tool).
func (starter) Info() hookvisor.Info {
	return hookvisor.Info{Name: "starter", Version: "0.1.0", Hooks: []hookvisor.Registration{
		{Hook: hookvisor.HookBeforeToolCall, Stage: hookvisor.StageHook, Tools: []string{"exec"}, TimeoutMs: 200},
	}}
}

func (starter) BeforeToolCall(_ context.Context, call *hookvisor.ToolCall) (*hookvisor.Decision, error) {
	command, _ := call.ParamString("command")
	if removesByForce(command) {
		return hookvisor.Block("rm -rf is not allowed here: " + command), nil
	}
	return hookvisor.Allow(), nil
}

// removesByForce reports whether a command of the line (split at ;, &, | and newlines) runs rm,
// also behind sudo or xargs, with both a recursive and a force flag. A starting point, not a
// sandbox: a shell has other ways to remove files.
func removesByForce(line string) bool {
	for _, command := range strings.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(";&|\n", r) }) {
		words := strings.Fields(command)
		for i, word := range words {
			if (word == "rm" || strings.HasSuffix(word, "/rm")) && recursiveAndForce(words[i+1:]) {
				return true
			}
		}
	}
	return false
}

// recursiveAndForce reports whether rm's arguments hold -r (or -R) and -f, together or apart.
func recursiveAndForce(args []string) bool {
	recursive, force := false, false
	for _, arg := range args {
		switch {
		case arg == "--recursive":
			recursive = true
		case arg == "--force":
			force = true
		case strings.HasPrefix(arg, "-") && !strings.HasPrefix(arg, "--"):
			recursive = recursive || strings.ContainsAny(arg, "rR")
			force = force || strings.Contains(arg, "f")
		}
	}
	return recursive && force
}

func main() {
	os.Exit(hookvisor.Run(starter{}))
}
