// Command hpc holds vhpc's admin commands. Today:
//
//	hpc image build SPEC.yaml [--out DIR] [--guest PATH] [--mirror URL]
//	hpc image build tiny [--store DIR] [--guest PATH] [--kernel VERSION]
//
// builds (or finds, when its inputs did not change) a department image
// from its spec, or the tiny test image, and prints its directory; the
// image catalog (hpc image push|ls|inspect|rm, images.go) and datasets
// (hpc data push|ls|rm, data.go).
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "hpc:", err)
		os.Exit(1)
	}
}

const usage = "usage: hpc image build|push|ls|inspect|rm ..., hpc data push|ls|rm ..."

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) >= 1 && args[0] == "data" {
		return dataCommand(ctx, args[1:], stdout, stderr) // data.go
	}
	if len(args) >= 2 && args[0] == "image" && isCatalogCommand(args[1]) {
		return imageCatalog(ctx, args[1], args[2:], stdout, stderr) // images.go
	}
	if len(args) < 2 || args[0] != "image" {
		return fmt.Errorf("%s", usage)
	}
	switch args[1] {
	case "build":
		return imageBuild(ctx, args[2:], stdout, stderr)
	}
	return fmt.Errorf("unknown command \"image %s\" (%s)", args[1], usage)
}
