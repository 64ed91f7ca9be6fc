// Command goplugin-host is the go-plugin peer baseline for hookvisor's
// benchmark. It starts the plugin through go-plugin over gRPC and times
// single calls, either driven line by line over stdin (so the Rust bench can
// interleave blocks) or standalone with -calls for a quick sanity check.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/go-plugin"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"hookvisor.dev/bench/goplugin/internal/shared"
)

const (
	warmupCalls = 200
	warmupSize  = 256
	// Bounds keep a bad command from exhausting memory; maxSize stays under
	// gRPC's default 4 MiB message limit.
	maxCalls = 10_000_000
	maxSize  = 4_000_000
)

func main() {
	os.Exit(run())
}

func run() int {
	pluginPath := flag.String("plugin", "", "path to the goplugin-plugin binary (required)")
	calls := flag.Int("calls", 0, "standalone mode: run N calls, print p50/p99 and exit")
	size := flag.Int("size", warmupSize, "payload size in bytes for -calls")
	flag.Parse()
	if *pluginPath == "" {
		fmt.Fprintln(os.Stderr, "goplugin-host: -plugin is required")
		return 2
	}
	if *size < 0 || *size > maxSize || *calls < 0 || *calls > maxCalls {
		fmt.Fprintln(os.Stderr, "goplugin-host: -calls or -size out of range")
		return 2
	}

	client := plugin.NewClient(&plugin.ClientConfig{
		HandshakeConfig:  shared.Handshake,
		Plugins:          shared.PluginMap(nil),
		Cmd:              exec.Command(*pluginPath),
		AllowedProtocols: []plugin.Protocol{plugin.ProtocolGRPC},
		// Error level on stderr: stdout carries only the JSON answers.
		Logger: hclog.New(&hclog.LoggerOptions{
			Name:   "goplugin-host",
			Level:  hclog.Error,
			Output: os.Stderr,
		}),
	})
	defer client.Kill()

	// A signal would skip the deferred Kill and orphan the plugin.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sigs
		client.Kill()
		os.Exit(1)
	}()

	caller, err := dispense(client)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goplugin-host:", err)
		return 1
	}
	// Warm up so the first measured block does not pay for lazy setup.
	if _, err := timeCalls(caller, warmupCalls, warmupSize); err != nil {
		fmt.Fprintln(os.Stderr, "goplugin-host: warm-up:", err)
		return 1
	}

	if *calls > 0 {
		ns, err := timeCalls(caller, *calls, *size)
		if err != nil {
			fmt.Fprintln(os.Stderr, "goplugin-host:", err)
			return 1
		}
		sort.Slice(ns, func(i, j int) bool { return ns[i] < ns[j] })
		fmt.Printf("p50=%.1fµs p99=%.1fµs n=%d\n",
			float64(percentile(ns, 50))/1e3, float64(percentile(ns, 99))/1e3, len(ns))
		return 0
	}

	serve(caller, os.Stdin, os.Stdout)
	return 0
}

func dispense(client *plugin.Client) (shared.Caller, error) {
	rpc, err := client.Client()
	if err != nil {
		return nil, fmt.Errorf("start plugin: %w", err)
	}
	raw, err := rpc.Dispense(shared.PluginName)
	if err != nil {
		return nil, fmt.Errorf("dispense: %w", err)
	}
	caller, ok := raw.(shared.Caller)
	if !ok {
		return nil, errors.New("dispensed plugin has unexpected type")
	}
	return caller, nil
}

// serve answers each stdin line with exactly one JSON line until quit or EOF.
func serve(caller shared.Caller, in io.Reader, out io.Writer) {
	r := bufio.NewReader(in)
	w := bufio.NewWriter(out)
	for {
		line, err := r.ReadString('\n')
		if line == "" && err != nil {
			return // EOF or read error: same as quit
		}
		fields := strings.Fields(line)
		var reply []byte
		switch {
		case len(fields) == 1 && fields[0] == "quit":
			return
		case len(fields) == 1 && fields[0] == "ping":
			reply = []byte(`{"ok":true}`)
		case len(fields) == 3 && fields[0] == "run":
			reply = runCommand(caller, fields[1], fields[2])
		default:
			reply = errorJSON(fmt.Sprintf("unknown command %q", strings.TrimSpace(line)))
		}
		w.Write(reply)
		w.WriteByte('\n')
		// Flush per answer: the driver waits for each line before going on.
		if w.Flush() != nil {
			return // reader is gone; nothing left to answer
		}
		if err != nil {
			return // last line had no newline
		}
	}
}

func runCommand(caller shared.Caller, nArg, sizeArg string) []byte {
	n, err1 := strconv.Atoi(nArg)
	size, err2 := strconv.Atoi(sizeArg)
	if err1 != nil || err2 != nil || n < 0 || n > maxCalls || size < 0 || size > maxSize {
		return errorJSON(fmt.Sprintf("usage: run N SIZE (0<=N<=%d, 0<=SIZE<=%d)", maxCalls, maxSize))
	}
	ns, err := timeCalls(caller, n, size)
	if err != nil {
		return errorJSON(err.Error())
	}
	// Hand-built: large blocks are common and this avoids reflection.
	buf := make([]byte, 0, 8+len(ns)*8)
	buf = append(buf, `{"ns":[`...)
	for i, v := range ns {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = strconv.AppendInt(buf, v, 10)
	}
	return append(buf, "]}"...)
}

// timeCalls makes n sequential calls and times each single RPC.
func timeCalls(caller shared.Caller, n, size int) ([]int64, error) {
	payload := make([]byte, size)
	for i := range payload {
		payload[i] = 'x'
	}
	req := wrapperspb.Bytes(payload)
	ctx := context.Background()
	ns := make([]int64, n)
	for i := range ns {
		start := time.Now()
		_, err := caller.Call(ctx, req)
		ns[i] = int64(time.Since(start))
		if err != nil {
			return nil, fmt.Errorf("call %d: %w", i, err)
		}
	}
	return ns, nil
}

// errorJSON keeps '<' and '>' literal (no HTML escaping) so messages stay readable.
func errorJSON(msg string) []byte {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		Error string `json:"error"`
	}{msg})
	return bytes.TrimRight(b.Bytes(), "\n")
}

// percentile uses nearest rank on an already sorted slice.
func percentile(sorted []int64, p int) int64 {
	if len(sorted) == 0 {
		return 0
	}
	idx := (len(sorted)*p + 99) / 100
	if idx < 1 {
		idx = 1
	}
	return sorted[idx-1]
}
