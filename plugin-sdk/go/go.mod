// The module path is set here alone: generate.sh and package.sh read it from this line, and
// set-module.sh renames it everywhere. It is not published yet, so hookvisor.dev/plugin-sdk/go
// resolves nothing: a plugin takes the module from a clone or from package.sh's copy with a
// replace directive (README.md, "Install").
module hookvisor.dev/plugin-sdk/go

go 1.26.0

require (
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260817212433-ac3dfec99bb1 // indirect
)
