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

// readmeLine is one command line of the README block: its environment
// assignments (VAR=value before the command), its words and whether it
// runs in the background (a trailing &).
type readmeLine struct {
	env        []string
	args       []string
	background bool
}

// parseReadmeLine splits a line into a readmeLine, expanding $VAR from
// env and moving /etc/vhpc and /var/lib/vhpc paths under dir (the block
// is written for root on a real host; the test runs it in a temp dir).
func parseReadmeLine(line, dir string, env map[string]string) readmeLine {
	line = strings.TrimSpace(line)
	l := readmeLine{background: strings.HasSuffix(line, "&")}
	under := func(v string) string {
		for root, sub := range map[string]string{"/etc/vhpc": "etc", "/var/lib/vhpc": "var"} {
			if v == root || strings.HasPrefix(v, root+"/") {
				return filepath.Join(dir, sub, strings.TrimPrefix(v, root))
			}
		}
		return v
	}
	for _, w := range strings.Fields(strings.TrimSuffix(line, "&")) {
		w = os.Expand(w, func(k string) string { return env[k] })
		if k, v, ok := strings.Cut(w, "="); ok && len(l.args) == 0 && !strings.HasPrefix(w, "-") {
			var vs []string
			for _, part := range strings.Split(v, ",") {
				vs = append(vs, under(part))
			}
			l.env = append(l.env, k+"="+strings.Join(vs, ","))
			continue
		}
		l.args = append(l.args, under(w))
	}
	return l
}

// TestReadmeClusterExample runs the README's three-member example as it
// is written, on one host, with /etc/vhpc and /var/lib/vhpc moved under
// the test's temp dir: the certificates, the three `hpcd server` members,
// `hpcsub cluster` (every member answers and they agree on one leader),
// `hpcd user add` and the user's and agent's certificates; it stops at
// hpc-agent (the e2e tests boot guests). It guards the example against
// members that cannot share a host (the HTTP port once) and against a
// member that refuses to start (the certificates, once).
func TestReadmeClusterExample(t *testing.T) {
	lines := readmeClusterBlock(t)
	dir := t.TempDir()
	bin := map[string]string{"bin/hpcd": goBuild(t, dir, "."), "bin/hpcsub": goBuild(t, dir, "../hpcsub")}
	env := map[string]string{}
	var logs []*bytes.Buffer
	exited := make(chan int, 3)
	sawCluster := false
	for _, line := range lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(line), "export "); ok {
			for _, kv := range parseReadmeLine(rest, dir, env).env {
				k, v, _ := strings.Cut(kv, "=")
				env[k] = v
			}
			continue
		}
		l := parseReadmeLine(line, dir, env)
		if len(l.args) > 0 && l.args[0] == "bin/hpc-agent" {
			break
		}
		path, ok := bin[l.args[0]]
		if !ok {
			t.Fatalf("README block line %q: the test knows bin/hpcd and bin/hpcsub only", line)
		}
		cmd := exec.Command(path, l.args[1:]...)
		cmd.Env = os.Environ()
		for k, v := range env {
			cmd.Env = append(cmd.Env, k+"="+v)
		}
		cmd.Env = append(cmd.Env, l.env...)
		switch {
		case l.background:
			var log bytes.Buffer
			cmd.Stdout, cmd.Stderr = &log, &log
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			i, done := len(logs), make(chan struct{})
			go func() { _ = cmd.Wait(); close(done); exited <- i }()
			t.Cleanup(func() { _ = cmd.Process.Kill(); <-done })
			logs = append(logs, &log)
		case len(l.args) > 1 && l.args[0] == "bin/hpcsub" && l.args[1] == "cluster":
			sawCluster = true
			waitForLeader(t, cmd, logs, exited)
		default:
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("README line %q: %v\n%s", line, err, out)
			}
		}
	}
	if len(logs) != 3 || !sawCluster {
		t.Fatalf("the README block should start three members and show `hpcsub cluster`; it has %d member lines:\n%s", len(logs), strings.Join(lines, "\n"))
	}
}

// waitForLeader reruns the `hpcsub cluster` command proto until three
// members answer and agree on a leader, failing when a member exits or
// after 60 s.
func waitForLeader(t *testing.T, proto *exec.Cmd, logs []*bytes.Buffer, exited <-chan int) {
	t.Helper()
	deadline := time.After(60 * time.Second)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		cmd := exec.Command(proto.Path, proto.Args[1:]...)
		cmd.Env = proto.Env
		out, err := cmd.CombinedOutput()
		if err == nil && agreedLeader(string(out)) {
			t.Logf("%s", out)
			return
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

// agreedLeader reads `hpcsub cluster`'s table (columns aligned under the
// header; the member list follows "Members:"): three members answered
// and each names the same, non-empty leader in the LEADER column.
func agreedLeader(table string) bool {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	col := strings.Index(lines[0], "LEADER")
	if col < 0 {
		return false
	}
	leaders := map[string]int{}
	rows := 0
	for _, line := range lines[1:] {
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "Members:") {
			break
		}
		f := strings.Fields(line)
		if len(f) < 2 || f[1] == "-" || len(line) <= col {
			continue
		}
		rows++
		leader := ""
		if cell := strings.Fields(line[col:]); line[col] != ' ' && len(cell) > 0 {
			leader = cell[0]
		}
		leaders[leader]++
	}
	return rows == 3 && len(leaders) == 1 && leaders[""] == 0 && leaders["-"] == 0
}

func TestAgreedLeader(t *testing.T) {
	const header = "ADDRESS         MEMBER  STATE     LEADER  TERM  COMMIT\n"
	for _, tc := range []struct {
		name, table string
		want        bool
	}{
		{"no leader yet", header +
			"127.0.0.1:7071  s1      Follower          1     0\n" +
			"127.0.0.1:7072  s2      Follower          1     0\n" +
			"127.0.0.1:7073  s3      Follower          1     0\nMembers:\n  s1\n", false},
		{"one leader", header +
			"127.0.0.1:7071  s1      Leader    s1      2     3\n" +
			"127.0.0.1:7072  s2      Follower  s1      2     3\n" +
			"127.0.0.1:7073  s3      Follower  s1      2     3\nMembers:\n  s1\n", true},
		{"split view", header +
			"127.0.0.1:7071  s1      Leader    s1      2     3\n" +
			"127.0.0.1:7072  s2      Follower  s2      2     3\n" +
			"127.0.0.1:7073  s3      Follower  s1      2     3\n", false},
		{"a member down", header +
			"127.0.0.1:7071  s1      Leader    s1      2     3\n" +
			"127.0.0.1:7072  -       unreachable\n" +
			"127.0.0.1:7073  s3      Follower  s1      2     3\n", false},
	} {
		if got := agreedLeader(tc.table); got != tc.want {
			t.Errorf("%s: agreedLeader = %v, want %v", tc.name, got, tc.want)
		}
	}
}
