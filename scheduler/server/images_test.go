package server

import (
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
)

func digestOf(c string) string { return "sha256:" + strings.Repeat(c, 64) }

func TestImageCatalogRPCs(t *testing.T) {
	ts := startServer(t, t.TempDir())
	images := api.NewImageServiceClient(ts.conn)
	ctx := ctxT(t)

	put := func(ref, digest string, public bool, token string) (*api.ImageRecord, error) {
		return images.Put(ctx, &api.PutImageRequest{Ref: ref, Digest: digest, SizeBytes: 1 << 20, Public: public, User: "ada", ClientToken: token, BuiltFrom: "images/x.yaml"})
	}
	for _, p := range []struct {
		ref, digest string
		public      bool
	}{
		{"public/tiny", digestOf("1"), false},
		{"chemistry/lammps:2024.08", digestOf("2"), false},
		{"chemistry/shared:1", digestOf("3"), true},
		{"physics/mpi:1", digestOf("4"), false},
	} {
		if _, err := put(p.ref, p.digest, p.public, ""); err != nil {
			t.Fatalf("put %s: %v", p.ref, err)
		}
	}
	// A retried token changes nothing; a moved tag names the old digest.
	r, err := put("chemistry/lammps:latest", digestOf("5"), false, "tok")
	if err != nil || r.GetPreviousDigest() != "" || r.GetDuplicate() {
		t.Fatalf("put latest: %v %v", r, err)
	}
	if r, err := put("chemistry/lammps:latest", digestOf("6"), false, "tok"); err != nil || !r.GetDuplicate() || r.GetDigest() != digestOf("5") {
		t.Fatalf("retried put: %v %v", r, err)
	}
	if r, err := put("chemistry/lammps:latest", digestOf("6"), false, "tok2"); err != nil || r.GetPreviousDigest() != digestOf("5") {
		t.Fatalf("moved tag: %v %v", r, err)
	}

	bad := []struct {
		name, ref, digest, want string
	}{
		{"no department", "lammps:1", digestOf("2"), "want department/name[:tag]"},
		{"upper case", "Chemistry/lammps:1", digestOf("2"), "lowercase"},
		{"bad digest", "chemistry/lammps:1", "sha256:xyz", "64 lowercase hex"},
	}
	for _, b := range bad {
		t.Run(b.name, func(t *testing.T) {
			_, err := put(b.ref, b.digest, false, "")
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), b.want) {
				t.Fatalf("err %v, want InvalidArgument with %q", err, b.want)
			}
		})
	}

	list, err := images.List(ctx, &api.ListImagesRequest{Department: "chemistry"})
	if err != nil {
		t.Fatal(err)
	}
	var refs []string
	for _, im := range list.GetImages() {
		refs = append(refs, im.GetRef())
	}
	if got := strings.Join(refs, " "); got != "chemistry/lammps:2024.08 chemistry/lammps:latest chemistry/shared:1" {
		t.Fatalf("list chemistry: %s", got)
	}
	if g, err := images.Get(ctx, &api.GetImageRequest{Ref: "public/tiny"}); err != nil || !g.GetPublic() || g.GetDigest() != digestOf("1") {
		t.Fatalf("get public/tiny: %v %v", g, err)
	}
	if _, err := images.Get(ctx, &api.GetImageRequest{Ref: "chemistry/lamps:2024.08"}); status.Code(err) != codes.NotFound || !strings.Contains(err.Error(), `did you mean "chemistry/lammps:2024.08"`) {
		t.Fatalf("get a typo: %v", err)
	}

	// Submit resolves the tag to its digest; the job keeps it when the tag moves.
	submit := func(image, dept string) (*api.SubmitResponse, error) {
		spec := "name: x\ndepartment: " + dept + "\nimage: " + image + "\nwalltime: 5m\ncommand: [\"true\"]\n"
		return ts.jobs.Submit(ctx, &api.SubmitRequest{Spec: []byte(spec), Filename: "job.yaml", User: "ada"})
	}
	res, err := submit("chemistry/lammps", "chemistry")
	if err != nil {
		t.Fatal(err)
	}
	if j := res.GetJob(); j.GetImageRef() != "chemistry/lammps:latest" || j.GetImageDigest() != digestOf("6") {
		t.Fatalf("job image %s %s", j.GetImageRef(), j.GetImageDigest())
	}
	if _, err := put("chemistry/lammps:latest", digestOf("7"), false, ""); err != nil {
		t.Fatal(err)
	}
	if j, err := ts.jobs.Get(ctx, &api.GetJobRequest{Id: res.GetJobId()}); err != nil || j.GetImageDigest() != digestOf("6") {
		t.Fatalf("queued job after the tag moved: %v %v", j.GetImageDigest(), err)
	}

	ok := []struct{ image, dept, ref string }{
		{"tiny", "physics", ""},
		{"public/tiny", "physics", "public/tiny:latest"},
		{"chemistry/shared:1", "physics", "chemistry/shared:1"},
		{"mpi:1", "physics", "physics/mpi:1"},
		{"tiny:latest", "physics", "public/tiny:latest"},
	}
	for _, o := range ok {
		res, err := submit(o.image, o.dept)
		if err != nil || res.GetJob().GetImageRef() != o.ref {
			t.Fatalf("submit image %s as %s: %v, ref %q, want %q", o.image, o.dept, err, res.GetJob().GetImageRef(), o.ref)
		}
	}
	before, _ := ts.jobs.List(ctx, &api.ListJobsRequest{All: true})
	refused := []struct{ image, dept, want string }{
		{"chemistry/lammps:2024.08", "physics", `job.yaml:3:8: image: "chemistry/lammps:2024.08" is a private image of department chemistry; the job's department is physics`},
		{"chemistry/lamps:2024.08", "chemistry", `did you mean "chemistry/lammps:2024.08"`},
		{"public/tinny", "physics", `did you mean "public/tiny:latest"`},
		{"nothing", "physics", `"nothing" is not in the image catalog`},
	}
	for _, r := range refused {
		_, err := submit(r.image, r.dept)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), r.want) {
			t.Fatalf("submit %s as %s: %v, want %q", r.image, r.dept, err, r.want)
		}
	}
	if after, _ := ts.jobs.List(ctx, &api.ListJobsRequest{All: true}); len(after.GetJobs()) != len(before.GetJobs()) {
		t.Fatalf("refused submissions added jobs: %d -> %d", len(before.GetJobs()), len(after.GetJobs()))
	}

	// Remove is refused while a queued job uses the digest.
	if _, err := put("chemistry/old:1", digestOf("6"), false, ""); err != nil {
		t.Fatal(err)
	}
	_, err = images.Remove(ctx, &api.RemoveImageRequest{Ref: "chemistry/old:1"})
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "used by queued or running job "+itoa(res.GetJobId())) {
		t.Fatalf("remove while used: %v", err)
	}
	if _, err := ts.jobs.Cancel(ctx, &api.CancelJobRequest{Id: res.GetJobId()}); err != nil {
		t.Fatal(err)
	}
	if r, err := images.Remove(ctx, &api.RemoveImageRequest{Ref: "chemistry/old:1", ClientToken: "rm"}); err != nil || r.GetDigest() != digestOf("6") {
		t.Fatalf("remove after cancel: %v %v", r, err)
	}
	if r, err := images.Remove(ctx, &api.RemoveImageRequest{Ref: "chemistry/old:1", ClientToken: "rm"}); err != nil || !r.GetDuplicate() {
		t.Fatalf("retried remove: %v %v", r, err)
	}
	if _, err := images.Remove(ctx, &api.RemoveImageRequest{Ref: "chemistry/old:1"}); status.Code(err) != codes.NotFound {
		t.Fatalf("remove twice: %v", err)
	}
}

func itoa(n uint64) string { return strconv.FormatUint(n, 10) }
