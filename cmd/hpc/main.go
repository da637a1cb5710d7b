// Command hpc holds vhpc's admin commands. Today:
//
//	hpc image build tiny [-store DIR] [-guest PATH] [-kernel VERSION]
//
// builds (or finds, when its inputs did not change) the tiny test image in
// the image store and prints its directory.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"

	"vhpc/vmimages"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hpc:", err)
		os.Exit(1)
	}
}

const usage = "usage: hpc image build tiny [-store DIR] [-guest PATH] [-kernel VERSION]"

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 2 && args[0] == "image" && isCatalogCommand(args[1]) {
		return imageCatalog(ctx, args[1], args[2:], stdout, stderr) // images.go
	}
	if len(args) < 3 || args[0] != "image" || args[1] != "build" {
		return fmt.Errorf("%s", usage)
	}
	if args[2] != "tiny" {
		return fmt.Errorf("unknown image %q: only \"tiny\" can be built (%s)", args[2], usage)
	}
	fs := flag.NewFlagSet("hpc image build tiny", flag.ContinueOnError)
	fs.SetOutput(stderr)
	store := fs.String("store", "/var/lib/vhpc/images", "image store directory")
	guestBin := fs.String("guest", "", "static hpc-guest binary (default: next to hpc, or on $PATH)")
	kver := fs.String("kernel", "", "kernel version in /boot (default: newest with modules)")
	verbose := fs.Bool("v", false, "verbose logging")
	if err := fs.Parse(args[3:]); err != nil {
		return err
	}
	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	g, err := vmimages.FindGuestBinary(*guestBin)
	if err != nil {
		return err
	}
	img, err := vmimages.EnsureTiny(ctx, *store, vmimages.TinySpec{GuestBinary: g, KernelVersion: *kver}, log)
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
