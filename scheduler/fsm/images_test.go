package fsm

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"vhpc/scheduler/model"
)

func testImage(dept, name, tag, hexDigit string) model.Image {
	return model.Image{Department: dept, Name: name, Tag: tag, Digest: "sha256:" + strings.Repeat(hexDigit, 64), SizeBytes: 100}
}

func TestImageCatalogEntries(t *testing.T) {
	t1 := t0.Add(time.Hour)
	cases := []struct {
		name string
		// run applies entries and returns the last result.
		run     func(h *harness) any
		wantErr error
		check   func(t *testing.T, h *harness, res any)
	}{
		{
			name: "put records with the entry's time",
			run: func(h *harness) any {
				return h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("chemistry", "lammps", "2024.08", "a"), Token: "p1"})
			},
			check: func(t *testing.T, h *harness, res any) {
				r := res.(ImageResult)
				im := h.f.Store().Snapshot().Image("chemistry/lammps:2024.08")
				if im == nil || !im.Created.Equal(t0) || im.Public || r.Previous != "" || r.Duplicate {
					t.Fatalf("record %+v, result %+v", im, r)
				}
			},
		},
		{
			name: "public department is public",
			run: func(h *harness) any {
				return h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("public", "tiny", "latest", "b")})
			},
			check: func(t *testing.T, h *harness, _ any) {
				if im := h.f.Store().Snapshot().Image("public/tiny:latest"); im == nil || !im.Public || !im.UsableBy("physics") {
					t.Fatalf("record %+v", im)
				}
			},
		},
		{
			name: "moving a tag keeps created and says the previous digest",
			run: func(h *harness) any {
				h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("chemistry", "lammps", "latest", "a")})
				return h.apply(EntryPutImage, &PutImage{Time: t1, Image: testImage("chemistry", "lammps", "latest", "c")})
			},
			check: func(t *testing.T, h *harness, res any) {
				r := res.(ImageResult)
				im := h.f.Store().Snapshot().Image("chemistry/lammps:latest")
				if r.Previous != "sha256:"+strings.Repeat("a", 64) || !im.Created.Equal(t0) || !im.Updated.Equal(t1) || im.Digest != "sha256:"+strings.Repeat("c", 64) {
					t.Fatalf("record %+v, result %+v", im, r)
				}
			},
		},
		{
			name: "a repeated token changes nothing",
			run: func(h *harness) any {
				h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("chemistry", "lammps", "latest", "a"), Token: "tok"})
				return h.apply(EntryPutImage, &PutImage{Time: t1, Image: testImage("chemistry", "lammps", "latest", "c"), Token: "tok"})
			},
			check: func(t *testing.T, h *harness, res any) {
				r := res.(ImageResult)
				if !r.Duplicate || r.Image.Digest != "sha256:"+strings.Repeat("a", 64) {
					t.Fatalf("result %+v", r)
				}
			},
		},
		{
			name: "a bad record is refused",
			run: func(h *harness) any {
				return h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("Chemistry", "lammps", "latest", "a")})
			},
			wantErr: ErrConflict,
			check: func(t *testing.T, h *harness, _ any) {
				if n := countImages(h); n != 0 {
					t.Fatalf("%d records after a refused put", n)
				}
			},
		},
		{
			name: "removing an unknown tag",
			run: func(h *harness) any {
				return h.apply(EntryRemoveImage, &RemoveImage{Time: t0, Ref: "chemistry/nope:1"})
			},
			wantErr: ErrNotFound,
		},
		{
			name: "remove, then a repeated token is a duplicate",
			run: func(h *harness) any {
				h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("render", "blender", "4", "d")})
				h.apply(EntryRemoveImage, &RemoveImage{Time: t1, Ref: "render/blender:4", Token: "rm"})
				return h.apply(EntryRemoveImage, &RemoveImage{Time: t1, Ref: "render/blender:4", Token: "rm"})
			},
			check: func(t *testing.T, h *harness, res any) {
				if r := res.(ImageResult); !r.Duplicate || countImages(h) != 0 {
					t.Fatalf("result %+v, %d records", r, countImages(h))
				}
			},
		},
		{
			name: "remove is refused while a queued job uses the digest, allowed after it ends",
			run: func(h *harness) any {
				h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("render", "blender", "4", "d")})
				j := testJob("j1", 1)
				j.Image, j.ImageRef, j.ImageDigest = "render/blender:4", "render/blender:4", "sha256:"+strings.Repeat("d", 64)
				h.submit(j)
				res := h.apply(EntryRemoveImage, &RemoveImage{Time: t1, Ref: "render/blender:4", Token: "rm"})
				err, _ := res.(error)
				if !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "used by queued or running job 1") {
					h.t.Fatalf("remove while used: %v", res)
				}
				h.apply(EntryCancelJob, &CancelJob{Time: t1, ID: 1, Reason: "done"})
				return h.apply(EntryRemoveImage, &RemoveImage{Time: t1, Ref: "render/blender:4", Token: "rm"})
			},
			check: func(t *testing.T, h *harness, res any) {
				if r := res.(ImageResult); r.Duplicate || r.Image == nil || countImages(h) != 0 {
					t.Fatalf("result %+v, %d records", r, countImages(h))
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			res := tc.run(h)
			err, _ := res.(error)
			if tc.wantErr != nil || err != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("result %v, want %v", res, tc.wantErr)
				}
			}
			if tc.check != nil {
				tc.check(t, h, res)
			}
		})
	}
}

func countImages(h *harness) int {
	n := 0
	for range h.f.Store().Snapshot().Images() {
		n++
	}
	return n
}

func TestImageCatalogSnapshotReplayAndOldDumps(t *testing.T) {
	h := newHarness(t)
	h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("public", "tiny", "latest", "b"), Token: "a"})
	h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("chemistry", "lammps", "1", "a"), Token: "b"})
	h.apply(EntryPutImage, &PutImage{Time: t0, Image: testImage("chemistry", "lammps", "2", "c")})
	h.apply(EntryRemoveImage, &RemoveImage{Time: t0, Ref: "chemistry/lammps:2", Token: "c"})

	restored := h.replayAndRestore()
	if r := restored.apply(EntryRemoveImage, &RemoveImage{Time: t0, Ref: "chemistry/lammps:2", Token: "c"}).(ImageResult); !r.Duplicate {
		t.Fatalf("token of a remove forgotten by restore: %+v", r)
	}

	// A version 1 dump (before the catalog) still restores; version 9 does not.
	old := newHarness(t)
	if err := old.f.Restore(io.NopCloser(strings.NewReader(`{"version":1,"index":7,"nextJob":3,"jobs":[],"nodes":[],"allocs":[]}`))); err != nil {
		t.Fatalf("version 1 dump: %v", err)
	}
	if s := old.f.Store().Snapshot(); s.NextJobID() != 3 || s.Index() != 7 {
		t.Fatalf("version 1 dump restored as next job %d, index %d", s.NextJobID(), s.Index())
	}
	if err := old.f.Restore(io.NopCloser(strings.NewReader(`{"version":9}`))); err == nil || !strings.Contains(err.Error(), "version 9") {
		t.Fatalf("version 9 dump: %v", err)
	}
}
