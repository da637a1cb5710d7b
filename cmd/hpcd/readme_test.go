package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// readmeClusterBlock returns the command lines of the README's "A
// replicated master" example.
func readmeClusterBlock(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "## A replicated master\n")
	if !ok {
		t.Fatal(`README.md has no "## A replicated master" section`)
	}
	_, block, ok := strings.Cut(sec, "```sh\n")
	if !ok {
		t.Fatal("the replicated-master section has no ```sh block")
	}
	block, _, _ = strings.Cut(block, "```")
	return strings.Split(strings.TrimSpace(block), "\n")
}

// TestReadmeClusterExample runs the README's three-member example as it
// is written, on one host: the three `hpcd server` lines (only --data-dir
// moved under the test's temp dir) and its `hpcsub cluster` line, which
// must show every member and one leader they agree on. It guards the
// example against members that cannot share a host (the HTTP port once).
func TestReadmeClusterExample(t *testing.T) {
	lines := readmeClusterBlock(t)
	dir := t.TempDir()
	bin := map[string]string{"bin/hpcd": goBuild(t, dir, "."), "bin/hpcsub": goBuild(t, dir, "../hpcsub")}
	var statusLine []string
	var logs []*bytes.Buffer
	exited := make(chan int, 3)
	for _, line := range lines {
		args := strings.Fields(strings.TrimSuffix(strings.TrimSpace(line), "&"))
		switch {
		case len(args) > 1 && args[0] == "bin/hpcd" && args[1] == "server":
			for i := range args {
				if args[i] == "--data-dir" && i+1 < len(args) {
					args[i+1] = filepath.Join(dir, filepath.Base(args[i+1]))
				}
			}
			cmd := exec.Command(bin[args[0]], args[1:]...)
			var log bytes.Buffer
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			i, done := len(logs), make(chan struct{})
			go func() { _ = cmd.Wait(); close(done); exited <- i }()
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
			logs = append(logs, &log)
		case len(args) > 1 && args[0] == "bin/hpcsub" && args[1] == "cluster":
			statusLine = args
		}
	}
	if len(logs) != 3 || statusLine == nil {
		t.Fatalf("the README block should start three members and show `hpcsub cluster`; it has %d member lines:\n%s", len(logs), strings.Join(lines, "\n"))
	}
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		out, err := exec.Command(bin["bin/hpcsub"], statusLine[1:]...).CombinedOutput()
		if err == nil && agreedLeader(string(out)) {
			t.Logf("%s", out)
			break
		}
		select {
		case i := <-exited:
			t.Fatalf("member s%d exited:\n%s", i+1, logs[i])
		case <-deadline:
			t.Fatalf("no leader agreed by all three members within 60 s; hpcsub cluster said (err %v):\n%s", err, out)
		case <-tick.C:
		}
	}
}

// agreedLeader reads `hpcsub cluster`'s table: three members answered and
// name the same, non-empty leader.
func agreedLeader(table string) bool {
	leaders := map[string]int{}
	rows := 0
	head, _, _ := strings.Cut(strings.TrimSpace(table), "\n\n") // the member list follows
	for _, line := range strings.Split(head, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[1] == "-" {
			continue
		}
		rows++
		leaders[f[3]]++
	}
	return rows == 3 && len(leaders) == 1 && leaders[""] == 0 && leaders["-"] == 0
}
