package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/imagestore/registrytest"
	"vhpc/scheduler/model"
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
)

// pushTestImage pushes a small image directory (one file per layer, each
// a few bytes) as public/python:1 and records it in m's catalog; it
// returns the manifest digest and the root disk's blob digest.
func pushTestImage(t *testing.T, m *server.Server, reg *registrytest.Registry) (digest, rootBlob string) {
	t.Helper()
	img := t.TempDir()
	for n, b := range map[string]string{"config.json": `{"ref":"public/python:1"}`, "kernel": "k", "initrd": "i", "root.qcow2": "q"} {
		if err := os.WriteFile(filepath.Join(img, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	res, err := imagestore.Push(ctx, reg.URL, "public/python:1", img, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	images := api.NewImageServiceClient(clientConn(t, m))
	if _, err := images.Put(ctx, &api.PutImageRequest{Ref: "public/python:1", Digest: res.Digest, SizeBytes: res.Size}); err != nil {
		t.Fatal(err)
	}
	im, err := imagestore.Inspect(ctx, reg.URL, "public/python@"+res.Digest, reg.Options())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range im.Manifest.Layers {
		if l.Annotations[imagestore.AnnotationTitle] == "root.qcow2" {
			rootBlob = l.Digest.String()
		}
	}
	return res.Digest, rootBlob
}

// masterWithRegistry starts a master whose catalog names reg and that
// signs the tokens reg takes.
func masterWithRegistry(t *testing.T, reg *registrytest.Registry) *server.Server {
	return servertest.Start(t, func(c *server.Config) {
		c.HeartbeatInterval, c.Lease = 200*time.Millisecond, 2*time.Second
		c.ImageRegistry, c.RegistryTokens = reg.URL, reg.Issuer
	})
}

// imageAgent starts an agent whose image cache asks m for the registry.
func imageAgent(t *testing.T, m *server.Server, limit int64, mod func(*Config)) (*harness, *MasterImageCache) {
	t.Helper()
	cl, err := client.New([]string{m.GRPCAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cache := &MasterImageCache{Dir: t.TempDir(), LimitBytes: limit, Client: cl}
	h := startAgentWith(t, m, newFakeRunner(t), func(c *Config) {
		c.Images = cache
		if mod != nil {
			mod(c)
		}
	})
	return h, cache
}

const pythonJob = "name: t\nimage: public/python:1\nresources:\n  cpusPerTask: 1\ncommand: [\"true\"]\n"

// TestJobImageIsPulledPinnedAndReleased: a job naming a catalog image runs
// with Task.ImageDir set to the image pulled by digest into the node's
// cache (through the registry the master names), pinned while it runs;
// its allocation says the node pulled it.
func TestJobImageIsPulledPinnedAndReleased(t *testing.T) {
	reg := registrytest.Start(t)
	m := masterWithRegistry(t, reg)
	digest, _ := pushTestImage(t, m, reg)
	h, cache := imageAgent(t, m, 1<<30, nil)

	id := h.submit(pythonJob)
	alloc := h.started()
	h.runner.mu.Lock()
	dir := h.runner.imageDirs[alloc]
	h.runner.mu.Unlock()
	if dir == "" || filepath.Base(dir) != strings.TrimPrefix(digest, "sha256:") {
		t.Fatalf("task image dir %q, want the cached %s", dir, digest)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "root.qcow2")); err != nil || string(b) != "q" {
		t.Fatalf("cached root disk: %q %v", b, err)
	}
	if es := cache.cache.Entries(); len(es) != 1 || es[0].Pins != 1 {
		t.Fatalf("cache while the job runs: %+v, want one pinned image", es)
	}
	h.waitFor("the allocation to say the image was pulled", func() bool {
		as := h.job(id).GetAllocations()
		return len(as) == 1 && as[0].GetImagePulled()
	})
	h.runner.release(alloc, 0)
	h.waitFor("the end", func() bool { return h.job(id).GetState() == "completed" })
	h.waitFor("the image unpinned", func() bool {
		es := cache.cache.Entries()
		return len(es) == 1 && es[0].Pins == 0
	})
	id2 := h.submit(strings.Replace(pythonJob, "name: t", "name: t2", 1))
	h.runner.release(h.started(), 0)
	h.waitFor("the second job's end", func() bool { return h.job(id2).GetState() == "completed" })
	if as := h.job(id2).GetAllocations(); len(as) != 1 || as[0].GetImagePulled() {
		t.Fatalf("second job's allocations %v: want one that found the image cached", as)
	}
}

// TestJobWaitsWhileTheRegistryIsDown: with the registry down the job
// waits in "starting" with the reason (it neither fails nor gives up),
// and runs once the registry is back.
func TestJobWaitsWhileTheRegistryIsDown(t *testing.T) {
	reg := registrytest.Start(t)
	m := masterWithRegistry(t, reg)
	pushTestImage(t, m, reg)
	reg.Close()
	h, _ := imageAgent(t, m, 1<<30, func(c *Config) { c.RegistryRetryMax = 200 * time.Millisecond })

	id := h.submit(pythonJob)
	h.waitFor("the job to wait for the registry", func() bool {
		as := h.job(id).GetAllocations()
		return len(as) == 1 && as[0].GetState() == "starting" && strings.Contains(as[0].GetReason(), "waiting for the image registry")
	})
	time.Sleep(time.Second) // several more tries
	if j := h.job(id); j.GetState() != "scheduled" && j.GetState() != "pending" || len(j.GetAllocations()) != 1 {
		t.Fatalf("job while the registry is down: %s, %d allocations (%s)", j.GetState(), len(j.GetAllocations()), j.GetReason())
	}
	reg.Restart(t)
	h.runner.release(h.started(), 0)
	h.waitFor("the end", func() bool { return h.job(id).GetState() == "completed" })
}

// TestCorruptBlobRequeuesWithoutBlame: a registry that serves a layer whose
// bytes do not match its digest makes the node requeue the job (a new
// attempt, no retry used, nothing kept in the cache) up to
// model.MaxNodeRequeues times; then the job fails, naming the mismatch.
func TestCorruptBlobRequeuesWithoutBlame(t *testing.T) {
	regDir := t.TempDir()
	reg := registrytest.StartIn(t, regDir)
	m := masterWithRegistry(t, reg)
	_, rootBlob := pushTestImage(t, m, reg)
	hexd := strings.TrimPrefix(rootBlob, "sha256:")
	data := filepath.Join(regDir, "storage", "docker", "registry", "v2", "blobs", "sha256", hexd[:2], hexd, "data")
	b, err := os.ReadFile(data)
	if err != nil {
		t.Fatalf("the registry's copy of the root disk blob: %v", err)
	}
	b[len(b)-1] ^= 0xff // same length, other bytes
	if err := os.WriteFile(data, b, 0o644); err != nil {
		t.Fatal(err)
	}
	h, cache := imageAgent(t, m, 1<<30, nil)

	id := h.submit(pythonJob)
	h.waitFor("the job to fail after its requeues", func() bool { return h.job(id).GetState() == "failed" })
	j := h.job(id)
	as := j.GetAllocations()
	if len(as) != model.MaxNodeRequeues+1 {
		t.Fatalf("%d allocations, want %d (requeued %d times, then failed): %v", len(as), model.MaxNodeRequeues+1, model.MaxNodeRequeues, as)
	}
	for _, a := range as[:model.MaxNodeRequeues] {
		if a.GetState() != "requeued" || !strings.Contains(a.GetReason(), "did not match") {
			t.Errorf("allocation %s: %s (%s), want requeued for the digest mismatch", a.GetId(), a.GetState(), a.GetReason())
		}
	}
	if j.GetRestarts() != 0 || !strings.Contains(j.GetReason(), "digest mismatch") {
		t.Errorf("job: %d restarts, reason %q; want no retry used and the mismatch named", j.GetRestarts(), j.GetReason())
	}
	if es := cache.cache.Entries(); len(es) != 0 {
		t.Errorf("cache keeps %v after bad pulls", es)
	}
	left, _ := os.ReadDir(cache.Dir)
	if len(left) != 0 {
		t.Errorf("cache dir keeps %v after bad pulls", left)
	}
}

// TestImageTooBigForTheCacheRequeues: an image that does not fit in the
// node's cache sends the job back to the queue, saying why.
func TestImageTooBigForTheCacheRequeues(t *testing.T) {
	reg := registrytest.Start(t)
	m := masterWithRegistry(t, reg)
	pushTestImage(t, m, reg)
	h, _ := imageAgent(t, m, 1, nil)
	id := h.submit(pythonJob)
	h.waitFor("the first requeue", func() bool {
		as := h.job(id).GetAllocations()
		return len(as) > 0 && as[0].GetState() == "requeued"
	})
	if r := h.job(id).GetAllocations()[0].GetReason(); !strings.Contains(r, "no room for the image on this node") {
		t.Fatalf("reason %q", r)
	}
}

// TestJobImageWithoutACacheFailsSaying: an agent without an image cache
// fails such a job with a reason that says so.
func TestJobImageWithoutACacheFailsSaying(t *testing.T) {
	m := startMaster(t)
	images := api.NewImageServiceClient(clientConn(t, m))
	if _, err := images.Put(context.Background(), &api.PutImageRequest{Ref: "public/python:1", Digest: "sha256:" + strings.Repeat("a", 64)}); err != nil {
		t.Fatal(err)
	}
	h := startAgent(t, m, newFakeRunner(t), 0)
	id := h.submit(strings.Replace(oneCore, "name: t\n", "name: t\nimage: public/python:1\n", 1))
	h.waitFor("the job to fail", func() bool { return h.job(id).GetState() == "failed" })
	if r := h.job(id).GetReason(); !strings.Contains(r, "this agent has no image cache") {
		t.Fatalf("reason %q", r)
	}
}
