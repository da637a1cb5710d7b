package imagestore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"vhpc/imagestore"
	"vhpc/imagestore/registrytest"
)

// writeImage writes an image directory: a compressible kernel, a random
// initrd and a random root disk of diskBytes.
func writeImage(t testing.TB, diskBytes int, seed string) string {
	t.Helper()
	dir := t.TempDir()
	files := map[string][]byte{
		"config.json": []byte(`{"template":{"machine":"q35"},"packages":[{"name":"python3","version":"3.11.2-1"}],"seed":"` + seed + `"}`),
		"vmlinux":     bytes.Repeat([]byte("kernel text "+seed+" "), 40000),
		"initrd.img":  randBytes(t, 64<<10),
		"root.qcow2":  randBytes(t, diskBytes),
	}
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func randBytes(t testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func sameDir(t *testing.T, want, got string) {
	t.Helper()
	des, err := os.ReadDir(want)
	if err != nil {
		t.Fatal(err)
	}
	gdes, err := os.ReadDir(got)
	if err != nil {
		t.Fatal(err)
	}
	if len(des) != len(gdes) {
		t.Fatalf("%s has %d files, %s has %d", want, len(des), got, len(gdes))
	}
	for _, de := range des {
		a, _ := os.ReadFile(filepath.Join(want, de.Name()))
		b, err := os.ReadFile(filepath.Join(got, de.Name()))
		if err != nil || !bytes.Equal(a, b) {
			t.Fatalf("%s differs after the round trip (err %v)", de.Name(), err)
		}
	}
}

func TestPushPullRoundTrip(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	src := writeImage(t, 3<<20, "a")
	res, err := imagestore.Push(ctx, reg.URL, "chemistry/lammps:2024.08", src, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(res.Digest, "sha256:") {
		t.Fatalf("digest %q", res.Digest)
	}
	again, err := imagestore.Push(ctx, reg.URL, "chemistry/lammps:again", src, reg.Options())
	if err != nil || again.Digest != res.Digest {
		t.Fatalf("second push of the same directory: %v, digest %s, want %s", err, again.Digest, res.Digest)
	}
	types := map[string]string{}
	for _, l := range res.Manifest.Layers {
		types[l.Annotations[imagestore.AnnotationTitle]] = string(l.MediaType)
	}
	wantTypes := map[string]string{
		"vmlinux":    imagestore.KernelMediaType + imagestore.GzipSuffix, // text: gzip helps
		"initrd.img": imagestore.InitrdMediaType,                         // random: it does not
		"root.qcow2": imagestore.DiskMediaType,
	}
	for n, mt := range wantTypes {
		if types[n] != mt {
			t.Errorf("layer %s: media type %q, want %q", n, types[n], mt)
		}
	}

	var last, total int64
	monotone := true
	dst := filepath.Join(t.TempDir(), "img")
	im, err := imagestore.Pull(ctx, reg.URL, "chemistry/lammps@"+res.Digest, dst, imagestore.Options{Token: reg.Tokens(), Progress: func(done, tot int64) {
		if done < last {
			monotone = false
		}
		last, total = done, tot
	}})
	if err != nil {
		t.Fatal(err)
	}
	sameDir(t, src, dst)
	if fi, err := os.Stat(dst); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("pulled directory mode %v (%v), want 0755: QEMU's user reads the image in place", fi.Mode(), err)
	}
	if !monotone || last != total || total != res.Size {
		t.Errorf("progress: monotone %v, last %d of %d, want %d", monotone, last, total, res.Size)
	}
	if im.Digest != res.Digest || im.Dir != dst {
		t.Errorf("pulled %s into %s", im.Digest, im.Dir)
	}

	insp, err := imagestore.Inspect(ctx, reg.URL, "chemistry/lammps:2024.08", reg.Options())
	if err != nil || insp.Digest != res.Digest || !bytes.Contains(insp.Config, []byte("python3")) {
		t.Fatalf("inspect: %v %+v", err, insp)
	}
}

func TestPushRefusesBadDirectories(t *testing.T) {
	reg := registrytest.Start(t)
	cases := []struct {
		name   string
		change func(dir string)
		ref    string
		want   string
	}{
		{"no config", func(d string) { os.Remove(filepath.Join(d, "config.json")) }, "", "no config.json"},
		{"config not JSON", func(d string) { os.WriteFile(filepath.Join(d, "config.json"), []byte("nope"), 0o644) }, "", "want a JSON object"},
		{"unknown file", func(d string) { os.WriteFile(filepath.Join(d, "notes.txt"), nil, 0o644) }, "", `"notes.txt" is not a file of an image directory`},
		{"two kernels", func(d string) { os.WriteFile(filepath.Join(d, "kernel"), []byte("k"), 0o644) }, "", "has 2 kernels"},
		{"no kernel", func(d string) { os.Remove(filepath.Join(d, "vmlinux")) }, "", "has 0 kernels"},
		{"subdirectory", func(d string) { os.Mkdir(filepath.Join(d, "boot"), 0o755) }, "", "boot is not a regular file"},
		{"digest ref", func(string) {}, "a/b@sha256:" + strings.Repeat("0", 64), "want a tag"},
		{"upper case repo", func(string) {}, "Chemistry/x:1", "repository"},
		{"bad registry", func(string) {}, "", "want a URL"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeImage(t, 1024, "x")
			tc.change(dir)
			ref, url := tc.ref, reg.URL
			if ref == "" {
				ref = "physics/bad:1"
			}
			if tc.name == "bad registry" {
				url = "localhost:5000"
			}
			_, err := imagestore.Push(context.Background(), url, ref, dir, reg.Options())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if _, err := imagestore.Inspect(context.Background(), reg.URL, "physics/bad:1", reg.Options()); err == nil {
				t.Fatal("a refused push stored a manifest")
			}
		})
	}
}

// pushedImage starts a registry in a temp dir (stopped when the test
// ends) and pushes a test image with a root disk of diskBytes to ref; it
// returns the registry, its storage dir, the push result and the root
// disk's layer digest.
func pushedImage(t *testing.T, ref string, diskBytes int, seed string) (*registrytest.Registry, string, imagestore.PushResult, string) {
	t.Helper()
	regDir := t.TempDir()
	reg := registrytest.StartIn(t, regDir)
	res, err := imagestore.Push(context.Background(), reg.URL, ref, writeImage(t, diskBytes, seed), reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	disk := ""
	for _, l := range res.Manifest.Layers {
		if l.Annotations[imagestore.AnnotationTitle] == "root.qcow2" {
			disk = l.Digest.String()
		}
	}
	if disk == "" {
		t.Fatal("the pushed manifest has no root.qcow2 layer")
	}
	return reg, regDir, res, disk
}

// blobPath is where docker-registry's filesystem driver keeps a blob.
func blobPath(regDir, digest string) string {
	hex := strings.TrimPrefix(digest, "sha256:")
	return filepath.Join(regDir, "storage", "docker", "registry", "v2", "blobs", "sha256", hex[:2], hex, "data")
}

func TestPullErrorsLeaveNothing(t *testing.T) {
	ctx := context.Background()
	reg, regDir, res, disk := pushedImage(t, "render/blender:4", 4<<20, "b")
	cases := []struct {
		name     string
		ref      string
		setup    func() (undo func())
		cancel   bool
		mismatch bool
		want     string
	}{
		{name: "by tag", ref: "render/blender:4", want: "want a reference by digest"},
		{name: "unknown digest", ref: "render/blender@sha256:" + strings.Repeat("1", 64), want: "MANIFEST_UNKNOWN"},
		{name: "cancelled midway", ref: "render/blender@" + res.Digest, cancel: true, want: "context canceled"},
		{name: "writes fail midway (a file size limit, as a full disk)", ref: "render/blender@" + res.Digest, want: "file too large", setup: func() func() {
			// RLIMIT_FSIZE is per process: the registry, started before,
			// keeps its own limit; writes here past 1 MiB fail with EFBIG.
			signal.Ignore(syscall.SIGXFSZ)
			var old syscall.Rlimit
			if err := syscall.Getrlimit(syscall.RLIMIT_FSIZE, &old); err != nil {
				t.Fatal(err)
			}
			lim := old
			lim.Cur = 1 << 20
			if err := syscall.Setrlimit(syscall.RLIMIT_FSIZE, &lim); err != nil {
				t.Fatal(err)
			}
			return func() {
				syscall.Setrlimit(syscall.RLIMIT_FSIZE, &old)
				signal.Reset(syscall.SIGXFSZ)
			}
		}},
		{name: "corrupt disk layer", ref: "render/blender@" + res.Digest, mismatch: true, want: "digest mismatch", setup: func() func() {
			p := blobPath(regDir, disk)
			orig, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			bad := bytes.Clone(orig)
			bad[len(bad)/2] ^= 0xff
			if err := os.WriteFile(p, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			return func() { os.WriteFile(p, orig, 0o644) }
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.setup != nil {
				defer tc.setup()()
			}
			parent := t.TempDir()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			o := reg.Options()
			if tc.cancel {
				o.Progress = func(done, total int64) {
					if done > 1<<20 {
						cancel()
					}
				}
			}
			_, err := imagestore.Pull(ctx, reg.URL, tc.ref, filepath.Join(parent, "img"), o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
			if errors.Is(err, imagestore.ErrDigestMismatch) != tc.mismatch {
				t.Fatalf("errors.Is(ErrDigestMismatch) = %v for %v", !tc.mismatch, err)
			}
			if des, _ := os.ReadDir(parent); len(des) != 0 {
				t.Fatalf("a failed pull left %v", des)
			}
		})
	}
}

func TestCacheEvictsLRUNeverPinned(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	const disk = 1 << 20
	refs := map[string]string{}
	var size int64
	for _, n := range []string{"a", "b", "c"} {
		res, err := imagestore.Push(ctx, reg.URL, "public/"+n+":1", writeImage(t, disk, n), reg.Options())
		if err != nil {
			t.Fatal(err)
		}
		refs[n] = "public/" + n + "@" + res.Digest
		im, err := imagestore.Inspect(ctx, reg.URL, refs[n], reg.Options())
		if err != nil {
			t.Fatal(err)
		}
		size = im.FileSize()
	}
	dir := t.TempDir()
	open := func() *imagestore.Cache {
		c, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: dir, LimitBytes: 2*size + size/2, Registry: reg.URL, Options: reg.Options()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := open()
	acquire := func(n string) *imagestore.Lease {
		t.Helper()
		l, err := c.Acquire(ctx, refs[n], nil)
		if err != nil {
			t.Fatalf("acquire %s: %v", n, err)
		}
		return l
	}
	cached := func() []string {
		var out []string
		for _, e := range c.Entries() {
			for n, r := range refs {
				if strings.HasSuffix(r, e.Digest) {
					out = append(out, n)
				}
			}
		}
		return out
	}

	la := acquire("a")
	if !la.Pulled {
		t.Fatal("first acquire did not pull")
	}
	lb := acquire("b")
	// a and b pinned: c does not fit, and nothing is evicted.
	if _, err := c.Acquire(ctx, refs["c"], nil); !errors.Is(err, imagestore.ErrCacheFull) {
		t.Fatalf("acquire c with a, b pinned: %v, want ErrCacheFull", err)
	}
	if got := strings.Join(cached(), ","); got != "a,b" {
		t.Fatalf("cached %s, want a,b", got)
	}
	lb.Release()
	la.Release()
	// a used again after b: b is least recently used and goes.
	again := acquire("a")
	if again.Pulled {
		t.Fatal("cached a pulled again")
	}
	again.Release()
	lc := acquire("c")
	lc.Release()
	if got := strings.Join(cached(), ","); got != "a,c" {
		t.Fatalf("cached %s, want a,c (b evicted as least recently used)", got)
	}
	if c.UsedBytes() > 2*size+size/2 {
		t.Fatalf("cache holds %d bytes over its limit", c.UsedBytes())
	}

	// Reopened, the cache keeps both images and their order.
	c = open()
	if got := strings.Join(cached(), ","); got != "a,c" {
		t.Fatalf("after reopen cached %s, want a,c", got)
	}
	l := acquire("c")
	if l.Pulled {
		t.Fatal("reopened cache pulled c again")
	}
	// A changed file is a mismatch that evicts the image.
	if err := os.WriteFile(filepath.Join(l.Image.Dir, "root.qcow2"), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := c.Verify(l.Image.Digest); !errors.Is(err, imagestore.ErrDigestMismatch) {
		t.Fatalf("verify after tampering: %v", err)
	}
	l.Release()
	if got := strings.Join(cached(), ","); got != "a" {
		t.Fatalf("after a mismatch cached %s, want a", got)
	}
}

func TestCacheOnePullForConcurrentAcquires(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	res, err := imagestore.Push(ctx, reg.URL, "public/tiny:1", writeImage(t, 2<<20, "t"), reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	c, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: t.TempDir(), LimitBytes: 1 << 30, Registry: reg.URL, Options: reg.Options()})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	pulled := 0
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := c.Acquire(ctx, "public/tiny@"+res.Digest, nil)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			if l.Pulled {
				pulled++
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	if pulled != 1 {
		t.Fatalf("%d pulls for one image", pulled)
	}
	if es := c.Entries(); len(es) != 1 || es[0].Pins != 4 {
		t.Fatalf("entries %+v, want one with 4 pins", es)
	}
}

func TestOpenCacheRefusesNoLimit(t *testing.T) {
	if _, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "size limit") {
		t.Fatalf("err %v", err)
	}
}

// BenchmarkPullVsCopy compares, side by side in one run, pulling a 256 MiB
// root disk (random bytes, as incompressible as a compressed qcow2) from a
// local docker-registry with reading the same blob from the registry into
// nothing (fetch) and with copying the same bytes from one local file to
// another (copy). Aim: pull at ≥ 0.5× the copy's MB/s.
//
//	GOFLAGS=-tags=libvirt_dlopen go test -run '^$' -bench PullVsCopy -benchtime 5x ./imagestore/
func BenchmarkPullVsCopy(b *testing.B) {
	const disk = 256 << 20
	reg := registrytest.Start(b)
	src := writeImage(b, disk, "bench")
	res, err := imagestore.Push(context.Background(), reg.URL, "public/bench:1", src, reg.Options())
	if err != nil {
		b.Fatal(err)
	}
	b.Run("pull", func(b *testing.B) {
		b.SetBytes(res.Size)
		for i := 0; b.Loop(); i++ {
			dst := filepath.Join(b.TempDir(), "img")
			if _, err := imagestore.Pull(context.Background(), reg.URL, "public/bench@"+res.Digest, dst, reg.Options()); err != nil {
				b.Fatal(err)
			}
			os.RemoveAll(dst)
		}
	})
	// fetch: the disk blob read from the registry and thrown away (through
	// go-containerregistry, which checks its digest): the registry's own
	// ceiling on this machine, for judging pull's overhead.
	b.Run("fetch", func(b *testing.B) {
		var disk imagestore.PushResult
		for _, l := range res.Manifest.Layers {
			if l.Annotations[imagestore.AnnotationTitle] == "root.qcow2" {
				disk.Digest, disk.Size = l.Digest.String(), l.Size
			}
		}
		b.SetBytes(disk.Size)
		for b.Loop() {
			if err := fetchDiscard(reg, "public/bench@"+disk.Digest); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("copy", func(b *testing.B) {
		b.SetBytes(res.Size)
		blob := filepath.Join(src, "root.qcow2")
		for b.Loop() {
			dst := filepath.Join(b.TempDir(), "root.qcow2")
			if err := copyFile(blob, dst); err != nil {
				b.Fatal(err)
			}
			os.Remove(dst)
		}
	})
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func fetchDiscard(reg *registrytest.Registry, ref string) error {
	u := strings.TrimPrefix(reg.URL, "http://")
	d, err := name.NewDigest(u+"/"+ref, name.Insecure)
	if err != nil {
		return err
	}
	l, err := remote.Layer(d, reg.Options().RemoteOptions(context.Background())...)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(io.Discard, rc)
	return err
}

func TestCacheMismatchedPullLeavesNothing(t *testing.T) {
	ctx := context.Background()
	reg, regDir, res, disk := pushedImage(t, "physics/mpi:1", 1<<20, "m")
	p := blobPath(regDir, disk)
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	c, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: dir, LimitBytes: 1 << 30, Registry: reg.URL, Options: reg.Options()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Acquire(ctx, "physics/mpi@"+res.Digest, nil); !errors.Is(err, imagestore.ErrDigestMismatch) {
		t.Fatalf("acquire of a corrupt image: %v, want ErrDigestMismatch", err)
	}
	if des, _ := os.ReadDir(dir); len(des) != 0 || len(c.Entries()) != 0 || c.UsedBytes() != 0 {
		t.Fatalf("a failed pull left %v, entries %v, %d bytes", des, c.Entries(), c.UsedBytes())
	}
}

type rawTaggable []byte

func (r rawTaggable) RawManifest() ([]byte, error) { return r, nil }
func (r rawTaggable) MediaType() (types.MediaType, error) {
	return types.OCIManifestSchema1, nil
}

// TestCacheKeepsManifestBytes: a manifest written by another tool (other
// whitespace, so other bytes than this package would write) is cached as
// served, so a reopened cache still finds its digest.
func TestCacheKeepsManifestBytes(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	res, err := imagestore.Push(ctx, reg.URL, "public/py:1", writeImage(t, 1<<20, "p"), reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	im, err := imagestore.Inspect(ctx, reg.URL, "public/py@"+res.Digest, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	var indented bytes.Buffer
	if err := json.Indent(&indented, im.RawManifest, "", "   "); err != nil {
		t.Fatal(err)
	}
	tag, err := name.NewTag(strings.TrimPrefix(reg.URL, "http://")+"/public/py:indented", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Put(tag, rawTaggable(indented.Bytes()), reg.Options().RemoteOptions(context.Background())...); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(indented.Bytes())
	ref := "public/py@sha256:" + hex.EncodeToString(sum[:])
	dir := t.TempDir()
	for i, wantPulled := range []bool{true, false} {
		c, err := imagestore.OpenCache(imagestore.CacheConfig{Dir: dir, LimitBytes: 1 << 30, Registry: reg.URL, Options: reg.Options()})
		if err != nil {
			t.Fatal(err)
		}
		l, err := c.Acquire(ctx, ref, nil)
		if err != nil || l.Pulled != wantPulled {
			t.Fatalf("open %d: acquire %v, pulled %v, want %v", i, err, l != nil && l.Pulled, wantPulled)
		}
		l.Release()
	}
}
