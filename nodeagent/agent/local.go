package agent

import (
	"context"
	"log/slog"
	"path/filepath"

	"vhpc/client"
	"vhpc/nodeagent/runner"
)

// LocalOptions configure an agent for this host: hpc-agent and the
// in-process agent of `hpcd dev`.
type LocalOptions struct {
	Addrs                                             []string
	Name, StateDir, Hypervisor, LibvirtURI, Partition string
	Reserved                                          []int
	Logger                                            *slog.Logger
}

// RunLocal builds the runner (libvirt, image, hypervisor probe) and the
// agent for this host and runs until ctx ends.
func RunLocal(ctx context.Context, o LocalOptions) error {
	r, err := runner.New(ctx, runner.Config{
		StateDir: o.StateDir, LibvirtURI: o.LibvirtURI, Hypervisor: o.Hypervisor,
		HousekeepingCores: o.Reserved, Logger: o.Logger,
	})
	if err != nil {
		return err
	}
	defer r.Close()
	node, err := LocalNode(o.Name, filepath.Join(o.StateDir, "jobs"), o.Partition, o.Reserved, o.Logger)
	if err != nil {
		return err
	}
	c, err := client.New(o.Addrs)
	if err != nil {
		return err
	}
	defer c.Close()
	a, err := New(Config{Node: *node, Client: c, Runner: r, Logger: o.Logger})
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
