package regtoken_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/imagestore"
	"vhpc/imagestore/registrytest"
	"vhpc/jobdata"
	"vhpc/security/regtoken"
)

// writeDir writes files (name -> content) into a new directory.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for n, body := range files {
		if err := os.WriteFile(filepath.Join(dir, n), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// pushSet stores the files of dir as a file set in repository repo with
// opts.
func pushSet(ctx context.Context, reg, repo, dir string, opts imagestore.Options) (string, error) {
	des, err := os.ReadDir(dir)
	if err != nil {
		return "", err
	}
	var stages []jobdata.Stage
	for _, de := range des {
		stages = append(stages, jobdata.Stage{From: de.Name()})
	}
	c, err := jobdata.Collect(dir, stages, jobdata.CollectOptions{})
	if err != nil {
		return "", err
	}
	defer c.Close()
	p, err := jobdata.Push(ctx, reg, repo, c, opts)
	return p.Digest, err
}

// TestTokensAgainstTheRegistry runs what a job's agent does (pull its
// image and inputs, push and read back its outputs) and what it must not
// (write the department's shared file sets, read or write another job's
// outputs, another department, pushing its image) against a real
// docker-registry with token auth, for a job's token (AllocationAccess,
// the scopes the master signs) and for tokens the registry must refuse.
func TestTokensAgainstTheRegistry(t *testing.T) {
	reg := registrytest.Start(t)
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	admin := reg.Options()
	admin.Logger = quiet
	image := writeDir(t, map[string]string{"config.json": `{"seed":"physics"}`, "vmlinux": "kernel", "initrd.img": "initrd"})
	physImg, err := imagestore.Push(ctx, reg.URL, "physics/sim:1", image, admin)
	if err != nil {
		t.Fatal(err)
	}
	chemImg, err := imagestore.Push(ctx, reg.URL, "chemistry/md:1", image, admin)
	if err != nil {
		t.Fatal(err)
	}
	physics, chemistry := jobdata.RepositoryName("physics"), jobdata.RepositoryName("chemistry")
	ownOut, otherOut := jobdata.OutputRepositoryName("physics", 7), jobdata.OutputRepositoryName("physics", 8)
	physIn, err := pushSet(ctx, reg.URL, physics, writeDir(t, map[string]string{"in.txt": "physics input"}), admin)
	if err != nil {
		t.Fatal(err)
	}
	chemIn, err := pushSet(ctx, reg.URL, chemistry, writeDir(t, map[string]string{"in.txt": "chemistry input"}), admin)
	if err != nil {
		t.Fatal(err)
	}
	otherSet, err := pushSet(ctx, reg.URL, otherOut, writeDir(t, map[string]string{"out.txt": "job 8's result"}), admin)
	if err != nil {
		t.Fatal(err)
	}
	var ownSet string // what "push its outputs" stored last

	// The scopes the master gives the allocation of physics job 7.
	job := regtoken.AllocationAccess("physics/sim", physics, ownOut)
	issue := func(iss *regtoken.Issuer) string {
		tok, err := iss.Issue("agent/n1 alloc 7.0.1", job...)
		if err != nil {
			t.Fatal(err)
		}
		return tok.Raw
	}
	foreign, err := regtoken.Generate(regtoken.Config{})
	if err != nil {
		t.Fatal(err)
	}
	// Expired by more than the registry's 60 s leeway.
	past := reg.IssuerWith(t, regtoken.Config{TTL: time.Minute, Now: func() time.Time { return time.Now().Add(-3 * time.Minute) }})
	otherService := reg.IssuerWith(t, regtoken.Config{Service: "another-registry"})

	ops := []struct {
		name string
		do   func(imagestore.Options) error
	}{
		{"pull its image", func(o imagestore.Options) error {
			_, err := imagestore.Pull(ctx, reg.URL, "physics/sim@"+physImg.Digest, filepath.Join(t.TempDir(), "img"), o)
			return err
		}},
		{"pull its inputs", func(o imagestore.Options) error {
			_, err := jobdata.Pull(ctx, reg.URL, physics, physIn, t.TempDir(), o)
			return err
		}},
		{"push its outputs", func(o imagestore.Options) error {
			set, err := pushSet(ctx, reg.URL, ownOut, writeDir(t, map[string]string{"out.txt": "result " + time.Now().String()}), o)
			if err == nil {
				ownSet = set
			}
			return err
		}},
		{"read its outputs back", func(o imagestore.Options) error {
			if ownSet == "" {
				t.Skip("no outputs were pushed")
			}
			_, err := jobdata.Pull(ctx, reg.URL, ownOut, ownSet, t.TempDir(), o)
			return err
		}},
		{"push into the department's shared file sets", func(o imagestore.Options) error {
			_, err := pushSet(ctx, reg.URL, physics, writeDir(t, map[string]string{"in.txt": "evil"}), o)
			return err
		}},
		{"pull another job's outputs", func(o imagestore.Options) error {
			_, err := jobdata.Pull(ctx, reg.URL, otherOut, otherSet, t.TempDir(), o)
			return err
		}},
		{"push into another job's outputs", func(o imagestore.Options) error {
			_, err := pushSet(ctx, reg.URL, otherOut, writeDir(t, map[string]string{"out.txt": "evil"}), o)
			return err
		}},
		{"pull another department's files", func(o imagestore.Options) error {
			_, err := jobdata.Pull(ctx, reg.URL, chemistry, chemIn, t.TempDir(), o)
			return err
		}},
		{"pull another department's image", func(o imagestore.Options) error {
			_, err := imagestore.Pull(ctx, reg.URL, "chemistry/md@"+chemImg.Digest, filepath.Join(t.TempDir(), "img"), o)
			return err
		}},
		{"push to its image repository", func(o imagestore.Options) error {
			_, err := imagestore.Push(ctx, reg.URL, "physics/sim:evil", writeDir(t, map[string]string{"config.json": `{}`, "vmlinux": "evil"}), o)
			return err
		}},
		{"push another department's files", func(o imagestore.Options) error {
			_, err := pushSet(ctx, reg.URL, chemistry, writeDir(t, map[string]string{"out.txt": "evil"}), o)
			return err
		}},
		{"delete its inputs", func(o imagestore.Options) error {
			return jobdata.Delete(ctx, reg.URL, physics, physIn, o)
		}},
	}
	tokens := []struct {
		name    string
		opts    imagestore.Options
		allowed int // the first allowed ops succeed, the rest are refused
	}{
		{"job token", imagestore.Options{Logger: quiet, Token: imagestore.StaticToken(issue(reg.Issuer))}, 4},
		{"job token in the context", imagestore.Options{Logger: quiet}, 4},
		{"expired", imagestore.Options{Logger: quiet, Token: imagestore.StaticToken(issue(past))}, 0},
		{"foreign key", imagestore.Options{Logger: quiet, Token: imagestore.StaticToken(issue(foreign))}, 0},
		{"another service", imagestore.Options{Logger: quiet, Token: imagestore.StaticToken(issue(otherService))}, 0},
		{"anonymous", imagestore.Options{Logger: quiet}, 0},
	}
	for _, tk := range tokens {
		for i, op := range ops {
			t.Run(tk.name+"/"+op.name, func(t *testing.T) {
				octx := ctx
				if tk.name == "job token in the context" {
					ctx = imagestore.WithTokenSource(ctx, imagestore.StaticToken(issue(reg.Issuer)))
				}
				defer func() { ctx = octx }()
				err := op.do(tk.opts)
				switch {
				case i < tk.allowed && err != nil:
					t.Fatalf("refused: %v", err)
				case i >= tk.allowed && err == nil:
					t.Fatal("allowed")
				case i >= tk.allowed && !refused(err):
					t.Fatalf("failed, but not as refused: %v", err)
				}
			})
		}
	}
	// The inputs are still there: the refused delete deleted nothing.
	if _, err := jobdata.Inspect(ctx, reg.URL, physics, physIn, admin); err != nil {
		t.Fatal(err)
	}
}

// refused reports whether err is the registry's refusal: 401 for a token
// it does not accept or that does not cover the request, the realm's 404
// for a client that came without one.
func refused(err error) bool {
	s := err.Error()
	return strings.Contains(s, "401 Unauthorized") || strings.Contains(s, "UNAUTHORIZED") ||
		strings.Contains(s, "DENIED") || strings.Contains(s, imagestore.RealmPath)
}
