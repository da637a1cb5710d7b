// Command hpc-guest runs as PID 1 (/init) inside every vhpc guest: it mounts
// the job share and scratch disk, runs the job described in
// /jobshare/job.json, streams its output, writes /jobshare/exit.json and
// powers the guest off. See guest/README.md for the protocol.
//
// Run as `hpc-guest rsh HOST COMMAND...`, or under the name vhpc-rsh (the
// symlink /usr/local/bin/vhpc-rsh that hpc-guest creates in the guests of
// a multi-node job), it is the ssh-like client of the job's remote-start
// service, which OpenMPI and MPICH's Hydra use instead of ssh.
//
// It must be static: `make build` builds it with CGO_ENABLED=0 into bin/,
// where the node agent finds it (vmimages.FindGuestBinary).
package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"vhpc/guest"
)

func main() {
	if os.Getpid() != 1 {
		if filepath.Base(os.Args[0]) == guest.RshName {
			os.Exit(guest.Rsh(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, guest.LauncherConfigPath, "/etc/hosts"))
		}
		if len(os.Args) > 1 && os.Args[1] == "rsh" {
			os.Exit(guest.Rsh(os.Args[2:], os.Stdin, os.Stdout, os.Stderr, guest.LauncherConfigPath, "/etc/hosts"))
		}
		fmt.Fprintln(os.Stderr, "hpc-guest: must run as PID 1 (/init) inside a vhpc guest, or as `hpc-guest rsh HOST COMMAND...`")
		os.Exit(2)
	}
	log := slog.New(slog.NewTextHandler(os.Stdout, &slog.HandlerOptions{Level: slog.LevelInfo})).With("component", "hpc-guest")
	guest.Init(log)
}
