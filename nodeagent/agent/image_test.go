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
	"vhpc/scheduler/server"
	"vhpc/scheduler/server/servertest"
)

// TestJobImageIsPulledPinnedAndReleased: a job naming a catalog image runs
// with Task.ImageDir set to the image pulled by digest into the node's
// cache (through the registry the master names), pinned while it runs.
func TestJobImageIsPulledPinnedAndReleased(t *testing.T) {
	reg := registrytest.Start(t)
	m := servertest.Start(t, func(c *server.Config) {
		c.HeartbeatInterval, c.Lease = 200*time.Millisecond, 2*time.Second
		c.ImageRegistry = reg.URL
	})
	img := t.TempDir()
	for n, b := range map[string]string{"config.json": `{"ref":"public/python:1"}`, "kernel": "k", "initrd": "i", "root.qcow2": "q"} {
		if err := os.WriteFile(filepath.Join(img, n), []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	res, err := imagestore.Push(ctx, reg.URL, "public/python:1", img, imagestore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	images := api.NewImageServiceClient(clientConn(t, m))
	if _, err := images.Put(ctx, &api.PutImageRequest{Ref: "public/python:1", Digest: res.Digest, SizeBytes: res.Size}); err != nil {
		t.Fatal(err)
	}
	cl, err := client.New([]string{m.GRPCAddr()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	cache := &MasterImageCache{Dir: t.TempDir(), LimitBytes: 1 << 30, Client: cl}
	h := startAgentWith(t, m, newFakeRunner(t), func(c *Config) { c.Images = cache })

	id := h.submit(strings.Replace(oneCore, "name: t\n", "name: t\nimage: public/python:1\n", 1))
	alloc := h.started()
	h.runner.mu.Lock()
	dir := h.runner.imageDirs[alloc]
	h.runner.mu.Unlock()
	if dir == "" || filepath.Base(dir) != strings.TrimPrefix(res.Digest, "sha256:") {
		t.Fatalf("task image dir %q, want the cached %s", dir, res.Digest)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "root.qcow2")); err != nil || string(b) != "q" {
		t.Fatalf("cached root disk: %q %v", b, err)
	}
	if es := cache.cache.Entries(); len(es) != 1 || es[0].Pins != 1 {
		t.Fatalf("cache while the job runs: %+v, want one pinned image", es)
	}
	h.runner.release(alloc, 0)
	h.waitFor("the end", func() bool { return h.job(id).GetState() == "completed" })
	h.waitFor("the image unpinned", func() bool {
		es := cache.cache.Entries()
		return len(es) == 1 && es[0].Pins == 0
	})
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
