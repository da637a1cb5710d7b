package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"vhpc/api"
	"vhpc/client"
	"vhpc/guestproto"
	"vhpc/jobspec"
)

func printJSON(w io.Writer, m proto.Message) {
	b, err := protojson.MarshalOptions{Multiline: true, Indent: "  ", EmitUnpopulated: false}.Marshal(m)
	if err != nil {
		fmt.Fprintf(w, "{\"error\": %q}\n", err.Error())
		return
	}
	fmt.Fprintln(w, string(b))
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

func parseJobID(s string) (uint64, error) {
	id, err := strconv.ParseUint(s, 10, 64)
	if err != nil || id == 0 {
		return 0, usage("hpcsub: %q is not a job id; want a positive number such as 12", s)
	}
	return id, nil
}

// fetch runs one unary JobService request against the cluster, with
// failover, and returns its answer.
func fetch[T any](ctx context.Context, a *app, fn func(ctx context.Context, jobs api.JobServiceClient) (T, error)) (T, error) {
	var out T
	c, err := a.client()
	if err != nil {
		return out, usage("hpcsub: %v", err)
	}
	defer c.Close()
	err = c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		out, err = fn(ctx, client.Jobs(conn))
		return err
	})
	return out, err
}

func resources(r *api.Resources) string {
	s := fmt.Sprintf("%dx(%dc %s", r.GetNodes(), r.GetTasksPerNode()*r.GetCpusPerTask(), mib(r.GetMemoryMib()))
	if r.GetGpus() > 0 {
		s += fmt.Sprintf(" %dgpu", r.GetGpus())
		if r.GetGpuModel() != "" {
			s += ":" + r.GetGpuModel()
		}
	}
	return s + ")"
}

func mib(v int64) string {
	if v >= 1024 && v%1024 == 0 {
		return fmt.Sprintf("%dG", v/1024)
	}
	return fmt.Sprintf("%dM", v)
}

func age(j *api.Job) string {
	if j.GetSubmitTime() == nil {
		return "-"
	}
	return time.Since(j.GetSubmitTime().AsTime()).Round(time.Second).String()
}

func queueCmd(a *app) *cobra.Command {
	var all bool
	var dept string
	var states []string
	cmd := &cobra.Command{
		Use:   "queue",
		Short: "list jobs: id, name, department, state, resources, age, reason",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := fetch(cmd.Context(), a, func(ctx context.Context, jobs api.JobServiceClient) (*api.ListJobsResponse, error) {
				return jobs.List(ctx, &api.ListJobsRequest{All: all, Department: dept, States: states})
			})
			if err != nil {
				return err
			}
			if a.asJSON {
				printJSON(a.out, resp)
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tDEPARTMENT\tSTATE\tRESOURCES\tAGE\tREASON")
			for _, j := range resp.GetJobs() {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", j.GetId(), j.GetName(), j.GetDepartment(), j.GetState(), resources(j.GetResources()), age(j), oneLine(j.GetReason()))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "include ended jobs")
	cmd.Flags().StringVar(&dept, "department", "", "only this department's jobs")
	cmd.Flags().StringSliceVar(&states, "state", nil, "only jobs in these states (pending, running, completed, ...)")
	return cmd
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) > 100 {
		s = s[:97] + "..."
	}
	return s
}

func showCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "show ID",
		Short: "everything about one job, including why it is pending",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			j, err := fetch(cmd.Context(), a, func(ctx context.Context, jobs api.JobServiceClient) (*api.Job, error) {
				return jobs.Get(ctx, &api.GetJobRequest{Id: id})
			})
			if err != nil {
				return err
			}
			if a.asJSON {
				printJSON(a.out, j)
				return nil
			}
			printJob(a.out, j, catalogDigest(cmd.Context(), a, j))
			return nil
		},
	}
}

// catalogDigest is where the job's image tag points now: its digest, ""
// when the tag is no longer in the catalog, or "?" when the catalog could
// not be asked (or the job runs the built-in image).
func catalogDigest(ctx context.Context, a *app, j *api.Job) string {
	if j.GetImageRef() == "" {
		return "?"
	}
	c, err := a.client()
	if err != nil {
		return "?"
	}
	defer c.Close()
	var rec *api.ImageRecord
	err = c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		rec, err = api.NewImageServiceClient(conn).Get(ctx, &api.GetImageRequest{Ref: j.GetImageRef(), Stale: true})
		return err
	})
	switch {
	case status.Code(err) == codes.NotFound:
		return ""
	case err != nil:
		return "?"
	}
	return rec.GetDigest()
}

// imageLine is the job's image for show: the tag and the digest the job
// was queued with, and whether the tag has moved since (nowDigest from
// catalogDigest).
func imageLine(j *api.Job, nowDigest string) string {
	if j.GetImageRef() == "" {
		return j.GetImage()
	}
	s := j.GetImageRef() + " @ " + j.GetImageDigest()
	switch nowDigest {
	case "?", j.GetImageDigest():
	case "":
		s += " (the tag has been removed from the catalog since; this job keeps its digest)"
	default:
		s += " (the tag has moved to " + nowDigest + " since; this job runs the digest it was queued with)"
	}
	return s
}

// printGuests lists a networked job's guests (MPI, or more than one node)
// of its latest attempt: rank, hostname and address on the job network
// (they follow from the rank), node, state and boot time.
func printGuests(w io.Writer, j *api.Job) {
	var spec struct {
		MPI string `json:"mpi"`
	}
	_ = json.Unmarshal([]byte(j.GetSpecJson()), &spec)
	if j.GetResources().GetNodes() <= 1 && (spec.MPI == "" || spec.MPI == "none") {
		return
	}
	var attempt uint64
	for _, al := range j.GetAllocations() {
		attempt = max(attempt, al.GetAttempt())
	}
	fmt.Fprintf(w, "Guests (attempt %d, job network %s):\n", attempt, guestproto.JobSubnet())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  RANK\tHOSTNAME\tADDRESS\tNODE\tSTATE\tBOOT")
	for _, al := range j.GetAllocations() {
		if al.GetAttempt() != attempt {
			continue
		}
		r := int(al.GetRank())
		boot := "-"
		if s := al.GetBootSeconds(); s > 0 {
			boot = fmt.Sprintf("%.1f s", s)
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", r, guestproto.GuestHostname(r), guestproto.GuestAddress(r), al.GetNode(), al.GetState(), boot)
	}
	_ = tw.Flush()
}

// printJob writes show's text form; nowDigest is catalogDigest's answer.
func printJob(w io.Writer, j *api.Job, nowDigest string) {
	tw := tabwriter.NewWriter(w, 0, 4, 1, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	tsf := func(t interface{ AsTime() time.Time }, ok bool) string {
		if !ok {
			return ""
		}
		return t.AsTime().Local().Format(time.RFC3339)
	}
	row("Job", fmt.Sprintf("%d (%s)", j.GetId(), j.GetName()))
	row("State", j.GetState())
	row("Reason", j.GetReason())
	row("User", j.GetUser())
	row("Department", j.GetDepartment())
	row("Partition", j.GetPartition())
	row("QOS", j.GetQos())
	row("Image", imageLine(j, nowDigest))
	row("Resources", resources(j.GetResources())+fmt.Sprintf(", scratch %s per node", mib(j.GetResources().GetScratchMib())))
	row("Walltime", (time.Duration(j.GetWalltimeSeconds()) * time.Second).String())
	row("Submitted from", j.GetSubmitDir())
	if j.GetInputs() != "" {
		row("Inputs", fmt.Sprintf("%d files, %s (file set %s)", j.GetInputFiles(), humanBytes(j.GetInputBytes()), j.GetInputs()))
	}
	for _, d := range j.GetDatasets() {
		row("Dataset", fmt.Sprintf("%s at /datasets/%s (%s, read-only)", d.GetRef(), d.GetName(), d.GetDigest()))
	}
	switch {
	case j.GetArtifactsDeleted() != nil:
		row("Job files", "deleted from the store at "+tsf(j.GetArtifactsDeleted(), true)+" (retention)")
	case j.GetArtifactsExpire() != nil:
		row("Job files", "kept in the store until "+tsf(j.GetArtifactsExpire(), true))
	}
	row("Submitted", tsf(j.GetSubmitTime(), j.GetSubmitTime() != nil))
	row("Started", tsf(j.GetStartTime(), j.GetStartTime() != nil))
	row("Ended", tsf(j.GetEndTime(), j.GetEndTime() != nil))
	if j.GetEndTime() != nil {
		row("Exit code", strconv.Itoa(int(j.GetExitCode())))
	}
	row("Attempt", fmt.Sprintf("%d (restarts %d of %d)", j.GetAttempt(), j.GetRestarts(), j.GetRetries()))
	for _, d := range j.GetDependsOn() {
		row("Depends on", fmt.Sprintf("%s %v", d.GetKind(), d.GetJobs()))
	}
	if ar := j.GetArray(); ar != nil {
		row("Array", fmt.Sprintf("frames %d-%d step %d, chunk %d: %d tasks, next %d, done %d, failed %d, parallel %d",
			ar.GetFirst(), ar.GetLast(), ar.GetStep(), ar.GetChunk(), ar.GetTasks(), ar.GetNextTask(), ar.GetDone(), ar.GetFailed(), ar.GetParallel()))
		if rt := ar.GetRetryTasks(); len(rt) > 0 {
			row("Array retries", fmt.Sprintf("tasks %v wait to run again", rt))
		}
	}
	for _, p := range j.GetPriority() {
		row("Priority "+p.GetName(), fmt.Sprintf("%.3f (%s)", p.GetValue(), p.GetDetail()))
	}
	_ = tw.Flush()
	if len(j.GetAllocations()) > 0 {
		fmt.Fprintln(w, "Allocations:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  ID\tNODE\tSTATE\tEXIT\tCORES\tGPUS\tREASON")
		for _, al := range j.GetAllocations() {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%v\t%v\t%s\n", al.GetId(), al.GetNode(), al.GetState(), al.GetExitCode(), al.GetCores(), al.GetGpus(), oneLine(al.GetReason()))
		}
		_ = tw.Flush()
		printGuests(w, j)
		for _, al := range j.GetAllocations() {
			if al.GetOutputs() != "" {
				fmt.Fprintf(w, "Outputs of %s: %d files, %s (file set %s; hpcsub fetch %d)\n", al.GetId(), al.GetOutputFiles(), humanBytes(al.GetOutputBytes()), al.GetOutputs(), j.GetId())
			}
			if m := al.GetOutputsMissing(); len(m) > 0 {
				fmt.Fprintf(w, "Outputs of %s: not produced by the job: %s\n", al.GetId(), strings.Join(m, ", "))
			}
			if j.GetImageRef() != "" && al.GetImagePulled() {
				fmt.Fprintf(w, "Image of %s: %s pulled it from the registry (it was not in its cache)\n", al.GetId(), al.GetNode())
			}
			if u := al.GetGpuUsage(); u != nil {
				reserved := 0.0
				if al.GetStarted() != nil && al.GetEnded() != nil {
					reserved = float64(len(al.GetGpus())) * al.GetEnded().AsTime().Sub(al.GetStarted().AsTime()).Hours()
				}
				fmt.Fprintf(w, "GPU use of %s: %.3f GPU-hours used of %.3f reserved, mean utilization %.0f%%, energy %.1f kJ (%d samples)\n",
					al.GetId(), u.GetGpuHours(), reserved, 100*u.GetMeanUtilization(), u.GetEnergyJoules()/1000, u.GetSamples())
			}
		}
	}
}

func cancelCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cancel ID...",
		Short: "cancel jobs: pending ones never start, running guests are destroyed",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var ids []uint64
			for _, s := range args {
				id, err := parseJobID(s)
				if err != nil {
					return err
				}
				ids = append(ids, id)
			}
			for _, id := range ids {
				req := &api.CancelJobRequest{Id: id, ClientToken: newToken()} // one token for every retry
				j, err := fetch(cmd.Context(), a, func(ctx context.Context, jobs api.JobServiceClient) (*api.Job, error) {
					return jobs.Cancel(ctx, req)
				})
				if err != nil {
					return err
				}
				if a.asJSON {
					printJSON(a.out, j)
				} else {
					fmt.Fprintf(a.out, "job %d: %s\n", id, j.GetState())
				}
			}
			return nil
		},
	}
}

func nodesCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "list nodes with their resources, free and used, and hypervisor mode",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			resp, err := fetch(cmd.Context(), a, func(ctx context.Context, jobs api.JobServiceClient) (*api.NodesResponse, error) {
				return jobs.Nodes(ctx, &api.NodesRequest{})
			})
			if err != nil {
				return err
			}
			if a.asJSON {
				printJSON(a.out, resp)
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NODE\tSTATE\tHYPERVISOR\tCORES(used/total)\tMEMORY(used/total)\tGPUS(used/total)\tSCRATCH(used/total)\tALLOCS\tACCEPTED\tREASON")
			for _, n := range resp.GetNodes() {
				var mem int64
				for _, m := range n.GetNuma() {
					mem += m.GetMemoryMib()
				}
				reason := n.GetReason()
				for _, g := range n.GetGpus() {
					if g.GetHealth() != "" {
						reason += fmt.Sprintf(" gpu %s out of service: %s;", g.GetPciAddress(), g.GetHealth())
					}
					if g.GetDrained() != "" {
						reason += fmt.Sprintf(" gpu %s drained: %s;", g.GetPciAddress(), g.GetDrained())
					}
					if g.GetRejected() != "" {
						reason += fmt.Sprintf(" gpu %s drained: %s;", g.GetPciAddress(), g.GetRejected())
					}
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s/%s\t%d/%d\t%s/%s\t%d\t%s\t%s\n", n.GetName(), n.GetState(), n.GetHypervisor(),
					n.GetUsedCores(), len(n.GetCores())-len(n.GetReservedCores()), mib(n.GetUsedMemoryMib()), mib(mem),
					n.GetUsedGpus(), len(n.GetGpus()), mib(n.GetUsedScratchMib()), mib(n.GetScratchMib()), n.GetAllocations(), accepted(n), strings.TrimSpace(reason))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if resp.GetNotice() != "" {
				fmt.Fprintf(a.out, "\n%s\n", resp.GetNotice())
			}
			return nil
		},
	}
}

// accepted is the ACCEPTED column of `hpcsub nodes`: when the node's last
// acceptance run finished and whether it passed, or "-" when it never ran.
func accepted(n *api.Node) string {
	a := n.GetAcceptance()
	if a == nil {
		return "-"
	}
	verdict := "passed"
	if a.GetFailed() != "" {
		verdict = "failed"
	}
	for _, g := range n.GetGpus() {
		if g.GetRejected() != "" {
			verdict = "failed"
		}
	}
	return fmt.Sprintf("%s %s", a.GetFinished().AsTime().UTC().Format("2006-01-02T15:04Z"), verdict)
}

func logsCmd(a *app) *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "logs ID",
		Short: "print a job's output; -f follows it while the job runs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			c, err := a.client()
			if err != nil {
				return usage("hpcsub: %v", err)
			}
			defer c.Close()
			return a.streamLogs(cmd.Context(), c, id, follow)
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing output until the job ends")
	return cmd
}

// streamLogs copies a job's output to a.out, resuming at the right offset
// if the stream breaks.
func (a *app) streamLogs(ctx context.Context, c *client.Client, id uint64, follow bool) error {
	var offset int64
	return c.Stream(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		stream, err := client.Jobs(conn).Logs(ctx, &api.LogsRequest{Id: id, Follow: follow, Offset: offset})
		if err != nil {
			return err
		}
		for {
			chunk, err := stream.Recv()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := a.out.Write(chunk.GetData()); err != nil {
				return err
			}
			offset = chunk.GetOffset() + int64(len(chunk.GetData()))
		}
	})
}

func schemaCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "schema",
		Short: "print the job.yaml JSON Schema (for editors)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			b, err := jobspec.Schema()
			if err != nil {
				return err
			}
			_, err = a.out.Write(append(b, '\n'))
			return err
		},
	}
}

func clusterCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "members, leader, term, commit index and health, asking every --addr member",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			type row struct {
				addr string
				st   *api.ClusterStatus
				err  error
			}
			var rows []row
			for _, addr := range client.ParseAddrs(a.addr) {
				c, err := client.New([]string{addr})
				if err != nil {
					return usage("hpcsub: %v", err)
				}
				c.Attempts = 1
				var st *api.ClusterStatus
				err = c.Do(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
					ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
					defer cancel()
					var err error
					st, err = api.NewClusterServiceClient(conn).Status(ctx, &api.ClusterStatusRequest{})
					return err
				})
				c.Close()
				rows = append(rows, row{addr, st, err})
			}
			if a.asJSON {
				out := &api.ClusterStatus{}
				for _, r := range rows {
					if r.st != nil {
						out = r.st
						break
					}
				}
				printJSON(a.out, out)
				return nil
			}
			tw := tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ADDRESS\tMEMBER\tSTATE\tLEADER\tTERM\tCOMMIT\tAPPLIED\tLAST CONTACT\tJOBS\tHEALTH")
			var members []*api.Member
			for _, r := range rows {
				if r.err != nil {
					fmt.Fprintf(tw, "%s\t-\t-\t-\t-\t-\t-\t-\t-\tunreachable: %s\n", r.addr, oneLine(r.err.Error()))
					continue
				}
				st := r.st
				health := "ok"
				if st.GetLeaderId() == "" {
					health = "no leader"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%s\n", r.addr, st.GetId(), st.GetState(), st.GetLeaderId(),
					st.GetTerm(), st.GetCommitIndex(), st.GetAppliedIndex(), st.GetLastContact(), st.GetJobs(), health)
				if len(members) == 0 {
					members = st.GetMembers()
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(members) > 0 {
				fmt.Fprintln(a.out, "\nMembers:")
				tw = tabwriter.NewWriter(a.out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "  ID\tRAFT\tAPI\tSUFFRAGE\tLEADER")
				for _, m := range members {
					fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%v\n", m.GetId(), m.GetRaftAddress(), m.GetGrpcAddress(), m.GetSuffrage(), m.GetLeader())
				}
				_ = tw.Flush()
			}
			for _, r := range rows {
				if r.err == nil {
					return nil
				}
			}
			return fmt.Errorf("no member answered")
		},
	}
}
