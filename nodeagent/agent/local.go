package agent

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"vhpc/client"
	"vhpc/nodeagent/gpu"
	"vhpc/nodeagent/gpumetrics"
	"vhpc/nodeagent/guestid"
	"vhpc/nodeagent/netplane"
	"vhpc/nodeagent/runner"
	"vhpc/nodeagent/vm"
	"vhpc/security/pki"
)

// LocalOptions configure an agent for this host: hpc-agent and the
// in-process agent of `hpcd dev`.
type LocalOptions struct {
	Addrs                                             []string
	Name, StateDir, Hypervisor, LibvirtURI, Partition string
	Reserved                                          []int
	Logger                                            *slog.Logger
	// Registry receives the GPU metrics collector; nil: no metrics.
	Registry prometheus.Registerer
	// GPUReturnDriver is where GPUs go after a job ("", "nvidia", "vfio-pci").
	GPUReturnDriver string
	// GuestBinary is the static hpc-guest for the guest image (the --guest
	// flag); "" lets vmimages.FindGuestBinary look next to the executable
	// and on $PATH.
	GuestBinary string
	// Registered is called once the master accepted the node (Config.Registered).
	Registered func()
	// ImageCacheBytes bounds the cache of catalog images in
	// StateDir/image-cache; 0 is DefaultImageCacheBytes.
	ImageCacheBytes int64
	// Credentials are what the agent dials the masters with: its agent
	// certificate (`hpcd tls issue --agent NODE`); nil: the environment's
	// (client.DefaultCredentials preferring role agent).
	Credentials *client.Credentials
	// Underlay is "IP[:PORT]" (port default 4789) where this host
	// terminates the VXLAN segments of multi-node job networks (the
	// --underlay flag); "" runs no multi-node jobs' networks.
	Underlay string
	// GuestUIDs is the --guest-uids flag: "FIRST-LAST", the host uids the
	// guests run as (one each; runner.Config.GuestIDs), "shared" (every
	// guest as the QEMU user), or "" for guestid's default range.
	GuestUIDs string
}

// parseGuestUIDs reads LocalOptions.GuestUIDs into the runner's fields.
func parseGuestUIDs(s string) (ids guestid.Range, shared bool, err error) {
	switch s {
	case "":
		return guestid.Range{}, false, nil
	case "shared":
		return guestid.Range{}, true, nil
	}
	ids, err = guestid.ParseRange(s)
	if err != nil {
		return guestid.Range{}, false, fmt.Errorf("--guest-uids: %w (or shared)", err)
	}
	return ids, false, nil
}

// NormalizeUnderlay checks "IP[:PORT]" (an IPv4 address; the port
// defaults to netplane.DefaultPort) and returns "IP:PORT"; "" stays "".
func NormalizeUnderlay(s string) (string, error) {
	if s == "" {
		return "", nil
	}
	u, err := netplane.ParseUnderlay(s)
	if err != nil || !u.IP.Is4() {
		return "", fmt.Errorf("underlay %q: want an IPv4 address of this host, optionally with a UDP port (e.g. 10.0.0.7 or 10.0.0.7:4789)", s)
	}
	return u.String(), nil
}

// RunLocal builds the runner (libvirt, image, hypervisor probe), scans
// this host's inventory, opens NVML where there is one (for GPU health and
// metrics; a host without it runs without them) and runs the agent until
// ctx ends.
func RunLocal(ctx context.Context, o LocalOptions) error {
	ids, shared, err := parseGuestUIDs(o.GuestUIDs)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	r, err := runner.New(ctx, runner.Config{
		StateDir: o.StateDir, LibvirtURI: o.LibvirtURI, Hypervisor: o.Hypervisor,
		HousekeepingCores: o.Reserved, Logger: o.Logger, GPUReturnDriver: o.GPUReturnDriver,
		GuestBinary: o.GuestBinary, GuestIDs: ids, SharedQEMUUser: shared,
	})
	if err != nil {
		return err
	}
	defer r.Close()
	underlay, err := NormalizeUnderlay(o.Underlay)
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	node, inv, err := LocalNode(o.Name, filepath.Join(o.StateDir, "jobs"), o.Partition, o.Reserved, o.Logger)
	if err != nil {
		return err
	}
	node.Underlay = underlay
	cfg := Config{Runner: r, Logger: o.Logger, Registered: o.Registered,
		ResolveGPUs: func(pci []string) ([]vm.GPU, error) { return runner.ResolveGPUs(inv, pci) }}
	var live *gpu.NVML
	if nv, err := gpu.Open(o.Logger); err != nil {
		o.Logger.Info("no NVML on this host: GPU health checks and host GPU metrics are off", "reason", err)
	} else {
		defer nv.Shutdown()
		live = nv
		devs, err := nv.Devices()
		if err != nil {
			return fmt.Errorf("agent: NVML devices: %w", err)
		}
		inv.AddNVML(devs)
		node = inv.ToNode(node.Name)
		node.Partition, node.ReservedCores = o.Partition, o.Reserved
		cfg.Health = nv
	}
	if o.Registry != nil {
		opts := gpumetrics.Options{Logger: o.Logger}
		if live != nil {
			opts.Live = live
		}
		col := gpumetrics.New(node.Name, opts)
		if err := o.Registry.Register(col); err != nil {
			return fmt.Errorf("agent: register GPU metrics: %w", err)
		}
		cfg.Metrics = col
	}
	creds := o.Credentials
	if creds == nil {
		if creds, err = client.DefaultCredentials(pki.RoleAgent); err != nil {
			return fmt.Errorf("agent: %w", err)
		}
	}
	c, err := client.New(o.Addrs, client.WithCredentials(creds))
	if err != nil {
		return err
	}
	defer c.Close()
	node.Underlay = underlay
	cfg.Client, cfg.Node = c, *node
	cfg.Images = &MasterImageCache{Dir: imageCacheDir(o.StateDir), LimitBytes: o.ImageCacheBytes, Client: c, Logger: o.Logger}
	data := &MasterJobData{Client: c, Logger: o.Logger, DatasetDir: filepath.Join(o.StateDir, "dataset-cache")}
	cfg.Data, cfg.Datasets = data, data
	cfg.Acceptance = &HostSuite{Root: os.DirFS("/"), GPUs: node.GPUs, Log: o.Logger}
	a, err := New(cfg)
	if err != nil {
		return err
	}
	return a.Run(ctx)
}
