package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"vhpc/api"
	"vhpc/imagestore/registrytest"
)

// mpiCluster is a master with a registry and two real agents on this host
// (nodes m1 and m2, each with its own state dir, domain namespace and
// VXLAN underlay port), and public/mpi:1 pushed: the topology of a
// two-host cluster, on one host (libvirtd is host-wide, so both agents'
// guests live in the root network namespace; their job networks meet
// only through VXLAN between the two underlays).
type mpiCluster struct {
	*e2eCluster
	hpc    string
	states []string
}

func startMPICluster(t testing.TB) *mpiCluster {
	t.Helper()
	if testing.Short() {
		t.Skip("boots Debian guests")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("VHPC_E2E") == "1" {
			t.Fatal("VHPC_E2E=1 but not root: building a Debian image and job networks need root")
		}
		t.Skip("building a Debian image and job networks need root")
	}
	requireLibvirt(t)
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} { // QEMU's user traverses into job dirs
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	reg := registrytest.Start(t)
	hpcd, agentBin := goBuild(t, dir, "."), goBuild(t, dir, "../hpc-agent")
	withGuest(t, dir)
	c := &mpiCluster{e2eCluster: &e2eCluster{t: t, hpcd: hpcd, sub: goBuild(t, dir, "../hpcsub"), addr: freePort(t)}}
	c.hpc = goBuild(t, dir, "../hpc")
	// A 45-second lease (agents fence after 30 s without a heartbeat)
	// instead of 15 s: several emulated (TCG) guests on a 2-core machine
	// can starve the agents' 2-second heartbeats for over 10 s, and the
	// fence then cancels the job under test. Lease expiry is
	// nodeloss_test's subject, not this test's.
	master := exec.Command(hpcd, "server", "--id", "m", "--data-dir", filepath.Join(dir, "m"), "--addr", c.addr,
		"--raft-addr", freePort(t), "--http", "", "--registry", reg.URL, "--registry-token-dir", reg.KeyDir(t),
		"--lease", "45s", "--log-level", "warn", "--insecure")
	master.Stderr = os.Stderr
	if err := master.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = master.Process.Kill(); _ = master.Wait() })
	c.jobs = api.NewJobServiceClient(dialServing(t, c.addr))
	for i, name := range []string{"m1", "m2"} {
		state := filepath.Join(dir, name)
		c.states = append(c.states, state)
		startAgentProc(t, agentBin, name, state, c.addr, "--underlay", "127.0.0.1:"+strconv.Itoa(4789+i))
	}
	t.Cleanup(func() { destroyDomainsOf(t, c.states...) })
	c.waitFor(t, "both nodes", func() bool {
		n, err := c.jobs.Nodes(context.Background(), &api.NodesRequest{})
		return err == nil && len(n.GetNodes()) == 2 && n.GetNodes()[0].GetState() == "ready" && n.GetNodes()[1].GetState() == "ready"
	})

	img := e2eImage(t, "mpi.yaml")
	if out, err := exec.Command(c.hpc, "image", "push", img.Dir, "public/mpi:1", "--addr", c.addr).CombinedOutput(); err != nil {
		t.Fatalf("hpc image push: %v\n%s", err, out)
	}
	return c
}

// run submits a job file written into a fresh directory (with extra
// files beside it) and waits for its end; it returns the job and its
// output.
func (c *mpiCluster) run(t testing.TB, job string, extra map[string]string) (*api.Job, string) {
	t.Helper()
	s := c.submitDir(t, job, extra)
	if !pollWithin(mpiJobWait, func() bool { return c.ended(s) }) {
		t.Fatalf("job %d did not end within %v: %s", s.id, mpiJobWait, c.describe(s))
	}
	return c.job(s.id), c.logs(s)
}

// ended reports whether job s is in a final state.
func (c *mpiCluster) ended(s submitted) bool {
	switch c.job(s.id).GetState() {
	case "completed", "failed", "cancelled", "timeout":
		return true
	}
	return false
}

// describe is job s's state, allocations and output so far, for a
// failure message.
func (c *mpiCluster) describe(s submitted) string {
	j := c.job(s.id)
	var allocs []string
	for _, a := range j.GetAllocations() {
		allocs = append(allocs, fmt.Sprintf("%s on %s: %s/%s (%s) boot %.0fs run %.0fs",
			a.GetId(), a.GetNode(), a.GetState(), a.GetDesired(), a.GetReason(), a.GetBootSeconds(), a.GetRunSeconds()))
	}
	return fmt.Sprintf("state %s (%s); allocations:\n  %s\noutput so far:\n%s",
		j.GetState(), j.GetReason(), strings.Join(allocs, "\n  "), c.logs(s))
}

// mpichFinalizeHangs is how many times runAllreduceMPICH tries a job
// again after MPICH's finalize hang, and mpichFinalizeWait how long after
// the last sum it waits for the job to end first (a finalize that works
// takes seconds). Stop 17's final fresh-clone run hung three times in a
// row, so five retries: at a hang rate of one in two, all six tries hang
// in one run of 64.
const (
	mpichFinalizeHangs = 5
	mpichFinalizeWait  = time.Minute
)

// runAllreduceMPICH is run for the MPICH allreduce, with room for a known,
// open bug: in some runs (two of four in stop 16, three of twelve in stop
// 17) all four ranks print their sums and then the job never ends. Read
// from /proc inside the guests during such a hang: three ranks sleep in a
// read on their PMI socket (a PMI barrier) while one rank spins in user
// space in MPI_Finalize, which matches MPICH 4.0's ch4:ucx finalize
// (Debian's libmpich12 is built with UCX only) waiting for progress from
// peers that sit in a PMI fence. Stop 25 reproduced it without guests, in
// a plain Debian 12 root (mmdebstrap, mpich 4.0.2, libucx0 1.13.1, this
// program, mpiexec.mpich -n 4): with UCX_TLS=tcp,self 11 of 20 runs hang,
// with shared memory 0 of 20. gdb shows the same stacks: three ranks read
// their PMI socket in the finalize hook's barrier, one calls
// ucp_worker_progress for a ucp_disconnect_nb that needs a peer's
// progress. MPICH removed that barrier upstream (pmodels/mpich#6596,
// 2023), after Debian 12's 4.0.2. No environment setting avoided it
// (UCX_ASYNC_MODE, UCX_TCP_PUT_ENABLE, UCX_KEEPALIVE_INTERVAL,
// UCX_PROTO_ENABLE, UCX_ZCOPY_THRESH, UCX_RNDV_THRESH,
// UCX_RESOLVE_REMOTE_EP_ID, UCX_FLUSH_WORKER_EPS: 2 to 9 of 12 runs
// still hang). When every rank has printed and the job
// is still running mpichFinalizeWait later, the job is cancelled (its guests and
// network go) and submitted again, at most mpichFinalizeHangs times, and
// the test log says so. Anything else (a wrong sum, a missing rank, a job
// that fails, hangs before its ranks print, or hangs every time) still
// fails the test.
func (c *mpiCluster) runAllreduceMPICH(t testing.TB, job string, extra map[string]string) (*api.Job, string) {
	t.Helper()
	done := func(st string) bool {
		return st == "completed" || st == "failed" || st == "cancelled" || st == "timeout"
	}
	for hang := 0; ; hang++ {
		s := c.submitDir(t, job, extra)
		deadline := time.Now().Add(mpiJobWait)
		var printedAt time.Time
		for !done(c.job(s.id).GetState()) && time.Now().Before(deadline) {
			if printedAt.IsZero() && strings.Count(c.logs(s), ": sum 10") == 4 {
				printedAt = time.Now()
			}
			if !printedAt.IsZero() && time.Since(printedAt) > mpichFinalizeWait && hang < mpichFinalizeHangs {
				break
			}
			time.Sleep(5 * time.Second)
		}
		if st := c.job(s.id).GetState(); done(st) || printedAt.IsZero() || hang >= mpichFinalizeHangs {
			if !done(st) {
				t.Fatalf("job %d did not end within %v (state %s); output so far:\n%s", s.id, mpiJobWait, st, c.logs(s))
			}
			return c.job(s.id), c.logs(s)
		}
		t.Logf("MPICH finalize hang (known, open): job %d printed all four sums and was still running %v later; cancelling it and submitting again (%d of %d)\n%s",
			s.id, mpichFinalizeWait, hang+1, mpichFinalizeHangs, c.logs(s))
		if code, _, errOut := c.hpcsub(s.work, "cancel", strconv.FormatUint(s.id, 10)); code != 0 {
			t.Fatalf("cancel %d: %s", s.id, errOut)
		}
		if !pollWithin(2*time.Minute, func() bool { return c.job(s.id).GetState() == "cancelled" }) {
			t.Fatalf("job %d not cancelled within 2 minutes", s.id)
		}
	}
}

// submitted is a job submitted from its own directory.
type submitted struct {
	id   uint64
	work string
}

// submitDir writes a job file (and extra files) into a fresh directory
// and submits it.
func (c *mpiCluster) submitDir(t testing.TB, job string, extra map[string]string) submitted {
	t.Helper()
	work := t.TempDir()
	if err := os.Chmod(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range extra {
		if err := os.WriteFile(filepath.Join(work, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(work, "job.yaml"), []byte(job), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := c.hpcsub(work, "--parsable", "job.yaml")
	if code != 0 {
		t.Fatalf("hpcsub: %d\n%s%s", code, stdout, stderr)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(stdout), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return submitted{id: id, work: work}
}

// logs is `hpcsub logs` of a job.
func (c *mpiCluster) logs(s submitted) string {
	_, out, _ := c.hpcsub(s.work, "logs", strconv.FormatUint(s.id, 10))
	return out
}

// waitForLong is waitFor with room for two Debian guests booting under
// TCG on a small machine.
func (c *mpiCluster) waitForLong(t testing.TB, what string, cond func() bool) {
	t.Helper()
	waitWithin(t, mpiJobWait, what, cond)
}

// mpiJobWait is how long an MPI e2e job may take from submission to its
// end: two Debian guests booting under TCG on a small machine.
const mpiJobWait = 8 * time.Minute

// leftovers lists the job network devices (bridges, VXLAN) and libvirt
// guests the agents left behind.
func (c *mpiCluster) leftovers(t testing.TB) []string {
	t.Helper()
	left := domains(t, c.states...)
	out, err := exec.Command("ip", "-o", "link", "show").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && (strings.HasPrefix(f[1], "vb") || strings.HasPrefix(f[1], "vx")) {
			left = append(left, strings.TrimSuffix(f[1], ":"))
		}
	}
	return left
}

const mpiAllreduceC = `#include <mpi.h>
#include <stdio.h>
#include <unistd.h>
int main(int argc, char **argv) {
	int rank, size, sum = 0;
	char host[64];
	MPI_Init(&argc, &argv);
	MPI_Comm_rank(MPI_COMM_WORLD, &rank);
	MPI_Comm_size(MPI_COMM_WORLD, &size);
	gethostname(host, sizeof host);
	int one = rank + 1;
	MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
	printf("allreduce rank %d of %d on %s: sum %d\n", rank, size, host, sum);
	MPI_Finalize();
	return 0;
}
`

// TestE2EMPIAcrossGuests is issue 14 on real guests under TCG: two nodes,
// each job's guests on its own network (a bridge per node joined by
// VXLAN), MPI started without ssh by hpc-guest's launcher.
func TestE2EMPIAcrossGuests(t *testing.T) {
	c := startMPICluster(t)
	const res = "resources: {nodes: 2, tasksPerNode: 2, cpusPerTask: 1, memory: 768MiB}\nwalltime: 10m\n"

	t.Run("openmpi runs an mpi4py ring on 2 guests x 2 ranks", func(t *testing.T) {
		j, logs := c.run(t, "name: ring\nimage: public/mpi:1\nmpi: openmpi\n"+res+"command: [python3, -m, mpi4py.bench, ringtest]\n", nil)
		if j.GetState() != "completed" || !strings.Contains(logs, "time for 1 loops") {
			t.Fatalf("job %s (%s), output:\n%s", j.GetState(), j.GetReason(), logs)
		}
	})

	for _, flavour := range []string{"openmpi", "mpich"} {
		t.Run(flavour+" builds and runs a C allreduce on every guest", func(t *testing.T) {
			script := "script: |\n  set -e\n  mpirun -n 2 -ppn 1 mpicc -O2 -o allreduce allreduce.c\n  mpirun -n 4 ./allreduce\n"
			if flavour == "openmpi" {
				script = "script: |\n  set -e\n  mpirun -np 2 --map-by ppr:1:node mpicc -O2 -o allreduce allreduce.c\n  mpirun -np 4 --tag-output ./allreduce\n"
			}
			job := "name: allreduce\nimage: public/mpi:1\nmpi: " + flavour + "\n" + res + "stageIn: [{from: allreduce.c, to: allreduce.c}]\n" + script
			var j *api.Job
			var logs string
			if flavour == "mpich" {
				j, logs = c.runAllreduceMPICH(t, job, map[string]string{"allreduce.c": mpiAllreduceC})
			} else {
				j, logs = c.run(t, job, map[string]string{"allreduce.c": mpiAllreduceC})
			}
			sums := regexp.MustCompile(`allreduce rank (\d) of 4 on (node[01]): sum 10`).FindAllStringSubmatch(logs, -1)
			hosts := map[string]bool{}
			for _, m := range sums {
				hosts[m[2]] = true
			}
			if j.GetState() != "completed" || len(sums) != 4 || len(hosts) != 2 || strings.Contains(logs, "/dev/shm") {
				t.Fatalf("job %s (%s), %d ranks on %v; output:\n%s", j.GetState(), j.GetReason(), len(sums), hosts, logs)
			}
		})
	}

	t.Run("another job's guests hear nothing of this job's network", func(t *testing.T) {
		// Job B listens for UDP broadcasts on both its guests; job A's
		// node0 broadcasts a token on its own network while A's node1
		// listens too (the positive control). Broadcasts reach every guest
		// of an L2 segment whatever their addresses, so B hearing nothing
		// while A's node1 hears the token shows the two networks apart.
		const listen = `import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("", 5599))
s.settimeout(1)
heard, end = set(), time.time() + float(sys.argv[1])
print("listening", flush=True)
while time.time() < end:
    try:
        data, _ = s.recvfrom(100)
        heard.add(data.decode())
    except socket.timeout:
        pass
print("%s heard %d: %s" % (sys.argv[2], len(heard), " ".join(sorted(heard))), flush=True)
`
		const send = `import socket, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
for _ in range(40):
    s.sendto(b"token-A", ("10.77.255.255", 5599))
    time.sleep(0.5)
`
		two := "resources: {nodes: 2, cpusPerTask: 1, memory: 512MiB}\nwalltime: 10m\n"
		b := c.submitDir(t, "name: listener\nimage: public/mpi:1\n"+two+"stageIn: [{from: listen.py, to: listen.py}]\nscript: |\n  python3 listen.py 120 B-$VHPC_NODE_RANK\n", map[string]string{"listen.py": listen})
		c.waitForLong(t, "job B's guests to listen", func() bool {
			j := c.job(b.id)
			return j.GetState() == "running" && strings.Count(c.logs(b), "listening") == 2
		})
		a := c.submitDir(t, "name: talker\nimage: public/mpi:1\n"+two+"stageIn: [{from: listen.py, to: listen.py}, {from: send.py, to: send.py}]\nscript: |\n  if [ $VHPC_NODE_RANK = 0 ]; then python3 send.py; else python3 listen.py 25 A-1; fi\n",
			map[string]string{"listen.py": listen, "send.py": send})
		c.waitForLong(t, "both jobs to end", func() bool { return c.ended(a) && c.ended(b) })
		for _, s := range []submitted{a, b} {
			if c.job(s.id).GetState() != "completed" {
				t.Fatalf("job %d did not complete: %s", s.id, c.describe(s))
			}
		}
		if out := c.logs(a); !strings.Contains(out, "A-1 heard 1: token-A") {
			t.Fatalf("job A's node1 did not hear its own node0 (the control):\n%s", out)
		}
		if out := c.logs(b); strings.Count(out, "heard 0:") != 2 {
			t.Fatalf("job B heard job A's network:\n%s", out)
		}
	})

	t.Run("a guest killed mid-run requeues the whole gang", func(t *testing.T) {
		d := c.submitDir(t, "name: victim\nimage: public/mpi:1\nretries: 1\nresources: {nodes: 2, cpusPerTask: 1, memory: 512MiB}\nwalltime: 10m\n"+
			"script: |\n  if [ $VHPC_ATTEMPT = 1 ]; then sleep 600; fi\n  echo attempt $VHPC_ATTEMPT on $(hostname)\n", nil)
		var victim string
		c.waitForLong(t, "the gang to run", func() bool {
			if c.job(d.id).GetState() != "running" {
				return false
			}
			for _, dom := range domains(t, c.states[1]) {
				victim = dom
			}
			return victim != ""
		})
		if out, err := exec.Command("virsh", "-c", "qemu:///system", "destroy", victim).CombinedOutput(); err != nil {
			t.Fatalf("virsh destroy %s: %v\n%s", victim, err, out)
		}
		c.waitForLong(t, "the job to end", func() bool {
			st := c.job(d.id).GetState()
			return st == "completed" || st == "failed"
		})
		j := c.job(d.id)
		attempts := map[uint64]int{}
		for _, a := range j.GetAllocations() {
			attempts[a.GetAttempt()]++
		}
		if j.GetState() != "completed" || j.GetRestarts() != 1 || attempts[1] != 2 || attempts[2] != 2 {
			t.Fatalf("job %s, %d restarts, allocations per attempt %v (%s)", j.GetState(), j.GetRestarts(), attempts, j.GetReason())
		}
	})

	t.Run("a rank that hangs past the walltime: the gang is destroyed, nothing leaks", func(t *testing.T) {
		cmd := `command: [python3, -c, "from mpi4py import MPI; import time; MPI.COMM_WORLD.rank == 1 and time.sleep(3600); MPI.COMM_WORLD.Barrier()"]` + "\n"
		j, logs := c.run(t, "name: hang\nimage: public/mpi:1\nmpi: openmpi\nresources: {nodes: 2, tasksPerNode: 2, cpusPerTask: 1, memory: 768MiB}\nwalltime: 1m\n"+cmd, nil)
		if j.GetState() != "timeout" {
			t.Fatalf("job %s (%s), output:\n%s", j.GetState(), j.GetReason(), logs)
		}
		c.waitForLong(t, "the guests and job networks to be gone", func() bool { return len(c.leftovers(t)) == 0 })
	})

	t.Run("a rank that exits 3 ends the job with 3 and leaves nothing behind", func(t *testing.T) {
		cmd := `command: [python3, -c, "from mpi4py import MPI; import sys; sys.exit(3 if MPI.COMM_WORLD.rank == 1 else 0)"]` + "\n"
		j, logs := c.run(t, "name: three\nimage: public/mpi:1\nmpi: openmpi\n"+res+cmd, nil)
		if j.GetState() != "failed" || j.GetExitCode() != 3 {
			t.Fatalf("job %s exit %d (%s), output:\n%s", j.GetState(), j.GetExitCode(), j.GetReason(), logs)
		}
		c.waitForLong(t, "the guests and job networks to be gone", func() bool { return len(c.leftovers(t)) == 0 })
	})
}

// BenchmarkJobNetwork measures a job network on real guests under TCG,
// side by side in one run:
//
//   - host: testdata/pingpong.c (an osu-style TCP ping-pong: half the
//     round trip of 1-byte messages, one-way bandwidth of 1 MiB ones)
//     between two processes on this host, over loopback;
//
//   - guests: the same program between node0 and node1 of a two-node job,
//     whose guests sit on two agents joined by VXLAN;
//
//   - launch: from rank 0's script start (every guest has answered the
//     launcher, i.e. all are booted) to the last of 4 Open MPI ranks on 2
//     guests started (each prints its wall clock; guests take the host's
//     clock at boot).
//
//     VHPC_E2E=1 go test -tags libvirt_dlopen -run '^$' -bench JobNetwork -benchtime 2x ./cmd/hpcd/
func BenchmarkJobNetwork(b *testing.B) {
	c := startMPICluster(b)
	src, err := os.ReadFile(filepath.Join("testdata", "pingpong.c"))
	if err != nil {
		b.Fatal(err)
	}
	report := func(b *testing.B, outs []string) {
		var lat, bw float64
		for _, out := range outs {
			m := regexp.MustCompile(`pingpong latency_us ([0-9.]+) bandwidth_MBps ([0-9.]+)`).FindStringSubmatch(out)
			if m == nil {
				b.Fatalf("no ping-pong result in:\n%s", out)
			}
			l, _ := strconv.ParseFloat(m[1], 64)
			w, _ := strconv.ParseFloat(m[2], 64)
			lat, bw = lat+l, bw+w
		}
		b.ReportMetric(lat/float64(len(outs)), "latency-us")
		b.ReportMetric(bw/float64(len(outs)), "MB/s")
	}
	b.Run("host", func(b *testing.B) {
		dir := b.TempDir()
		bin := filepath.Join(dir, "pingpong")
		if out, err := exec.Command("gcc", "-O2", "-o", bin, filepath.Join("testdata", "pingpong.c")).CombinedOutput(); err != nil {
			b.Fatalf("gcc: %v\n%s", err, out)
		}
		var outs []string
		for b.Loop() {
			port := strings.TrimPrefix(freePort(b), "127.0.0.1:")
			srv := exec.Command(bin, "server", port)
			if err := srv.Start(); err != nil {
				b.Fatal(err)
			}
			out, err := exec.Command(bin, "client", "127.0.0.1", port).CombinedOutput()
			_ = srv.Wait()
			if err != nil {
				b.Fatalf("client: %v\n%s", err, out)
			}
			outs = append(outs, string(out))
		}
		report(b, outs)
	})
	b.Run("guests", func(b *testing.B) {
		job := "name: pingpong\nimage: public/mpi:1\nresources: {nodes: 2, cpusPerTask: 1, memory: 512MiB}\nwalltime: 10m\n" +
			"stageIn: [{from: pingpong.c, to: pingpong.c}]\nscript: |\n  set -e\n  gcc -O2 -o pingpong pingpong.c\n" +
			"  if [ $VHPC_NODE_RANK = 1 ]; then ./pingpong server 5601; else ./pingpong client node1 5601; fi\n"
		var outs []string
		for b.Loop() {
			j, out := c.run(b, job, map[string]string{"pingpong.c": string(src)})
			if j.GetState() != "completed" {
				b.Fatalf("job %s (%s):\n%s", j.GetState(), j.GetReason(), out)
			}
			outs = append(outs, out)
		}
		report(b, outs)
	})
	b.Run("launch", func(b *testing.B) {
		job := "name: launch\nimage: public/mpi:1\nmpi: openmpi\nresources: {nodes: 2, tasksPerNode: 2, cpusPerTask: 1, memory: 512MiB}\nwalltime: 10m\n" +
			"script: |\n  echo script-start $(date +%s.%N)\n  mpirun -np 4 --tag-output date +rank-start%s.%N\n"
		var total float64
		for b.Loop() {
			j, out := c.run(b, job, nil)
			start := regexp.MustCompile(`script-start ([0-9.]+)`).FindStringSubmatch(out)
			ranks := regexp.MustCompile(`rank-start([0-9.]+)`).FindAllStringSubmatch(out, -1)
			if j.GetState() != "completed" || start == nil || len(ranks) != 4 {
				b.Fatalf("job %s (%s), %d ranks:\n%s", j.GetState(), j.GetReason(), len(ranks), out)
			}
			t0, _ := strconv.ParseFloat(start[1], 64)
			last := t0
			for _, r := range ranks {
				v, _ := strconv.ParseFloat(r[1], 64)
				last = max(last, v)
			}
			total += last - t0
		}
		b.ReportMetric(total/float64(b.N), "launch-s")
	})
}
