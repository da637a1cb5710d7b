package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/security/pki"
	"vhpc/vmimages/guesttest"
)

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

type proc struct {
	cmd  *exec.Cmd
	addr string
}

func startHpcd(t testing.TB, bin, dataDir, addr, raftAddr string) *proc {
	t.Helper()
	cmd := exec.Command(bin, "dev", "--data-dir", dataDir, "--addr", addr, "--raft-addr", raftAddr, "--http", "", "--log-level", "warn", "--no-agent", "--insecure")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, addr: addr}
	t.Cleanup(func() { _ = p.cmd.Process.Kill(); _ = p.cmd.Wait() })
	return p
}

// goBuild builds the command package pkg (relative to cmd/hpcd) into dir
// and returns the binary's path.
func goBuild(t testing.TB, dir, pkg string) string {
	t.Helper()
	bin := filepath.Join(dir, filepath.Base(pkg))
	if pkg == "." {
		bin = filepath.Join(dir, "hpcd")
	}
	if out, err := exec.Command("go", "build", "-tags", "libvirt_dlopen", "-o", bin, pkg).CombinedOutput(); err != nil {
		t.Fatalf("build %s: %v\n%s", pkg, err, out)
	}
	return bin
}

// testGuestBinary builds hpc-guest once per test binary.
var testGuestBinary = sync.OnceValues(func() (string, error) {
	return guesttest.Build(context.Background(), filepath.Join(os.TempDir(), "vhpc-hpcd-test-guest"))
})

// withGuest puts a static hpc-guest into dir, next to the hpcd or
// hpc-agent that goBuild built there, where their runner finds it as it
// finds bin/hpc-guest after `make build` (the product never builds it).
func withGuest(t testing.TB, dir string) {
	t.Helper()
	gb, err := testGuestBinary()
	if err != nil {
		t.Fatalf("hpc-guest: %v", err)
	}
	if err := guesttest.Install(gb, dir); err != nil {
		t.Fatal(err)
	}
}

// dialServing connects to a member's gRPC address, waits until it serves
// (waitServing) and closes the connection when the test ends.
func dialServing(t testing.TB, addr string) *grpc.ClientConn {
	t.Helper()
	creds := client.Insecure()
	if os.Getenv(client.CredentialsEnv) != "none" { // startDev's credentials (e2e_test.go)
		waitFile(t, filepath.Join(os.Getenv(client.CredentialsEnv), pki.CACertFile))
		var err error
		if creds, err = client.DefaultCredentials(); err != nil {
			t.Fatal(err)
		}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds.Transport()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	waitServing(t, conn)
	return conn
}

// waitServing waits for the gRPC health service to say SERVING and for a
// read to succeed (the member leads and passed its barrier).
func waitServing(t testing.TB, conn *grpc.ClientConn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	hc := grpc_health_v1.NewHealthClient(conn)
	for {
		resp, err := hc.Check(ctx, &grpc_health_v1.HealthCheckRequest{}, grpc.WaitForReady(true))
		if status.Code(err) == codes.PermissionDenied { // a secure member: health is not in the ACL table
			resp, err = &grpc_health_v1.HealthCheckResponse{Status: grpc_health_v1.HealthCheckResponse_SERVING}, nil
		}
		if err == nil && resp.GetStatus() == grpc_health_v1.HealthCheckResponse_SERVING {
			if _, err := api.NewJobServiceClient(conn).List(ctx, &api.ListJobsRequest{Limit: 1}); err == nil {
				return
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("hpcd never served: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// TestKill9LosesNoAcknowledgedJob kills hpcd with SIGKILL while clients
// submit, restarts it on the same data dir, and checks that every
// submission that was acknowledged is there, exactly once.
func TestKill9LosesNoAcknowledgedJob(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs hpcd; skipped with -short")
	}
	dir := t.TempDir()
	bin := goBuild(t, dir, ".")
	data := filepath.Join(dir, "data")
	addr, raftAddr := freePort(t), freePort(t)
	p := startHpcd(t, bin, data, addr, raftAddr)
	conn := dialServing(t, addr)
	jobs := api.NewJobServiceClient(conn)

	spec := []byte("name: crash\ncommand: [\"true\"]\n")
	acked := map[string]uint64{}
	results := make(chan [2]string, 1024)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for w := range 4 {
		go func() {
			for i := 0; ; i++ {
				tok := fmt.Sprintf("w%d-%d", w, i)
				resp, err := jobs.Submit(ctx, &api.SubmitRequest{ClientToken: tok, Spec: spec})
				if err != nil {
					results <- [2]string{"", ""}
					return
				}
				results <- [2]string{tok, fmt.Sprint(resp.GetJobId())}
			}
		}()
	}
	// Let some submissions be acknowledged, then kill -9 mid-stream.
	for len(acked) < 200 {
		r := <-results
		if r[0] == "" {
			t.Fatal("a submission failed before the kill")
		}
		var id uint64
		fmt.Sscan(r[1], &id)
		acked[r[0]] = id
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = p.cmd.Wait()
	for done := 0; done < 4; {
		r := <-results
		if r[0] == "" {
			done++
			continue
		}
		var id uint64
		fmt.Sscan(r[1], &id)
		acked[r[0]] = id
	}

	startHpcd(t, bin, data, addr, raftAddr)
	waitServing(t, conn)
	list, err := jobs.List(context.Background(), &api.ListJobsRequest{All: true})
	if err != nil {
		t.Fatal(err)
	}
	have := map[uint64]bool{}
	for _, j := range list.GetJobs() {
		have[j.GetId()] = true
	}
	for tok, id := range acked {
		if !have[id] {
			t.Errorf("acknowledged job %d (token %s) lost after kill -9", id, tok)
		}
		// A retry of an acknowledged token gets the same job back.
		if strings.HasSuffix(tok, "-0") {
			resp, err := jobs.Submit(context.Background(), &api.SubmitRequest{ClientToken: tok, Spec: spec})
			if err != nil || resp.GetJobId() != id || !resp.GetDuplicate() {
				t.Errorf("retry of %s after restart: %v %v; want job %d again", tok, resp, err, id)
			}
		}
	}
	t.Logf("%d acknowledged submissions, %d jobs after restart", len(acked), len(list.GetJobs()))
}
