package main

import (
	"context"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"vhpc/api"
)

// cutProxy forwards TCP to a target until Cut, after which it refuses and
// drops everything: a network partition between one agent and the master.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
	cut    bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(p.Cut)
	return p
}

func (p *cutProxy) addr() string { return p.ln.Addr().String() }

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(up, c); up.Close() }()
		go func() { _, _ = io.Copy(c, up); c.Close() }()
	}
}

// Cut closes the listener and every forwarded connection.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
}

type agentProc struct {
	name, state string
	cmd         *exec.Cmd
}

func startAgentProc(t testing.TB, bin, name, stateDir, master string, extra ...string) *agentProc {
	args := append([]string{"--master", master, "--name", name, "--state-dir", stateDir, "--hypervisor", "tcg", "--log-level", "warn", "--metrics-addr", "127.0.0.1:0"}, extra...)
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{name: name, state: stateDir, cmd: cmd}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	})
	return a
}

// destroyDomainsOf removes the guests the agents with these state
// directories left when they were killed; it never touches another
// agent's namespace.
func destroyDomainsOf(t testing.TB, agentStateDirs ...string) {
	for _, d := range domains(t, agentStateDirs...) {
		_ = exec.Command("virsh", "-c", "qemu:///system", "destroy", d).Run()
		_ = exec.Command("virsh", "-c", "qemu:///system", "undefine", d).Run()
	}
}

// TestNodeLoss runs a master and two real agents on this host (each with
// its own state dir and domain namespace). A job that loses its node is
// requeued with a new attempt and completes on the other one. When the
// node is partitioned rather than killed, its agent stops its own guest
// when its lease runs out, before the replacement starts.
func TestNodeLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("boots real guests; skipped with -short")
	}
	requireLibvirt(t)
	for _, mode := range []string{"agent killed", "agent partitioned"} {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			firstState, secondState := filepath.Join(dir, "first"), filepath.Join(dir, "second")
			t.Cleanup(func() { destroyDomainsOf(t, firstState, secondState) })
			for _, d := range []string{filepath.Dir(dir), dir} {
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			hpcd, agentBin := goBuild(t, dir, "."), goBuild(t, dir, "../hpc-agent")
			withGuest(t, dir)
			addr, raftAddr := freePort(t), freePort(t)
			master := exec.Command(hpcd, "server", "--id", "m", "--data-dir", filepath.Join(dir, "m"), "--addr", addr,
				"--raft-addr", raftAddr, "--http", "", "--heartbeat", "500ms", "--lease", "6s", "--log-level", "warn", "--insecure")
			master.Stderr = os.Stderr
			if err := master.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = master.Process.Kill(); _ = master.Wait() })
			jobs := api.NewJobServiceClient(dialServing(t, addr))
			c := &e2eCluster{t: t, jobs: jobs}

			proxy := newCutProxy(t, addr)
			first := startAgentProc(t, agentBin, "first", firstState, proxy.addr())
			c.waitFor(t, "the first node", func() bool {
				n, err := jobs.Nodes(context.Background(), &api.NodesRequest{})
				return err == nil && len(n.GetNodes()) == 1
			})
			spec := "name: survivor\nretries: 1\nwalltime: 10m\nresources:\n  cpusPerTask: 1\nscript: |\n  sleep 6\n  echo done on $(hostname)\n"
			resp, err := jobs.Submit(context.Background(), &api.SubmitRequest{ClientToken: "nl", Spec: []byte(spec)})
			if err != nil {
				t.Fatal(err)
			}
			id := resp.GetJobId()
			c.waitFor(t, "the job to run on the first node", func() bool { return c.job(id).GetState() == "running" })
			startAgentProc(t, agentBin, "second", secondState, addr)
			c.waitFor(t, "the second node", func() bool {
				n, err := jobs.Nodes(context.Background(), &api.NodesRequest{})
				return err == nil && len(n.GetNodes()) == 2
			})
			var guest string
			for _, d := range domains(t, firstState) {
				guest = d
			}
			if guest == "" {
				t.Fatal("no guest for the job")
			}

			// lastAlive is when a poll that still listed the guest began: the
			// guest certainly ran then. (When a poll finds it gone says
			// little: virsh on a loaded host can answer seconds late.)
			var lastAlive time.Time
			switch mode {
			case "agent killed":
				_ = first.cmd.Process.Kill()
				_ = first.cmd.Wait()
			case "agent partitioned":
				proxy.Cut()
				c.waitFor(t, "the partitioned agent to stop its guest", func() bool {
					asked := time.Now()
					if slices.Contains(domains(t, firstState), guest) {
						lastAlive = asked
						return false
					}
					return true
				})
			}
			c.waitFor(t, "the job to complete on the second node", func() bool { return c.job(id).GetState() == "completed" })
			j := c.job(id)
			if j.GetAttempt() != 2 {
				t.Fatalf("attempt %d, want 2 (requeued once)", j.GetAttempt())
			}
			var replacement *api.Allocation
			for _, a := range j.GetAllocations() {
				switch a.GetAttempt() {
				case 1:
					if a.GetNode() != "first" || a.GetState() != "lost" {
						t.Errorf("attempt 1 on %s is %s, want lost on first", a.GetNode(), a.GetState())
					}
				case 2:
					replacement = a
				}
			}
			if replacement == nil || replacement.GetNode() != "second" || replacement.GetState() != "completed" {
				t.Fatalf("replacement = %v, want completed on second", replacement)
			}
			if mode == "agent partitioned" && !lastAlive.Before(replacement.GetCreated().AsTime()) {
				t.Errorf("the old guest was still running at %s when the replacement was placed at %s", lastAlive, replacement.GetCreated().AsTime())
			}
		})
	}
}
