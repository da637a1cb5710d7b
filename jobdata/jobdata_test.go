package jobdata_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"vhpc/imagestore"
	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
)

// writeTree creates files (path -> content) under dir; a path ending in
// "*" is made executable.
func writeTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(p, "*") {
			p, mode = strings.TrimSuffix(p, "*"), 0o755
		}
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func push(t *testing.T, reg *registrytest.Registry, dir string, stages []jobdata.Stage) jobdata.Pushed {
	t.Helper()
	c, err := jobdata.Collect(dir, stages, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	p, err := jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("physics"), c, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRoundTripAndDedup: a tree pushed and pulled elsewhere comes back
// byte for byte with its modes, under the stage's destination; symlinks in
// a staged folder are skipped; a second push of the same files sends no
// file bytes and names the same set.
func TestRoundTripAndDedup(t *testing.T) {
	reg := registrytest.Start(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{
		"in.txt": "hello\n", "data/a.csv": "1,2\n", "data/sub/b.bin": strings.Repeat("x", 3<<20),
		"data/run.sh*": "#!/bin/sh\necho hi\n", "data/empty": "", "unrelated.txt": "not staged",
	})
	if err := os.Symlink("/etc/passwd", filepath.Join(src, "data", "link")); err != nil {
		t.Fatal(err)
	}
	stages := []jobdata.Stage{{From: "in.txt"}, {From: "data", To: "inputs/data"}}
	c, err := jobdata.Collect(src, stages, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Skipped) != 1 || c.Skipped[0] != "data/link" {
		t.Errorf("skipped %v, want [data/link]", c.Skipped)
	}
	first, err := jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("physics"), c, reg.Options())
	c.Close()
	if err != nil {
		t.Fatal(err)
	}
	if first.Files != 5 || first.SentBytes != first.Bytes || first.Bytes != int64(6+4+3<<20+18) {
		t.Errorf("first push %+v: want 5 files, every byte sent", first)
	}
	second := push(t, reg, src, stages)
	if second.Digest != first.Digest || second.SentBytes != 0 {
		t.Errorf("second push %+v: want digest %s and nothing sent", second, first.Digest)
	}

	dst := t.TempDir()
	set, err := jobdata.Pull(context.Background(), reg.URL, jobdata.RepositoryName("physics"), first.Digest, dst, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	if len(set.Files) != 5 {
		t.Errorf("pulled %d files", len(set.Files))
	}
	for from, to := range map[string]string{
		"in.txt": "in.txt", "data/a.csv": "inputs/data/a.csv", "data/sub/b.bin": "inputs/data/sub/b.bin",
		"data/run.sh": "inputs/data/run.sh", "data/empty": "inputs/data/empty",
	} {
		want, _ := os.ReadFile(filepath.Join(src, from))
		got, err := os.ReadFile(filepath.Join(dst, to))
		if err != nil || string(got) != string(want) {
			t.Errorf("%s: %d bytes, %v; want the %d bytes of %s", to, len(got), err, len(want), from)
		}
		ws, _ := os.Stat(filepath.Join(src, from))
		gs, _ := os.Stat(filepath.Join(dst, to))
		if gs != nil && gs.Mode().Perm() != ws.Mode().Perm() {
			t.Errorf("%s: mode %v, want %v", to, gs.Mode().Perm(), ws.Mode().Perm())
		}
	}
	for _, p := range []string{"unrelated.txt", "inputs/data/link"} {
		if _, err := os.Lstat(filepath.Join(dst, p)); err == nil {
			t.Errorf("%s was pulled", p)
		}
	}
	// Another department's repository does not have the set.
	if _, err := jobdata.Inspect(context.Background(), reg.URL, jobdata.RepositoryName("chemistry"), first.Digest, reg.Options()); err == nil {
		t.Error("chemistry's repository answers physics' set")
	}
}

// TestCollectRefuses: bad stage-in sources are refused before anything is
// sent, naming the path.
func TestCollectRefuses(t *testing.T) {
	src := t.TempDir()
	outside := t.TempDir()
	writeTree(t, src, map[string]string{"a.txt": "a", "b.txt": "b", "dir/c.txt": "c"})
	writeTree(t, outside, map[string]string{"secret": "s"})
	for name, target := range map[string]string{"out-link": filepath.Join(outside, "secret"), "in-link": "a.txt"} {
		if err := os.Symlink(target, filepath.Join(src, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := syscall.Mkfifo(filepath.Join(src, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		stages []jobdata.Stage
		want   string
	}{
		{"missing", []jobdata.Stage{{From: "nope.txt"}}, "nope.txt: no such file"},
		{"dotdot", []jobdata.Stage{{From: "../x"}}, "leaves the job directory"},
		{"absolute", []jobdata.Stage{{From: "/etc/passwd"}}, "absolute"},
		{"absolute target", []jobdata.Stage{{From: "a.txt", To: "/etc/passwd"}}, "absolute"},
		{"symlink out", []jobdata.Stage{{From: "out-link"}}, "out-link is a symlink"},
		{"symlink in", []jobdata.Stage{{From: "in-link"}}, "in-link is a symlink"},
		{"fifo", []jobdata.Stage{{From: "fifo"}}, "fifo is not a regular file"},
		{"two to one", []jobdata.Stage{{From: "a.txt", To: "x"}, {From: "b.txt", To: "x"}}, "would both be staged as x"},
		{"file over folder", []jobdata.Stage{{From: "a.txt", To: "d"}, {From: "dir", To: "d/sub"}}, "d is a file"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := jobdata.Collect(src, tc.stages, jobdata.CollectOptions{})
			if err == nil {
				c.Close()
				t.Fatalf("collected %v", c.Files)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to say %q", err, tc.want)
			}
		})
	}
	c, err := jobdata.Collect(src, []jobdata.Stage{{From: "a.txt"}, {From: "gone"}}, jobdata.CollectOptions{AllowMissing: true})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if len(c.Files) != 1 || len(c.Missing) != 1 || c.Missing[0] != "gone" {
		t.Errorf("files %v missing %v; want a.txt and gone missing", c.Files, c.Missing)
	}
}

// forge stores a hand-made file-set manifest whose layers are one real blob
// under the given titles, as a malicious client or registry could.
func forge(t *testing.T, reg *registrytest.Registry, titles []string, mode string, artifact string) string {
	t.Helper()
	src := t.TempDir()
	writeTree(t, src, map[string]string{"x": "pwned\n"})
	real := push(t, reg, src, []jobdata.Stage{{From: "x"}})
	set, err := jobdata.Inspect(context.Background(), reg.URL, jobdata.RepositoryName("physics"), real.Digest, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	h, _ := v1.NewHash(set.Files[0].Digest)
	cfg, _ := v1.NewHash("sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a") // "{}"
	m := v1.Manifest{SchemaVersion: 2, MediaType: types.OCIManifestSchema1, ArtifactType: artifact,
		Config: v1.Descriptor{MediaType: jobdata.ConfigMediaType, Size: 2, Digest: cfg}}
	for _, title := range titles {
		m.Layers = append(m.Layers, v1.Descriptor{MediaType: jobdata.FileMediaType, Size: 6, Digest: h,
			Annotations: map[string]string{imagestore.AnnotationTitle: title, jobdata.AnnotationMode: mode}})
	}
	raw, _ := json.Marshal(m)
	repo, err := imagestore.Repository(reg.URL, jobdata.RepositoryName("physics"))
	if err != nil {
		t.Fatal(err)
	}
	d := digest(raw)
	if err := imagestore.PutManifest(context.Background(), repo.Digest(d), raw, reg.Options()); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestForgedSetsWriteNothing: a file set naming paths outside the
// directory (or otherwise malformed) is refused before anything is written.
func TestForgedSetsWriteNothing(t *testing.T) {
	reg := registrytest.Start(t)
	victim := t.TempDir()
	cases := []struct {
		name     string
		titles   []string
		mode     string
		artifact string
		want     string
	}{
		{"dotdot", []string{"../" + filepath.Base(victim) + "/owned"}, "0644", jobdata.ArtifactType, "leaves the job directory"},
		{"absolute", []string{filepath.Join(victim, "owned")}, "0644", jobdata.ArtifactType, "absolute"},
		{"etc", []string{"/etc/passwd"}, "0644", jobdata.ArtifactType, "absolute"},
		{"twice", []string{"a", "a"}, "0644", jobdata.ArtifactType, "two files at a"},
		{"file and folder", []string{"a", "a/b"}, "0644", jobdata.ArtifactType, "a is a file"},
		{"setuid", []string{"a"}, "4755", jobdata.ArtifactType, "mode"},
		{"image, not files", []string{"a"}, "0644", imagestore.ArtifactType, "not a vhpc file set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := forge(t, reg, tc.titles, tc.mode, tc.artifact)
			dst := filepath.Join(t.TempDir(), "work")
			if err := os.Mkdir(dst, 0o755); err != nil {
				t.Fatal(err)
			}
			_, err := jobdata.Pull(context.Background(), reg.URL, jobdata.RepositoryName("physics"), d, dst, reg.Options())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("pull: %v; want an error saying %q", err, tc.want)
			}
			if left, _ := os.ReadDir(dst); len(left) != 0 {
				t.Errorf("work dir holds %v", left)
			}
			if left, _ := os.ReadDir(victim); len(left) != 0 {
				t.Errorf("outside dir holds %v", left)
			}
		})
	}
}

// TestCorruptBlobIsRefused: bytes in the registry that do not match their
// digest fail the pull with ErrDigestMismatch and leave no partial file.
func TestCorruptBlobIsRefused(t *testing.T) {
	regDir := t.TempDir()
	reg := registrytest.StartIn(t, regDir)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"big": strings.Repeat("y", 1<<20)})
	p := push(t, reg, src, []jobdata.Stage{{From: "big"}})
	set, err := jobdata.Inspect(context.Background(), reg.URL, jobdata.RepositoryName("physics"), p.Digest, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	hexd := strings.TrimPrefix(set.Files[0].Digest, "sha256:")
	data := filepath.Join(regDir, "storage", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatal(err)
	}
	b[100] ^= 1
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	_, err = jobdata.Pull(context.Background(), reg.URL, jobdata.RepositoryName("physics"), p.Digest, dst, reg.Options())
	if !errors.Is(err, imagestore.ErrDigestMismatch) {
		t.Fatalf("pull of a corrupt blob: %v; want ErrDigestMismatch", err)
	}
	if left, _ := os.ReadDir(dst); len(left) != 0 {
		t.Errorf("dst holds %v after a refused pull", left)
	}
}

// TestInterruptedUploadResumes: an upload cut halfway stores no set; the
// next push sends only the files the registry lacks.
func TestInterruptedUploadResumes(t *testing.T) {
	reg := registrytest.Start(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"1": strings.Repeat("1", 2<<20), "2": strings.Repeat("2", 2<<20), "3": strings.Repeat("3", 2<<20)})
	stages := []jobdata.Stage{{From: "1"}, {From: "2"}, {From: "3"}}
	c, err := jobdata.Collect(src, stages, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	total := c.Bytes()
	_, err = jobdata.Push(ctx, reg.URL, jobdata.RepositoryName("physics"), c, imagestore.Options{Token: reg.Tokens(), Progress: func(done, _ int64) {
		if done > total+(3<<20) { // hashed everything, uploaded the first file and half the second
			cancel()
		}
	}})
	c.Close()
	if err == nil {
		t.Fatal("cancelled push succeeded")
	}
	full := push(t, reg, src, stages)
	if full.SentBytes == 0 || full.SentBytes >= full.Bytes {
		t.Errorf("resumed push sent %d of %d bytes; want only what the first left out", full.SentBytes, full.Bytes)
	}
}

// TestFileChangedDuringUpload: a file that changes between hashing and
// upload fails the push, naming it, and stores no set.
func TestFileChangedDuringUpload(t *testing.T) {
	reg := registrytest.Start(t)
	src := t.TempDir()
	writeTree(t, src, map[string]string{"grows": strings.Repeat("g", 1<<20)})
	c, err := jobdata.Collect(src, []jobdata.Stage{{From: "grows"}}, jobdata.CollectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	changed := false
	_, err = jobdata.Push(context.Background(), reg.URL, jobdata.RepositoryName("physics"), c, imagestore.Options{Token: reg.Tokens(), Progress: func(done, total int64) {
		if done >= total/2 && !changed { // hashed, not yet uploaded
			changed = true
			writeTree(t, src, map[string]string{"grows": strings.Repeat("h", 1<<20)})
		}
	}})
	if err == nil || !strings.Contains(err.Error(), "grows changed while it was uploaded") {
		t.Fatalf("push of a changing file: %v", err)
	}
}

func TestRepositoryName(t *testing.T) {
	for dept, want := range map[string]string{
		"physics": "vhpc-data/physics", "render-farm": "vhpc-data/render-farm", "a.b_c": "vhpc-data/a.b_c",
	} {
		if got := jobdata.RepositoryName(dept); got != want {
			t.Errorf("%s: %s, want %s", dept, got, want)
		}
	}
	upper, lower := jobdata.RepositoryName("Physics"), jobdata.RepositoryName("physics")
	if upper == lower || !strings.HasPrefix(upper, "vhpc-data/d-") {
		t.Errorf("Physics -> %s, physics -> %s: want distinct valid names", upper, lower)
	}
	for _, tc := range []struct {
		dept string
		job  uint64
		want string
	}{
		{"physics", 7, "vhpc-data/physics/job-7"},
		{"render-farm", 18446744073709551615, "vhpc-data/render-farm/job-18446744073709551615"},
		{"Physics", 7, upper + "/job-7"},
	} {
		if got := jobdata.OutputRepositoryName(tc.dept, tc.job); got != tc.want {
			t.Errorf("outputs of %s job %d: %s, want %s", tc.dept, tc.job, got, tc.want)
		}
	}
}

// TestOnlyJobFileRepositories: a name that is not a repository of job
// files (a bare department, an image repository) is refused before any
// request, so a department is never mistaken for a repository.
func TestOnlyJobFileRepositories(t *testing.T) {
	for _, repo := range []string{"physics", "physics/sim", "vhpc-datax/physics"} {
		_, err := jobdata.Inspect(context.Background(), "http://127.0.0.1:1", repo, digest([]byte("x")), imagestore.Options{})
		if err == nil || !strings.Contains(err.Error(), "not a repository of job files") {
			t.Errorf("%s: %v; want it refused as not a repository of job files", repo, err)
		}
	}
}

func digest(b []byte) string {
	h, _, _ := v1.SHA256(strings.NewReader(string(b)))
	return h.String()
}

// TestPushOutputsLimitAndMissing: Store.PushOutputs uploads what exists up
// to the limit, names what was missing and what the limit left out, and
// the stored part can be fetched.
func TestPushOutputsLimitAndMissing(t *testing.T) {
	reg := registrytest.Start(t)
	work := t.TempDir()
	writeTree(t, work, map[string]string{"frames/0001.txt": "one", "frames/0002.txt": "two", "frames/0003.txt": "three"})
	store := jobdata.Store{Registry: reg.URL, Options: reg.Options()}
	stages := []jobdata.Stage{{From: "frames"}, {From: "summary.txt"}}
	out, err := store.PushOutputs(context.Background(), jobdata.OutputRepositoryName("studio", 9), work, stages, 6)
	if err == nil || !strings.Contains(err.Error(), "more than the 6 this task may store") || !strings.Contains(err.Error(), "left out 1 files from frames/0003.txt") {
		t.Fatalf("over the limit: %v", err)
	}
	if out == nil || out.Files != 2 || out.Bytes != 6 || len(out.Missing) != 1 || out.Missing[0] != "summary.txt" {
		t.Fatalf("outputs %+v", out)
	}
	got := t.TempDir()
	if err := store.FetchInputs(context.Background(), out.Repository, out.Digest, got); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{"frames/0001.txt": "one", "frames/0002.txt": "two"} {
		if b, err := os.ReadFile(filepath.Join(got, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q %v", p, b, err)
		}
	}
	none, err := store.PushOutputs(context.Background(), jobdata.OutputRepositoryName("studio", 9), work, []jobdata.Stage{{From: "nothing"}}, 0)
	if err != nil || none.Digest != "" || len(none.Missing) != 1 {
		t.Errorf("nothing produced: %+v %v; want no set and the source missing", none, err)
	}
}
