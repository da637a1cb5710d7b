// Command hpc-agent is the vhpc node agent: it registers this host's
// inventory with the master, runs the node's allocations in libvirt guests
// and reports them. It dials the master; the master never dials it.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"vhpc/client"
	"vhpc/nodeagent/agent"
	"vhpc/security/pki"
)

func main() {
	var (
		addrs, name, stateDir, hypervisor, libvirtURI, partition, logLevel string
		metricsAddr, gpuReturn, guestBin, underlay, credDir, guestUIDs     string
		reserved                                                           []int
	)
	cmd := &cobra.Command{
		Use:           "hpc-agent",
		Short:         "vhpc node agent: runs this host's allocations in libvirt guests",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) (err error) {
			var lvl slog.Level
			if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level %q: want debug, info, warn or error", logLevel)
			}
			log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
			reg := prometheus.NewRegistry()
			ctx := cmd.Context()
			if metricsAddr != "" {
				ln, err := listenMetrics(metricsAddr)
				if err != nil {
					return err
				}
				var stop func(error) error
				ctx, stop = serveMetrics(ctx, ln, reg) // a serving failure stops the agent and is returned
				defer func() { err = stop(err) }()
				log.Info("serving metrics", "addr", ln.Addr().String())
			}
			var creds *client.Credentials
			if credDir != "" {
				if creds, err = client.LoadCredentials(credDir, pki.RoleAgent); err != nil {
					return err
				}
			}
			return agent.RunLocal(ctx, agent.LocalOptions{
				Credentials: creds,
				Addrs:       client.ParseAddrs(addrs), Name: name, StateDir: stateDir, Hypervisor: hypervisor,
				LibvirtURI: libvirtURI, Partition: partition, Reserved: reserved, Logger: log,
				Registry: reg, GPUReturnDriver: gpuReturn, GuestBinary: guestBin, Underlay: underlay,
				GuestUIDs: guestUIDs,
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&addrs, "master", envOr("HPC_ADDR", "127.0.0.1:7070"), "master gRPC address(es), comma-separated")
	f.StringVar(&name, "name", "", "node name (default: hostname)")
	f.StringVar(&credDir, "credentials", "", "directory with ca.crt and this node's agent-NODE.crt/.key (`hpcd tls issue --agent NODE --out DIR`); default $VHPC_CREDENTIALS or ~/.config/vhpc; VHPC_CREDENTIALS=none dials a --insecure master")
	f.StringVar(&stateDir, "state-dir", "/var/lib/vhpc", "job directories, scratch disks, images, logs")
	f.StringVar(&hypervisor, "hypervisor", "auto", "auto (probe), kvm or tcg")
	f.StringVar(&libvirtURI, "libvirt", "qemu:///system", "libvirt connection URI")
	f.StringVar(&partition, "partition", "default", "partition this node belongs to")
	f.IntSliceVar(&reserved, "reserved-cores", nil, "host cores kept for the host and QEMU emulator threads")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	f.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:7081", "HTTP address for /metrics (GPU metrics); empty disables")
	f.StringVar(&guestBin, "guest", "", "static hpc-guest binary for the guest image (default: next to hpc-agent, or on $PATH)")
	f.StringVar(&gpuReturn, "gpu-return-driver", "", "driver GPUs are rebound to after a job: \"\" (leave), nvidia or vfio-pci")
	f.StringVar(&guestUIDs, "guest-uids", "", "host uids the guests run as, one per guest so that no guest's QEMU can open another's disks or share: FIRST-LAST (default 600000-600999), or shared (every guest as the QEMU user, libvirt-qemu)")
	f.StringVar(&underlay, "underlay", "", "IPv4[:PORT] of this host that the other nodes reach for multi-node job networks (VXLAN, port default 4789); empty: this node runs no multi-node jobs")
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := cmd.ExecuteContext(ctx); err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "hpc-agent:", err)
		os.Exit(1)
	}
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
