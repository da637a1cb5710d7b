package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/hpcbench"
	"vhpc/hpcbench/accept"
	"vhpc/nodeagent/gpu"
)

// acceptanceConfig turns --acceptance-margin and --acceptance-reference
// into the server's settings: the margin in percent (0: the default),
// and each reference report's validated values under its device's model
// (a GPU's normalised like the inventory's: "NVIDIA H200" -> "H200").
func (c *common) acceptanceConfig() (float64, accept.Reference, error) {
	margin := c.acceptanceMargin
	if margin == 0 {
		margin = accept.DefaultMarginPercent
	}
	if err := accept.ValidateMargin(margin); err != nil {
		return 0, nil, fmt.Errorf("--acceptance-margin: %w", err)
	}
	ref := accept.Reference{}
	for _, path := range strings.Split(c.acceptanceRef, ",") {
		if path = strings.TrimSpace(path); path == "" {
			continue
		}
		if err := addReference(ref, path); err != nil {
			return 0, nil, fmt.Errorf("--acceptance-reference: %w", err)
		}
	}
	if len(ref) == 0 {
		ref = nil
	}
	return margin, ref, nil
}

// addReference adds the validated workloads of one `hpcbench --json`
// report to ref.
func addReference(ref accept.Reference, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	rep, err := hpcbench.ReadJSON(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	model := rep.Device.Name
	if rep.Device.Kind == "gpu" {
		model = gpu.ModelFromName(model)
	}
	if model == "" {
		return fmt.Errorf("%s: the report names no device model", path)
	}
	if ref[model] == nil {
		ref[model] = map[string]float64{}
	}
	for _, w := range rep.Workloads {
		if w.Error == "" && w.Validated && w.Value > 0 {
			ref[model][w.Name] = w.Value
		}
	}
	return nil
}

// nodeAcceptCmd is `hpcd operator node-accept NODE`: it asks the master
// for an acceptance run on the node and, with --wait, follows it to the
// verdict (exit 1 when the node failed).
func nodeAcceptCmd(addr *string) *cobra.Command {
	var (
		workloads, size string
		wait            bool
		timeout, poll   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "node-accept NODE [--workloads LIST] [--size S] [--wait=false]",
		Short: "run the acceptance suite (hpcbench on its CPU and GPUs) on a node before it takes work; a node or GPU too far below its model's median is drained",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := hpcbench.Select(workloads); err != nil {
				return usageError{fmt.Errorf("--workloads: %w", err)}
			}
			if size != "" {
				if _, err := hpcbench.ParseSizes(size, false); err != nil {
					return usageError{err}
				}
			}
			if timeout <= 0 || poll <= 0 {
				return usageError{errors.New("--timeout and --poll must be positive")}
			}
			c, err := dialMembers(*addr)
			if err != nil {
				return err
			}
			defer c.Close()
			return runNodeAccept(cmd.Context(), c, cmd.OutOrStdout(), &api.StartAcceptanceRequest{Node: args[0], Workloads: workloads, Size: size}, wait, timeout, poll)
		},
	}
	f := cmd.Flags()
	f.StringVar(&workloads, "workloads", "all", "comma-separated hpcbench workloads (hpcbench --list)")
	f.StringVar(&size, "size", "", "hpcbench --size (default: medium on the CPU, large on GPUs)")
	f.BoolVar(&wait, "wait", true, "wait for the results and print the verdict")
	f.DurationVar(&timeout, "timeout", time.Hour, "how long --wait waits (the node's jobs end first, then the suite runs)")
	f.DurationVar(&poll, "poll", 2*time.Second, "how often --wait asks the master")
	return cmd
}

func runNodeAccept(ctx context.Context, c *client.Client, out io.Writer, req *api.StartAcceptanceRequest, wait bool, timeout, poll time.Duration) error {
	var n *api.Node
	err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		n, err = client.Nodes(conn).StartAcceptance(ctx, req)
		return err
	})
	if err != nil {
		return fmt.Errorf("node-accept %s: %w", req.GetNode(), err)
	}
	run := n.GetAcceptanceRun().GetId()
	fmt.Fprintf(out, "%s: acceptance run %d requested (%s: %s); the agent runs it once the node's jobs have ended\n", n.GetName(), run, n.GetState(), n.GetReason())
	if !wait {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("node-accept %s: no results for run %d after %s (hpcsub nodes shows it when they come): %w", req.GetNode(), run, timeout, ctx.Err())
		case <-time.After(poll):
		}
		var nodes *api.NodesResponse
		err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			var err error
			nodes, err = client.Jobs(conn).Nodes(ctx, &api.NodesRequest{})
			return err
		})
		if err != nil {
			return fmt.Errorf("node-accept %s: %w", req.GetNode(), err)
		}
		for _, n := range nodes.GetNodes() {
			if n.GetName() == req.GetNode() && n.GetAcceptance().GetRunId() >= run {
				return printAcceptance(out, n)
			}
		}
	}
}

// printAcceptance prints a node's last acceptance run and returns an
// error when the node or one of its GPUs failed it.
func printAcceptance(out io.Writer, n *api.Node) error {
	a := n.GetAcceptance()
	tw := tabwriter.NewWriter(out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tMODEL\tWORKLOAD\tVALUE\tERROR")
	for _, r := range a.GetResults() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.1f %s\t%s\n", r.GetSubject(), r.GetModel(), r.GetWorkload(), r.GetValue(), r.GetUnit(), r.GetError())
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	var failed []string
	if a.GetFailed() != "" {
		failed = append(failed, a.GetFailed())
	}
	for _, g := range n.GetGpus() {
		if g.GetRejected() != "" {
			failed = append(failed, "GPU "+g.GetPciAddress()+": "+g.GetRejected())
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("%s failed acceptance run %d (drained): %s", n.GetName(), a.GetRunId(), strings.Join(failed, "; "))
	}
	fmt.Fprintf(out, "%s passed acceptance run %d: %s\n", n.GetName(), a.GetRunId(), n.GetState())
	return nil
}
