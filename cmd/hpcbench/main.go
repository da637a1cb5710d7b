// Command hpcbench is the floating-point harness: SGEMM, DGEMM, a BF16
// tensor-core GEMM, STREAM, a reduction and a 7-point stencil on a GPU
// (CUDA, against cuBLAS) or on CPU cores (Go, against gonum), each
// validated before it is timed. See hpcbench/README.md.
//
//	hpcbench --list
//	hpcbench --json [--device 0] [--size auto]
//	hpcbench --cpu --json
//	hpcbench --plot roofline.svg results.json
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"text/tabwriter"

	"vhpc/cuda"
	"vhpc/hpcbench"
	"vhpc/hpcbench/cpubench"
	"vhpc/hpcbench/gpubench"
	"vhpc/hpcbench/roofline"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "hpcbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("hpcbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	list := fs.Bool("list", false, "list the workloads and what each measures")
	asJSON := fs.Bool("json", false, "print the report as JSON instead of a table")
	useCPU := fs.Bool("cpu", false, "run on CPU cores in Go instead of a GPU")
	device := fs.Int("device", 0, "CUDA device ordinal")
	size := fs.String("size", "auto", "auto (large on a GPU, medium on a CPU), small, medium, large, or a GEMM edge (multiple of 128)")
	only := fs.String("workloads", "all", "comma-separated workloads to run")
	plotOut := fs.String("plot", "", "write an SVG roofline of the report named by the argument to this file")
	threads := fs.Int("threads", 0, "CPU goroutines (default GOMAXPROCS)")
	memGBs := fs.Float64("mem-gbs", 0, "CPU memory bandwidth peak in GB/s, when known (nothing in /proc says it)")
	minTime := fs.Duration("min-time", hpcbench.DefaultTiming().MinTime, "how long to repeat each kernel")
	sampleEvery := fs.Duration("sample-every", hpcbench.DefaultSampleEvery, "how often NVML is read during each GPU workload")
	verbose := fs.Bool("v", false, "log progress to stderr")
	if err := fs.Parse(args); err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	if *list {
		tw := tabwriter.NewWriter(stdout, 2, 8, 2, ' ', 0)
		fmt.Fprintln(tw, "workload\tunit\tmeasures")
		for _, w := range hpcbench.Catalog() {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", w.Name, w.Unit, w.Measures)
		}
		return tw.Flush()
	}
	if *plotOut != "" {
		if fs.NArg() != 1 {
			return errors.New("--plot OUT.svg needs one report file (hpcbench --json > results.json)")
		}
		return plot(*plotOut, fs.Arg(0))
	}
	workloads, err := hpcbench.Select(*only)
	if err != nil {
		return err
	}
	sizes, err := hpcbench.ParseSizes(*size, !*useCPU)
	if err != nil {
		return err
	}
	timing := hpcbench.DefaultTiming()
	timing.MinTime = *minTime

	var backend hpcbench.Backend
	if *useCPU {
		info, err := cpubench.ReadCPUInfo(os.DirFS("/"))
		if err != nil {
			return err
		}
		backend = cpubench.New(info, cpubench.Options{Workers: *threads, Sizes: sizes, Timing: timing, MemGBs: *memGBs, Log: log})
	} else {
		g, err := gpubench.New(gpubench.Options{Device: *device, Sizes: sizes, Timing: timing, Log: log})
		if err != nil {
			if errors.Is(err, cuda.ErrNoDriver) {
				return err // its message already says: use --cpu
			}
			return fmt.Errorf("gpu %d: %w", *device, err)
		}
		defer func() {
			if cerr := g.Close(); cerr != nil {
				log.Error("close gpu", "err", cerr)
			}
		}()
		var closeNVML func() error
		backend, closeNVML = gpubench.WithNVML(g, *sampleEvery)
		defer func() {
			if cerr := closeNVML(); cerr != nil {
				log.Error("close nvml", "err", cerr)
			}
		}()
	}
	rep := hpcbench.Run(ctx, backend, workloads)
	if *asJSON {
		return hpcbench.WriteJSON(stdout, rep)
	}
	return hpcbench.WriteTable(stdout, rep)
}

func plot(out, in string) error {
	f, err := os.Open(in)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	defer f.Close()
	rep, err := hpcbench.ReadJSON(f)
	if err != nil {
		return fmt.Errorf("plot %s: %w", in, err)
	}
	w, err := os.Create(out)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	if err := roofline.Write(w, rep); err != nil {
		return errors.Join(err, w.Close())
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	return nil
}
