package main

// hpc image push/ls/inspect/rm: the image catalog commands. push stores an
// image directory in the registry (imagestore.Push) and records the tag in
// the master's catalog (ImageService.Put); ls, inspect and rm read and
// change the catalog; inspect also reads the image's config from the
// registry.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagespec"
	"vhpc/imagestore"
	"vhpc/scheduler/model"
	"vhpc/vmimages"
)

const catalogUsage = `usage:
  hpc image push DIR REF [--registry URL] [--public] [--built-from TEXT] [--addr ADDR]
  hpc image ls [--department D] [--json] [--addr ADDR]
  hpc image inspect REF [--registry URL] [--json] [--addr ADDR]
  hpc image rm REF [--addr ADDR]
REF is department/name[:tag] (tag default latest); public/... images are for every department.`

// isCatalogCommand reports whether `hpc image SUB` is one of this file's.
func isCatalogCommand(sub string) bool {
	switch sub {
	case "push", "ls", "inspect", "rm":
		return true
	}
	return false
}

// catalogFlags are the flags of the catalog commands (each uses some).
type catalogFlags struct {
	addr, registry, department, builtFrom string
	public, asJSON                        bool
}

// parseCatalogArgs parses flags placed anywhere among the arguments and
// returns the positional ones; want is how many positional arguments sub takes.
func parseCatalogArgs(sub string, args []string, want int, stderr io.Writer) (catalogFlags, []string, error) {
	var f catalogFlags
	fs := flag.NewFlagSet("hpc image "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("HPC_ADDR")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	fs.StringVar(&f.addr, "addr", def, "master address(es), comma-separated (env HPC_ADDR)")
	switch sub {
	case "push":
		fs.StringVar(&f.registry, "registry", "", "registry URL (default: the master's --registry)")
		fs.BoolVar(&f.public, "public", false, "let every department use the image")
		fs.StringVar(&f.builtFrom, "built-from", "", "what the image was built from (default: from its config.json)")
	case "inspect":
		fs.StringVar(&f.registry, "registry", "", "registry URL (default: the master's --registry)")
		fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	case "ls":
		fs.StringVar(&f.department, "department", "", "only this department's images")
		fs.BoolVar(&f.asJSON, "json", false, "print JSON")
	}
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return f, nil, fmt.Errorf("%w\n%s", err, catalogUsage)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != want {
		return f, nil, fmt.Errorf("hpc image %s takes %d argument(s), got %d\n%s", sub, want, len(pos), catalogUsage)
	}
	return f, pos, nil
}

// imageCatalog runs `hpc image push|ls|inspect|rm`.
func imageCatalog(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	want := map[string]int{"push": 2, "ls": 0, "inspect": 1, "rm": 1}[sub]
	f, pos, err := parseCatalogArgs(sub, args, want, stderr)
	if err != nil {
		return err
	}
	c, err := client.New(client.ParseAddrs(f.addr))
	if err != nil {
		return err
	}
	defer c.Close()
	c.FailWhenRefused = true
	switch sub {
	case "push":
		return imagePush(ctx, c, f, pos[0], pos[1], stdout, stderr)
	case "ls":
		return imageList(ctx, c, f, stdout)
	case "inspect":
		return imageInspect(ctx, c, f, pos[0], stdout)
	default:
		return imageRemove(ctx, c, pos[0], stdout)
	}
}

// call runs one ImageService call through the failover client.
func call[T any](ctx context.Context, c *client.Client, fn func(context.Context, api.ImageServiceClient) (T, error)) (T, error) {
	var out T
	err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		out, err = fn(ctx, api.NewImageServiceClient(conn))
		return err
	})
	return out, err
}

// registryURL is --registry, else the one the master was started with,
// and the token source for ref's repository (pull; push for the
// department's admins): the master's answer to DataStore. A master
// without a registry leaves --registry without a token (an open registry).
func registryURL(ctx context.Context, c *client.Client, flagValue, ref string) (string, imagestore.TokenSource, error) {
	dept, name, _, _ := model.SplitImageRef(ref) // the ACL table asks which department's store
	info, tokens, err := client.DataStore(ctx, c, &api.DataStoreRequest{Department: dept, ImageRepository: dept + "/" + name})
	switch {
	case flagValue != "" && (status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.PermissionDenied):
		return flagValue, nil, nil // no token: an open registry still answers
	case status.Code(err) == codes.FailedPrecondition:
		return "", nil, errors.New("the master knows no registry: pass --registry URL (e.g. http://127.0.0.1:5000), or start hpcd with --registry")
	case err != nil:
		return "", nil, err
	case flagValue != "":
		return flagValue, tokens, nil
	}
	return info.GetRegistry(), tokens, nil
}

// normalRef checks REF and fills in the default tag.
func normalRef(ref string) (string, error) {
	dept, name, tag, ok := model.SplitImageRef(ref)
	if !ok {
		return "", fmt.Errorf("image %q: want department/name[:tag], e.g. chemistry/lammps:2024.08 or public/tiny", ref)
	}
	return model.ImageRef(dept, name, tag), nil
}

func newToken() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func imagePush(ctx context.Context, c *client.Client, f catalogFlags, dir, ref string, stdout, stderr io.Writer) error {
	ref, err := normalRef(ref)
	if err != nil {
		return err
	}
	var packages []string // told to the catalog, which checks MPI jobs against them
	var cfg vmimages.DebianConfig
	if b, err := os.ReadFile(filepath.Join(dir, imagestore.ConfigFile)); err == nil && json.Unmarshal(b, &cfg) == nil {
		if f.builtFrom == "" {
			f.builtFrom = builtFrom(cfg)
		}
		for _, p := range cfg.Packages {
			packages = append(packages, p.Name)
		}
	}
	reg, tokens, err := registryURL(ctx, c, f.registry, ref)
	if err != nil {
		return err
	}
	res, err := imagestore.Push(ctx, reg, ref, dir, imagestore.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil)), Token: tokens})
	if err != nil {
		return err
	}
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	token := newToken()
	rec, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ImageRecord, error) {
		return is.Put(ctx, &api.PutImageRequest{Ref: ref, Digest: res.Digest, SizeBytes: res.Size, Public: f.public,
			BuiltFrom: f.builtFrom, User: who, ClientToken: token, Packages: packages})
	})
	if err != nil {
		return fmt.Errorf("pushed %s to %s as %s, but the catalog refused it: %w", ref, reg, res.Digest, err)
	}
	fmt.Fprintf(stdout, "pushed %s %s (%s)\n", rec.GetRef(), rec.GetDigest(), humanBytes(rec.GetSizeBytes()))
	if p := rec.GetPreviousDigest(); p != "" && p != rec.GetDigest() {
		fmt.Fprintf(stdout, "the tag moved from %s; queued jobs keep the digest they were submitted with\n", p)
	}
	return nil
}

func builtFrom(cfg vmimages.DebianConfig) string {
	var parts []string
	if cfg.Ref != "" {
		parts = append(parts, "spec "+cfg.Ref)
	}
	if h := cfg.Provenance.SpecHash; h != "" {
		parts = append(parts, "hash "+h)
	}
	if cfg.Base != "" {
		parts = append(parts, "on "+cfg.Base)
	}
	return strings.Join(parts, ", ")
}

func imageList(ctx context.Context, c *client.Client, f catalogFlags, stdout io.Writer) error {
	ls, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ListImagesResponse, error) {
		return is.List(ctx, &api.ListImagesRequest{Department: f.department, Kind: "image"})
	})
	if err != nil {
		return err
	}
	if f.asJSON {
		type row struct {
			Ref        string    `json:"ref"`
			Digest     string    `json:"digest"`
			SizeBytes  int64     `json:"sizeBytes"`
			Department string    `json:"department"`
			Public     bool      `json:"public"`
			Created    time.Time `json:"created"`
			BuiltFrom  string    `json:"builtFrom,omitempty"`
		}
		rows := []row{}
		for _, im := range ls.GetImages() {
			rows = append(rows, row{im.GetRef(), im.GetDigest(), im.GetSizeBytes(), im.GetDepartment(), im.GetPublic(), im.GetCreated().AsTime().UTC(), im.GetBuiltFrom()})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(ls.GetImages()) == 0 {
		fmt.Fprintln(stdout, "no images in the catalog; add one with hpc image push DIR department/name:tag")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME:TAG\tDIGEST\tSIZE\tDEPARTMENT\tPUBLIC\tCREATED\tBUILT FROM")
	for _, im := range ls.GetImages() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\t%s\n", im.GetRef(), shortDigest(im.GetDigest()), humanBytes(im.GetSizeBytes()),
			im.GetDepartment(), im.GetPublic(), im.GetCreated().AsTime().UTC().Format(time.DateTime), im.GetBuiltFrom())
	}
	return tw.Flush()
}

func shortDigest(d string) string {
	if h, ok := strings.CutPrefix(d, "sha256:"); ok && len(h) > 12 {
		return "sha256:" + h[:12]
	}
	return d
}

func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n), -1
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}

func imageInspect(ctx context.Context, c *client.Client, f catalogFlags, ref string, stdout io.Writer) error {
	ref, err := normalRef(ref)
	if err != nil {
		return err
	}
	rec, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ImageRecord, error) {
		return is.Get(ctx, &api.GetImageRequest{Ref: ref})
	})
	if err != nil {
		return err
	}
	reg, tokens, err := registryURL(ctx, c, f.registry, ref)
	if err != nil {
		return err
	}
	repo, _, _ := imagestore.SplitRef(ref)
	im, err := imagestore.Inspect(ctx, reg, repo+"@"+rec.GetDigest(), imagestore.Options{Token: tokens})
	if err != nil {
		return err
	}
	if f.asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"ref": rec.GetRef(), "digest": rec.GetDigest(), "department": rec.GetDepartment(),
			"public": rec.GetPublic(), "created": rec.GetCreated().AsTime().UTC(), "builtFrom": rec.GetBuiltFrom(),
			"manifest": im.Manifest, "config": json.RawMessage(im.Config)})
	}
	var cfg vmimages.DebianConfig
	if err := json.Unmarshal(im.Config, &cfg); err != nil {
		return fmt.Errorf("image %s: config: %w", ref, err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("Image", rec.GetRef())
	row("Digest", rec.GetDigest())
	row("Department", fmt.Sprintf("%s (public: %v)", rec.GetDepartment(), rec.GetPublic()))
	row("Created", rec.GetCreated().AsTime().UTC().Format(time.RFC3339))
	row("Built from", rec.GetBuiltFrom())
	row("Base", cfg.Base)
	row("Kernel", cfg.KernelVersion)
	row("Cmdline", cfg.Cmdline)
	if cfg.Template != (imagespec.Template{}) {
		b, _ := json.Marshal(cfg.Template)
		row("Template", string(b))
	}
	if cfg.DiskSizeBytes > 0 {
		row("Disk", humanBytes(cfg.DiskSizeBytes))
	}
	row("Builder", cfg.Provenance.Builder)
	row("Mirror", cfg.Provenance.Mirror)
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "\nLayers:")
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", "FILE", "MEDIA TYPE", "SIZE", "DIGEST")
	fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", imagestore.ConfigFile, im.Manifest.Config.MediaType, humanBytes(im.Manifest.Config.Size), shortDigest(im.Manifest.Config.Digest.String()))
	for _, l := range im.Manifest.Layers {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", l.Annotations[imagestore.AnnotationTitle], l.MediaType, humanBytes(l.Size), shortDigest(l.Digest.String()))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nPackages (%d):\n", len(cfg.Packages))
	tw = tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	for _, p := range cfg.Packages {
		fmt.Fprintf(tw, "  %s\t%s\n", p.Name, p.Version)
	}
	return tw.Flush()
}

func imageRemove(ctx context.Context, c *client.Client, ref string, stdout io.Writer) error {
	ref, err := normalRef(ref)
	if err != nil {
		return err
	}
	token := newToken()
	rec, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ImageRecord, error) {
		return is.Remove(ctx, &api.RemoveImageRequest{Ref: ref, ClientToken: token})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "removed %s (%s) from the catalog; the registry keeps its blobs until its garbage collection\n", ref, rec.GetDigest())
	return nil
}
