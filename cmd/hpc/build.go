package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"

	"vhpc/imagespec"
	"vhpc/vmimages"
)

const buildUsage = "usage: hpc image build SPEC.yaml [--out DIR] [--guest PATH] [--mirror URL]\n" +
	"       hpc image build tiny [--store DIR] [--guest PATH] [--kernel VERSION]"

// imageBuild is `hpc image build`: the tiny test image, or a department
// image from a spec file. args start after "build".
func imageBuild(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return fmt.Errorf("%s", buildUsage)
	}
	if args[0] == "tiny" {
		return buildTiny(ctx, args[1:], stdout, stderr)
	}
	return buildSpec(ctx, args[0], args[1:], stdout, stderr)
}

func newLogger(w io.Writer, verbose bool) *slog.Logger {
	level := slog.LevelInfo
	if verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// buildSpec builds a Debian image from a spec file and prints its
// directory; progress goes to stderr. SOURCE_DATE_EPOCH is honoured.
func buildSpec(ctx context.Context, specFile string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hpc image build SPEC.yaml", flag.ContinueOnError)
	fs.SetOutput(stderr)
	out := fs.String("out", "/var/lib/vhpc/images", "image store: the image goes to DIR/<department>-<name>-<tag>-<hash>/")
	guestBin := fs.String("guest", "", "static hpc-guest binary (default: next to hpc, or on $PATH)")
	mirror := fs.String("mirror", vmimages.DefaultMirror, "Debian mirror")
	verbose := fs.Bool("v", false, "verbose logging")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q (%s)", fs.Args(), buildUsage)
	}
	spec, err := imagespec.LoadFile(specFile)
	if err != nil {
		return err
	}
	g, err := vmimages.FindGuestBinary(*guestBin)
	if err != nil {
		return err
	}
	var epoch int64
	if v := os.Getenv("SOURCE_DATE_EPOCH"); v != "" {
		if epoch, err = strconv.ParseInt(v, 10, 64); err != nil || epoch <= 0 {
			return fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
	}
	img, err := vmimages.BuildDebian(ctx, spec, filepath.Dir(specFile), vmimages.DebianOptions{
		Store: *out, GuestBinary: g, Mirror: *mirror, SourceDateEpoch: epoch,
		Progress: stderr, Log: newLogger(stderr, *verbose),
	})
	if err != nil {
		return err
	}
	state := "built"
	if img.Cached {
		state = "cached"
	}
	fmt.Fprintf(stdout, "%s\t%s\t%s\tkernel=%s packages=%d\n", img.Dir, state, img.Config.Ref, img.Config.KernelVersion, len(img.Config.Packages))
	return nil
}

// buildTiny builds (or finds) the tiny test image and prints its directory.
func buildTiny(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hpc image build tiny", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", "/var/lib/vhpc/images", "image store directory")
	guestBin := fs.String("guest", "", "static hpc-guest binary (default: next to hpc, or on $PATH)")
	kver := fs.String("kernel", "", "kernel version in /boot (default: newest with modules)")
	verbose := fs.Bool("v", false, "verbose logging")
	if err := fs.Parse(args); err != nil {
		return err
	}
	g, err := vmimages.FindGuestBinary(*guestBin)
	if err != nil {
		return err
	}
	img, err := vmimages.EnsureTiny(ctx, *store, vmimages.TinySpec{GuestBinary: g, KernelVersion: *kver}, newLogger(stderr, *verbose))
	if err != nil {
		return err
	}
	state := "cached"
	if img.Built {
		state = "built"
	}
	fmt.Fprintf(stdout, "%s\t%s\tkernel=%s initrd=%s\n", img.Dir, state, img.Kernel, img.Initrd)
	return nil
}
