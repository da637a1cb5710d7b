package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/security/pki"
)

// operatorCmd holds the admin commands that change the cluster itself.
// They dial any member (--addr, comma-separated); followers forward to the
// leader.
func operatorCmd() *cobra.Command {
	var addr string
	cmd := &cobra.Command{Use: "operator", Short: "membership, leadership and backups of a running cluster"}
	def := os.Getenv("HPC_ADDR")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	cmd.PersistentFlags().StringVar(&addr, "addr", def, "member gRPC address(es), comma-separated")
	call := func(ctx context.Context, fn func(ctx context.Context, c api.ClusterServiceClient) error) error {
		c, err := dialMembers(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			return fn(ctx, api.NewClusterServiceClient(conn))
		})
	}
	show := func(st *api.ClusterStatus) {
		fmt.Printf("leader %s, term %d, commit index %d\n", st.GetLeaderId(), st.GetTerm(), st.GetCommitIndex())
		for _, m := range st.GetMembers() {
			fmt.Printf("  %s raft=%s api=%s %s leader=%v\n", m.GetId(), m.GetRaftAddress(), m.GetGrpcAddress(), m.GetSuffrage(), m.GetLeader())
		}
	}

	var id, raftAddr, to string
	add := &cobra.Command{
		Use: "add-member --id ID --raft-addr HOST:PORT", Short: "add a voting member (start it first with an empty data dir and no --peers)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" || raftAddr == "" {
				return usageError{errors.New("--id and --raft-addr are required")}
			}
			return call(cmd.Context(), func(ctx context.Context, c api.ClusterServiceClient) error {
				st, err := c.AddMember(ctx, &api.AddMemberRequest{Id: id, RaftAddress: raftAddr})
				if err == nil {
					show(st)
				}
				return err
			})
		},
	}
	add.Flags().StringVar(&id, "id", "", "new member's id")
	add.Flags().StringVar(&raftAddr, "raft-addr", "", "new member's Raft address")
	remove := &cobra.Command{
		Use: "remove-member --id ID", Short: "remove a member", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if id == "" {
				return usageError{errors.New("--id is required")}
			}
			return call(cmd.Context(), func(ctx context.Context, c api.ClusterServiceClient) error {
				st, err := c.RemoveMember(ctx, &api.RemoveMemberRequest{Id: id})
				if err == nil {
					show(st)
				}
				return err
			})
		},
	}
	remove.Flags().StringVar(&id, "id", "", "member to remove")
	transfer := &cobra.Command{
		Use: "transfer-leadership [--to ID]", Short: "hand leadership to another member", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return call(cmd.Context(), func(ctx context.Context, c api.ClusterServiceClient) error {
				st, err := c.TransferLeadership(ctx, &api.TransferLeadershipRequest{To: to})
				if err == nil {
					show(st)
				}
				return err
			})
		},
	}
	transfer.Flags().StringVar(&to, "to", "", "member to hand over to (default: Raft picks)")

	var node, gpuAddr, reason string
	gpuCall := func(cmd *cobra.Command, why string) error {
		if node == "" || gpuAddr == "" {
			return usageError{errors.New("--node and --gpu are required")}
		}
		c, err := dialMembers(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Do(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
			n, err := client.Nodes(conn).SetGPUHealth(ctx, &api.GPUHealthRequest{Node: node, PciAddress: gpuAddr, Reason: why})
			if err == nil {
				for _, g := range n.GetGpus() {
					if g.GetPciAddress() == gpuAddr {
						fmt.Printf("%s %s: health %q, drained %q\n", node, gpuAddr, g.GetHealth(), g.GetDrained())
					}
				}
			}
			return err
		})
	}
	gpuDrain := &cobra.Command{
		Use: "gpu-drain --node N --gpu PCI --reason TEXT", Short: "take a GPU out of service (its job is requeued)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if reason == "" {
				return usageError{errors.New("--reason is required")}
			}
			return gpuCall(cmd, "admin: "+reason)
		},
	}
	gpuReturn := &cobra.Command{
		Use: "gpu-return --node N --gpu PCI", Short: "return a GPU to service (the agent drains it again if its health check still fails)", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return gpuCall(cmd, "") },
	}
	for _, c := range []*cobra.Command{gpuDrain, gpuReturn} {
		c.Flags().StringVar(&node, "node", "", "node name")
		c.Flags().StringVar(&gpuAddr, "gpu", "", "GPU PCI address, e.g. 0000:3b:00.0")
	}
	gpuDrain.Flags().StringVar(&reason, "reason", "", "why (shown by hpcsub nodes)")

	snapshot := &cobra.Command{Use: "snapshot", Short: "save or restore a backup of the cluster state"}
	save := &cobra.Command{
		Use: "save FILE", Short: "write a snapshot of the state to FILE", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			tmp := args[0] + ".tmp"
			err := call(cmd.Context(), func(ctx context.Context, c api.ClusterServiceClient) error {
				f, err := os.Create(tmp)
				if err != nil {
					return usageError{err}
				}
				defer f.Close()
				stream, err := c.SnapshotSave(ctx, &api.SnapshotSaveRequest{})
				if err != nil {
					return err
				}
				var n int64
				for {
					chunk, err := stream.Recv()
					if err == io.EOF {
						break
					}
					if err != nil {
						return err
					}
					if _, err := f.Write(chunk.GetData()); err != nil {
						return err
					}
					n += int64(len(chunk.GetData()))
				}
				if err := f.Sync(); err != nil {
					return err
				}
				fmt.Printf("saved %d bytes to %s\n", n, args[0])
				return nil
			})
			if err != nil {
				os.Remove(tmp)
				return err
			}
			return os.Rename(tmp, args[0])
		},
	}
	restore := &cobra.Command{
		Use: "restore FILE", Short: "replace the cluster's state with the snapshot in FILE", Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return usageError{err}
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			return call(ctx, func(ctx context.Context, c api.ClusterServiceClient) error {
				stream, err := c.SnapshotRestore(ctx)
				if err != nil {
					return err
				}
				for off := 0; off < len(data); off += 1 << 20 {
					if err := stream.Send(&api.SnapshotChunk{Data: data[off:min(off+1<<20, len(data))]}); err != nil {
						return err
					}
				}
				st, err := stream.CloseAndRecv()
				if err == nil {
					fmt.Printf("restored %s: %d jobs\n", args[0], st.GetJobs())
				}
				return err
			})
		},
	}
	snapshot.AddCommand(save, restore)
	cmd.AddCommand(add, remove, transfer, snapshot, gpuDrain, gpuReturn, nodeAcceptCmd(&addr), auditCmd(&addr))
	return cmd
}

// dialMembers is the operator commands' client for --addr: with nothing
// listening at any member, a call fails at once with advice. It dials with
// the operator credential of the environment ($VHPC_CREDENTIALS or
// ~/.config/vhpc; `hpcd tls issue --operator NAME`).
func dialMembers(addr string) (*client.Client, error) {
	creds, err := client.DefaultCredentials(pki.RoleOperator, pki.RoleUser, pki.RoleAgent) // the master refuses non-operators, saying so
	if err != nil {
		return nil, err
	}
	c, err := client.New(client.ParseAddrs(addr), client.WithCredentials(creds))
	if err != nil {
		return nil, usageError{err}
	}
	c.FailWhenRefused = true
	return c, nil
}
