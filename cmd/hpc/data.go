package main

// hpc data push/ls/rm: read-only datasets. push uploads a folder as a file
// set into the department's data repository of the cluster's store
// (jobdata.Push; only what the store lacks is sent) and records REF in the
// master's catalog as a dataset (ImageService.Put, kind dataset); jobs
// list it under datasets: and see it at /datasets/<name>.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/user"
	"text/tabwriter"
	"time"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/scheduler/model"
)

const dataUsage = `usage:
  hpc data push REF DIR [--public] [--addr ADDR]
  hpc data ls [--department D] [--json] [--addr ADDR]
  hpc data rm REF [--addr ADDR]
REF is department/name[:tag] (tag default latest); public/... datasets are for every department.
A job lists datasets: [REF, ...] and reads each at /datasets/<name>, read-only.`

// dataCommand runs `hpc data push|ls|rm`.
func dataCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", dataUsage)
	}
	sub, args := args[0], args[1:]
	want, ok := map[string]int{"push": 2, "ls": 0, "rm": 1}[sub]
	if !ok {
		return fmt.Errorf("unknown command \"data %s\"\n%s", sub, dataUsage)
	}
	fs := flag.NewFlagSet("hpc data "+sub, flag.ContinueOnError)
	fs.SetOutput(stderr)
	def := os.Getenv("HPC_ADDR")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	addr := fs.String("addr", def, "master address(es), comma-separated (env HPC_ADDR)")
	public := fs.Bool("public", false, "let every department use the dataset (push)")
	dept := fs.String("department", "", "only this department's datasets (ls)")
	asJSON := fs.Bool("json", false, "print JSON (ls)")
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return fmt.Errorf("%w\n%s", err, dataUsage)
		}
		if args = fs.Args(); len(args) == 0 {
			break
		}
		pos, args = append(pos, args[0]), args[1:]
	}
	if len(pos) != want {
		return fmt.Errorf("hpc data %s takes %d argument(s), got %d\n%s", sub, want, len(pos), dataUsage)
	}
	c, err := client.New(client.ParseAddrs(*addr))
	if err != nil {
		return err
	}
	defer c.Close()
	c.FailWhenRefused = true
	switch sub {
	case "push":
		return dataPush(ctx, c, pos[0], pos[1], *public, stdout, stderr)
	case "ls":
		return dataList(ctx, c, *dept, *asJSON, stdout)
	default:
		return imageRemove(ctx, c, pos[0], stdout)
	}
}

// dataPush uploads every regular file under dir (symlinks and special
// files are skipped, and said so) and records ref as a dataset.
func dataPush(ctx context.Context, c *client.Client, ref, dir string, public bool, stdout, stderr io.Writer) error {
	ref, err := normalRef(ref)
	if err != nil {
		return err
	}
	dept, _, _, _ := model.SplitImageRef(ref)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var stages []jobdata.Stage
	for _, e := range ents {
		if e.IsDir() || e.Type().IsRegular() {
			stages = append(stages, jobdata.Stage{From: e.Name()})
		} else {
			fmt.Fprintf(stderr, "hpc: skipping %s (symlinks and special files are not part of a dataset)\n", e.Name())
		}
	}
	if len(stages) == 0 {
		return fmt.Errorf("%s holds no files to push", dir)
	}
	files, err := jobdata.Collect(dir, stages, jobdata.CollectOptions{})
	if err != nil {
		return err
	}
	defer files.Close()
	for _, s := range files.Skipped {
		fmt.Fprintf(stderr, "hpc: skipping %s (symlinks and special files are not part of a dataset)\n", s)
	}
	info, tokens, err := client.DataStore(ctx, c, &api.DataStoreRequest{Department: dept})
	if err != nil {
		return err
	}
	p, err := jobdata.Push(ctx, info.GetRegistry(), jobdata.RepositoryName(dept), files, imagestore.Options{Logger: slog.New(slog.NewTextHandler(stderr, nil)),
		Token: tokens})
	if err != nil {
		return fmt.Errorf("upload %s: %w (run again: what arrived is not sent twice)", dir, err)
	}
	who := ""
	if u, err := user.Current(); err == nil {
		who = u.Username
	}
	token := newToken()
	rec, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ImageRecord, error) {
		return is.Put(ctx, &api.PutImageRequest{Ref: ref, Digest: p.Digest, SizeBytes: p.Bytes, Public: public,
			BuiltFrom: "hpc data push", User: who, ClientToken: token, Kind: model.KindDataset})
	})
	if err != nil {
		return fmt.Errorf("uploaded %s as %s, but the catalog refused it: %w", ref, p.Digest, err)
	}
	fmt.Fprintf(stdout, "pushed dataset %s %s (%d files, %s; %s sent)\n", rec.GetRef(), rec.GetDigest(), p.Files, humanBytes(p.Bytes), humanBytes(p.SentBytes))
	if prev := rec.GetPreviousDigest(); prev != "" && prev != rec.GetDigest() {
		fmt.Fprintf(stdout, "the tag moved from %s; queued jobs keep the dataset they were submitted with\n", prev)
	}
	return nil
}

func dataList(ctx context.Context, c *client.Client, dept string, asJSON bool, stdout io.Writer) error {
	ls, err := call(ctx, c, func(ctx context.Context, is api.ImageServiceClient) (*api.ListImagesResponse, error) {
		return is.List(ctx, &api.ListImagesRequest{Department: dept, Kind: model.KindDataset})
	})
	if err != nil {
		return err
	}
	if asJSON {
		type row struct {
			Ref        string    `json:"ref"`
			Digest     string    `json:"digest"`
			SizeBytes  int64     `json:"sizeBytes"`
			Department string    `json:"department"`
			Public     bool      `json:"public"`
			Created    time.Time `json:"created"`
		}
		rows := []row{}
		for _, d := range ls.GetImages() {
			rows = append(rows, row{d.GetRef(), d.GetDigest(), d.GetSizeBytes(), d.GetDepartment(), d.GetPublic(), d.GetCreated().AsTime().UTC()})
		}
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	if len(ls.GetImages()) == 0 {
		fmt.Fprintln(stdout, "no datasets in the catalog; add one with hpc data push department/name:tag DIR")
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME:TAG\tDIGEST\tSIZE\tDEPARTMENT\tPUBLIC\tCREATED")
	for _, d := range ls.GetImages() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", d.GetRef(), shortDigest(d.GetDigest()), humanBytes(d.GetSizeBytes()),
			d.GetDepartment(), d.GetPublic(), d.GetCreated().AsTime().UTC().Format(time.DateTime))
	}
	return tw.Flush()
}
