package guest

import (
	"context"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"vhpc/guestproto"
)

const testSecret = "00112233445566778899aabbccddeeff"

// netReq is a request of rank of a job of n guests, run as the test's
// own user.
func netReq(mpi string, rank, n, tpn, cpt int) guestproto.Request {
	r := req()
	r.MPI, r.TasksPerNode, r.CPUsPerTask = mpi, tpn, cpt
	r.Network = guestproto.NewNetwork(rank, n, testSecret)
	return r
}

func TestHostfile(t *testing.T) {
	tests := []struct {
		name string
		req  guestproto.Request
		want string
	}{
		{"openmpi", netReq("openmpi", 0, 3, 4, 1), "node0 slots=4\nnode1 slots=4\nnode2 slots=4\n"},
		{"mpich", netReq("mpich", 1, 2, 2, 1), "node0:2\nnode1:2\n"},
		{"openmpi one task by default", netReq("openmpi", 0, 2, 0, 0), "node0 slots=1\nnode1 slots=1\n"},
		{"no mpi", netReq("", 0, 2, 8, 1), "node0\nnode1\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Hostfile(tc.req); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestNetworkEnv(t *testing.T) {
	root := netReq("openmpi", 0, 2, 1, 1)
	root.UID = 0
	job := netReq("openmpi", 1, 2, 4, 1)
	job.UID = guestproto.JobUID
	tests := []struct {
		name string
		req  guestproto.Request
		want string
	}{
		{"openmpi", job,
			"VHPC_HOSTFILE=/run/vhpc/hostfile VHPC_HOSTNAME=node1 VHPC_NNODES=2 VHPC_NTASKS=8 " +
				"PATH=/usr/local/lib/vhpc/mpi-bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin " +
				"OMPI_MCA_orte_default_hostfile=/run/vhpc/hostfile OMPI_MCA_plm_rsh_agent=/usr/local/bin/vhpc-rsh OMPI_MCA_plm_rsh_no_tree_spawn=1"},
		{"openmpi as root", root,
			"VHPC_HOSTFILE=/run/vhpc/hostfile VHPC_HOSTNAME=node0 VHPC_NNODES=2 VHPC_NTASKS=2 " +
				"PATH=/usr/local/lib/vhpc/mpi-bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin " +
				"OMPI_MCA_orte_default_hostfile=/run/vhpc/hostfile OMPI_MCA_plm_rsh_agent=/usr/local/bin/vhpc-rsh OMPI_MCA_plm_rsh_no_tree_spawn=1 " +
				"OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1"},
		{"mpich", netReq("mpich", 0, 3, 2, 1),
			"VHPC_HOSTFILE=/run/vhpc/hostfile VHPC_HOSTNAME=node0 VHPC_NNODES=3 VHPC_NTASKS=6 " +
				"PATH=/usr/local/lib/vhpc/mpi-bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin " +
				"HYDRA_HOST_FILE=/run/vhpc/hostfile HYDRA_LAUNCHER=ssh HYDRA_LAUNCHER_EXEC=/usr/local/bin/vhpc-rsh"},
		{"no mpi", netReq("", 0, 2, 1, 1),
			"VHPC_HOSTFILE=/run/vhpc/hostfile VHPC_HOSTNAME=node0 VHPC_NNODES=2 VHPC_NTASKS=2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(NetworkEnv(tc.req, HostfilePath, RshPath), " "); got != tc.want {
				t.Errorf("got  %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestMPIArgv(t *testing.T) {
	withArgv := func(r guestproto.Request, argv ...string) guestproto.Request { r.Argv = argv; return r }
	tests := []struct {
		name string
		req  guestproto.Request
		want string
	}{
		{"openmpi", withArgv(netReq("openmpi", 0, 2, 4, 1), "./a.out", "-n", "3"),
			"mpirun --tag-output -np 8 --hostfile /run/vhpc/hostfile ./a.out -n 3"},
		{"openmpi with cpus per task", withArgv(netReq("openmpi", 0, 2, 2, 4), "./a.out"),
			"mpirun --tag-output -np 4 --hostfile /run/vhpc/hostfile --map-by slot:PE=4 ./a.out"},
		{"mpich", withArgv(netReq("mpich", 0, 3, 1, 1), "./a.out"),
			"mpiexec -prepend-rank -f /run/vhpc/hostfile -n 3 ./a.out"},
		{"user's own mpirun", withArgv(netReq("openmpi", 0, 2, 1, 1), "mpirun", "-np", "2", "./a.out"),
			"mpirun -np 2 ./a.out"},
		{"user's own mpiexec by path", withArgv(netReq("mpich", 0, 2, 1, 1), "/usr/bin/mpiexec.hydra", "./a.out"),
			"/usr/bin/mpiexec.hydra ./a.out"},
		{"script", netReq("mpich", 0, 2, 1, 1), ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(MPIArgv(tc.req, HostfilePath), " "); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBarrier(t *testing.T) {
	up := startLauncher(t, nil)
	ln, _ := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	dead := ln.Addr().String()
	ln.Close()
	lc := LauncherClient{Key: testKey}
	if err := Barrier(context.Background(), lc, []PeerAddr{{"node1", up.addr}}, time.Second); err != nil {
		t.Fatalf("all up: %v", err)
	}
	start := time.Now()
	err := Barrier(context.Background(), lc, []PeerAddr{{"node1", up.addr}, {"node2", dead}}, time.Second)
	if err == nil || !strings.Contains(err.Error(), "1 of 2 peers not ready after 1s: node2 ("+dead) {
		t.Fatalf("err %v, want node2 named", err)
	}
	if strings.Contains(err.Error(), "node1") {
		t.Errorf("err %v names node1, which answered", err)
	}
	if d := time.Since(start); d < time.Second || d > 5*time.Second {
		t.Errorf("gave up after %s, want about 1s", d)
	}
}

// twoGuests is a job of two guests on 127.0.0.1: rank 1's launcher
// (whose "done" closes done) and rank 0's NetJob.
func twoGuests(t *testing.T, mpi string) (rank0, rank1 *NetJob, peer *testServer) {
	done := make(chan struct{})
	closeDone := sync.OnceFunc(func() { close(done) })
	peer = startLauncher(t, closeDone)
	lc := LauncherClient{Key: testKey}
	r0 := netReq(mpi, 0, 2, 2, 1)
	rank0 = &NetJob{Client: lc, Peers: []PeerAddr{{"node1", peer.addr}}, Env: NetworkEnv(r0, "/tmp/hostfile", RshPath),
		Hostfile: "/tmp/hostfile", BarrierTimeout: 5 * time.Second}
	rank1 = &NetJob{Client: lc, Env: NetworkEnv(netReq(mpi, 1, 2, 2, 1), "/tmp/hostfile", RshPath), Done: done}
	return rank0, rank1, peer
}

func TestNetJobMPI(t *testing.T) {
	rank0, rank1, _ := twoGuests(t, "openmpi")
	followerOut := &syncBuf{}
	followed := make(chan guestproto.Exit, 1)
	go func() {
		followed <- rank1.Run(context.Background(), netReq("openmpi", 1, 2, 2, 1), JobOptions{WorkDir: t.TempDir(), Out: followerOut})
	}()

	// A script runs as it is, with the MPI environment; its code is the job's.
	r := netReq("openmpi", 0, 2, 2, 1)
	r.Script = "echo agent=$OMPI_MCA_plm_rsh_agent tasks=$VHPC_NTASKS rank=$VHPC_RANK\nexit 3\n"
	var out syncBuf
	e := rank0.Run(context.Background(), r, JobOptions{WorkDir: t.TempDir(), ScriptDir: t.TempDir(), Out: &out})
	if e.ExitCode != 3 || out.String() != "agent=/usr/local/bin/vhpc-rsh tasks=4 rank=0\n" {
		t.Errorf("rank 0: exit %+v output %q", e, out.String())
	}
	// Rank 0 said done: the follower ends with 0.
	select {
	case e := <-followed:
		if e.ExitCode != 0 || e.Error != "" || e.Stopped {
			t.Errorf("follower exit %+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("follower did not end after rank 0's done")
	}
}

func TestNetJobMPILauncherMissing(t *testing.T) {
	rank0, _, _ := twoGuests(t, "mpich")
	r := netReq("mpich", 0, 2, 2, 1)
	r.Argv = []string{"./a.out"}
	r.Env = map[string]string{"PATH": t.TempDir()} // no mpiexec there
	var out syncBuf
	e := rank0.Run(context.Background(), r, JobOptions{WorkDir: t.TempDir(), Out: &out})
	if e.ExitCode != 127 || !strings.Contains(e.Error, `"mpiexec" not found`) || !strings.Contains(e.Error, "mpich installed") {
		t.Errorf("exit %+v", e)
	}
}

func TestNetJobFollowerStopped(t *testing.T) {
	_, rank1, _ := twoGuests(t, "openmpi")
	stop := make(chan struct{})
	close(stop)
	e := rank1.Run(context.Background(), netReq("openmpi", 1, 2, 2, 1), JobOptions{Out: &syncBuf{}, Stop: stop})
	if !e.Stopped || e.ExitCode != 143 {
		t.Errorf("exit %+v, want stopped", e)
	}
}

func TestNetJobBarrierTimeout(t *testing.T) {
	rank0, _, _ := twoGuests(t, "openmpi")
	ln, _ := Listen(netip.MustParseAddrPort("127.0.0.1:0"))
	rank0.Peers = append(rank0.Peers, PeerAddr{"node2", ln.Addr().String()})
	ln.Close()
	rank0.BarrierTimeout = 500 * time.Millisecond
	r := netReq("openmpi", 0, 3, 1, 1)
	r.Script = "echo must not run"
	var out syncBuf
	e := rank0.Run(context.Background(), r, JobOptions{WorkDir: t.TempDir(), ScriptDir: t.TempDir(), Out: &out})
	if e.ExitCode != 126 || !strings.Contains(e.Error, "node2") || strings.Contains(out.String(), "must not run") {
		t.Errorf("exit %+v output %q", e, out.String())
	}
}

func TestNetJobWithoutMPI(t *testing.T) {
	// Every guest runs the command (here rank 1), found in the job's PATH.
	_, rank1, _ := twoGuests(t, "")
	r := netReq("", 1, 2, 1, 1)
	r.Argv = []string{"sh", "-c", "echo $VHPC_HOSTNAME $VHPC_NNODES; exit 4"}
	var out syncBuf
	e := rank1.Run(context.Background(), r, JobOptions{WorkDir: t.TempDir(), Out: &out})
	if e.ExitCode != 4 || out.String() != "node1 2\n" {
		t.Errorf("exit %+v output %q", e, out.String())
	}
}

func TestLookPathEnv(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/tool", []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir+"/data", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, want string
		err        bool
	}{
		{"tool", dir + "/tool", false},
		{"/abs/path", "/abs/path", false},
		{"data", "", true},
		{"none", "", true},
	}
	for _, tc := range tests {
		got, err := lookPathEnv(tc.name, []string{"HOME=/", "PATH=/no/such:" + dir})
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("lookPathEnv(%q) = %q, %v", tc.name, got, err)
		}
	}
	if _, err := lookPathEnv("sh", nil); err == nil {
		t.Error("found sh without a PATH")
	}
}

// TestWriteMPIShims: the job's flavour's commands appear under their
// plain names; the other flavour's and missing ones do not.
func TestWriteMPIShims(t *testing.T) {
	usr, dir := t.TempDir(), filepath.Join(t.TempDir(), "mpi-bin")
	for _, f := range []string{"mpirun.mpich", "mpicc.mpich", "mpirun.openmpi", "mpif90.openmpi"} {
		if err := os.WriteFile(filepath.Join(usr, f), []byte("#!/bin/sh\nprintf '%s|' \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < 2; i++ { // twice: idempotent
		if err := WriteMPIShims(dir, "mpich", usr); err != nil {
			t.Fatal(err)
		}
	}
	for name, want := range map[string]string{"mpirun": "mpirun.mpich", "mpicc": "mpicc.mpich", "mpif90": ""} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if want == "" {
			if err == nil {
				t.Errorf("%s: %q, want no shim", name, got)
			}
			continue
		}
		if err != nil || string(got) != "#!/bin/sh\nexec "+filepath.Join(usr, want)+" \"$@\"\n" {
			t.Errorf("%s: %q, %v; want an exec of %s", name, got, err, want)
		}
	}
	out, err := exec.Command(filepath.Join(dir, "mpirun"), "a b", "c").CombinedOutput()
	if err != nil || string(out) != "a b|c|" {
		t.Fatalf("the mpirun shim passed %q (%v), want its arguments unchanged: %q", out, err, "a b|c|")
	}
}
