// Command hpc-guest runs as PID 1 (/init) inside every vhpc guest: it mounts
// the job share and scratch disk, runs the job described in
// /jobshare/job.json, streams its output, writes /jobshare/exit.json and
// powers the guest off. See guest/README.md for the protocol.
//
// It must be static: `make build` builds it with CGO_ENABLED=0 into bin/,
// where the node agent finds it (vmimages.FindGuestBinary).
package main

import (
	"fmt"
	"log/slog"
	"os"

	"vhpc/guest"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "hpc-guest")
	if os.Getpid() != 1 {
		fmt.Fprintln(os.Stderr, "hpc-guest: must run as PID 1 (/init) inside a vhpc guest")
		os.Exit(2)
	}
	guest.Init(log)
}
