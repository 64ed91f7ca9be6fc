package main

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// TestStdinProtocol drives the real binaries end to end, as the Rust bench does.
func TestStdinProtocol(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		// Running `go test` means go is installed; a missing tool is a broken setup, not a skip.
		t.Fatalf("go tool not in PATH: %v", err)
	}
	dir := t.TempDir()
	host := filepath.Join(dir, "goplugin-host")
	plug := filepath.Join(dir, "goplugin-plugin")
	for _, b := range [][2]string{{host, "."}, {plug, "../plugin"}} {
		out, err := exec.Command(goBin, "build", "-o", b[0], b[1]).CombinedOutput()
		if err != nil {
			t.Fatalf("go build %s: %v\n%s", b[1], err, out)
		}
	}

	cmd := exec.Command(host, "-plugin", plug)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	lines := bufio.NewScanner(stdout)
	lines.Buffer(make([]byte, 1<<20), 1<<20)
	send := func(s string) string {
		t.Helper()
		if _, err := io.WriteString(stdin, s+"\n"); err != nil {
			t.Fatalf("write %q: %v", s, err)
		}
		if !lines.Scan() {
			t.Fatalf("no answer to %q: %v", s, lines.Err())
		}
		return lines.Text()
	}

	var ping struct {
		OK bool `json:"ok"`
	}
	if ans := send("ping"); json.Unmarshal([]byte(ans), &ping) != nil || !ping.OK {
		t.Fatalf("ping answer %q", ans)
	}
	var runAns struct {
		NS    []int64 `json:"ns"`
		Error string  `json:"error"`
	}
	ans := send("run 10 300")
	if err := json.Unmarshal([]byte(ans), &runAns); err != nil {
		t.Fatalf("run answer %q: %v", ans, err)
	}
	if len(runAns.NS) != 10 {
		t.Fatalf("want 10 latencies, got %q", ans)
	}
	for i, v := range runAns.NS {
		if v <= 0 {
			t.Fatalf("latency %d not positive: %d", i, v)
		}
	}
	if _, err := io.WriteString(stdin, "quit\n"); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("host exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("host did not exit within 10s")
	}
}
