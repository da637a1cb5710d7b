package server

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/scheduler/model"
	"vhpc/wire"
)

// TestMPIJobNeedsItsMPIInTheImage: submit refuses an MPI job whose image
// lacks the MPI's Debian package (from the package list the image was
// pushed with), naming the package, and adds nothing.
func TestMPIJobNeedsItsMPIInTheImage(t *testing.T) {
	ts := startServer(t, t.TempDir())
	images := api.NewImageServiceClient(ts.conn)
	ctx := ctxT(t)
	for _, p := range []struct {
		ref      string
		packages []string
	}{
		{"public/mpi:1", []string{"mpich", "openmpi-bin", "python3"}},
		{"public/python:1", []string{"python3"}},
		{"public/bare:1", nil},
	} {
		if _, err := images.Put(ctx, &api.PutImageRequest{Ref: p.ref, Digest: digestOf(string(rune('1' + len(p.packages)))), Packages: p.packages}); err != nil {
			t.Fatalf("put %s: %v", p.ref, err)
		}
	}
	cases := []struct {
		image, mpi, want string // want "" = accepted
	}{
		{"public/mpi:1", "openmpi", ""},
		{"public/mpi:1", "mpich", ""},
		{"public/python:1", "none", ""},
		{"tiny", "none", ""},
		{"public/python:1", "openmpi", "has no openmpi-bin, and mpi: openmpi needs it"},
		{"public/python:1", "mpich", "has no mpich, and mpi: mpich needs it"},
		{"tiny", "openmpi", "(the built-in image) has no MPI"},
		{"public/bare:1", "mpich", "was pushed without its package list"},
	}
	for _, c := range cases {
		t.Run(c.image+" "+c.mpi, func(t *testing.T) {
			before, _ := ts.jobs.List(ctx, &api.ListJobsRequest{All: true})
			spec := "name: x\nimage: " + c.image + "\nmpi: " + c.mpi + "\nwalltime: 5m\ncommand: [\"true\"]\n"
			_, err := ts.jobs.Submit(ctx, &api.SubmitRequest{Spec: []byte(spec), Filename: "job.yaml"})
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err %v, want InvalidArgument with %q", err, c.want)
			}
			if after, _ := ts.jobs.List(ctx, &api.ListJobsRequest{All: true}); len(after.GetJobs()) != len(before.GetJobs()) {
				t.Fatal("a refused submission added a job")
			}
		})
	}
	if _, err := images.Put(ctx, &api.PutImageRequest{Ref: "public/odd:1", Digest: digestOf("9"), Packages: []string{"Bad Name"}}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a package name with spaces: %v", err)
	}
}

// TestGangGetsItsNetwork: the allocations of a two-node job carry the
// gang (each rank's node and underlay) and one launcher secret, the same
// for both; a single-node job without MPI gets neither; a bad underlay is
// refused at registration.
func TestGangGetsItsNetwork(t *testing.T) {
	ts := startServer(t, t.TempDir())
	ctx := ctxT(t)
	for i, name := range []string{"n1", "n2"} {
		n := &model.Node{Name: name, Hypervisor: "tcg", ScratchMiB: 10 << 10, NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 4096}},
			Cores: []model.Core{{ID: 0}, {ID: 1, PhysicalCore: 1}}, Underlay: "127.0.0.1:" + []string{"4789", "4790"}[i]}
		if _, err := ts.node.Register(ctx, &api.RegisterRequest{Node: wire.NodeToProto(n)}); err != nil {
			t.Fatal(err)
		}
	}
	bad := &model.Node{Name: "n3", Hypervisor: "tcg", NUMA: []model.NUMANode{{ID: 0, MemoryMiB: 4096}}, Cores: []model.Core{{ID: 0}}, Underlay: "somewhere"}
	if _, err := ts.node.Register(ctx, &api.RegisterRequest{Node: wire.NodeToProto(bad)}); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "underlay") {
		t.Fatalf("bad underlay: %v", err)
	}
	gangSpec := "name: g\nresources: {nodes: 2, cpusPerTask: 1, memory: 512MiB}\nwalltime: 5m\ncommand: [\"true\"]\n"
	if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "g", Spec: []byte(gangSpec)}); err != nil {
		t.Fatal(err)
	}
	oneSpec := "name: one\nresources: {cpusPerTask: 1, memory: 512MiB}\nwalltime: 5m\ncommand: [\"true\"]\n"
	if _, err := ts.jobs.Submit(ctx, &api.SubmitRequest{ClientToken: "one", Spec: []byte(oneSpec)}); err != nil {
		t.Fatal(err)
	}
	secrets := map[string]bool{}
	for _, node := range []string{"n1", "n2"} {
		watch, err := ts.node.WatchAllocations(ctx, &api.WatchAllocationsRequest{Node: node})
		if err != nil {
			t.Fatal(err)
		}
		var gang *api.Allocation
		for gang == nil {
			set, err := watch.Recv()
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range set.GetAllocations() {
				switch a.GetJob() {
				case 1:
					gang = a
				case 2:
					if a.GetNetworkSecret() != "" || len(a.GetGang()) != 0 {
						t.Errorf("single-node job got a network: %v", a)
					}
				}
			}
		}
		g := gang.GetGang()
		if len(g) != 2 || g[0].GetRank() != 0 || g[1].GetRank() != 1 || g[0].GetNode() == g[1].GetNode() ||
			!strings.HasPrefix(g[0].GetUnderlay(), "127.0.0.1:47") || len(gang.GetNetworkSecret()) != 64 {
			t.Fatalf("gang allocation on %s: gang %v, secret %q", node, g, gang.GetNetworkSecret())
		}
		secrets[gang.GetNetworkSecret()] = true
	}
	if len(secrets) != 1 {
		t.Fatalf("the ranks got different secrets: %v", secrets)
	}
	j, err := ts.jobs.Get(ctx, &api.GetJobRequest{Id: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range j.GetAllocations() {
		if a.GetNetworkSecret() != "" {
			t.Fatal("JobService.Get shows the launcher secret")
		}
	}
}
