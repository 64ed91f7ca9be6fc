package hookvisor

import pb "hookvisor.dev/plugin-sdk/go/hookvisorpb"

// ProtocolVersion is the protocol this SDK speaks; Describe answers it.
const ProtocolVersion = 1

// Info is a plugin's name, version and hook registrations; it becomes PluginInfo.
//
// An empty Name is replaced by the configured name (HOOKVISOR_PLUGIN_NAME) by [Run].
type Info struct {
	// Name is the plugin's own name; hookvisor identifies it by its configured name regardless.
	Name string
	// Version is shown in status output.
	Version string
	// Hooks has one registration per hook served.
	Hooks []Registration
}

// Registration is one hook a plugin serves. The operator's configuration overrides Priority and
// TimeoutMs, and decides whether StagePolicy is accepted at all.
type Registration struct {
	Hook Hook
	// Stage is StageHook when left zero.
	Stage Stage
	// Priority: higher runs (and merges) first.
	Priority int32
	// Tools are the exact tool names this applies to; empty means every tool.
	Tools []string
	// TimeoutMs is the plugin's own timeout; 0 leaves it to the configuration.
	TimeoutMs uint32
}

// proto is the PluginInfo answered by Describe, at protocol version 1.
func (i Info) proto() *pb.PluginInfo {
	out := &pb.PluginInfo{Name: i.Name, Version: i.Version, ProtocolVersion: ProtocolVersion}
	for _, r := range i.Hooks {
		stage := r.Stage
		if stage == pb.Stage_STAGE_UNSPECIFIED {
			stage = StageHook
		}
		out.Hooks = append(out.Hooks, &pb.HookRegistration{
			Hook:      r.Hook,
			Stage:     stage,
			Priority:  r.Priority,
			Tools:     append([]string(nil), r.Tools...),
			TimeoutMs: r.TimeoutMs,
		})
	}
	return out
}
