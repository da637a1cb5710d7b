// Command hpcsub is the vhpc user CLI: `hpcsub job.yaml` submits a job;
// its subcommands show the queue, a job, logs and nodes, and cancel jobs.
//
// Exit codes: 0 ok, 2 bad input or usage, 1 anything else; with --wait,
// the job's own exit code.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/client"
)

// exitError carries a specific exit status out of a command.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func usage(format string, args ...any) error {
	return exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// app is the state shared by all subcommands.
type app struct {
	addr   string
	asJSON bool
	out    io.Writer
	errOut io.Writer
}

// client dials the --addr members; with nothing listening at any of
// them, calls fail at once with advice (client.NoMasterError).
func (a *app) client() (*client.Client, error) {
	c, err := client.New(client.ParseAddrs(a.addr))
	if err != nil {
		return nil, err
	}
	c.FailWhenRefused = true
	return c, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes the CLI and returns the process exit status.
func run(ctx context.Context, args []string, out, errOut io.Writer) int {
	a := &app{out: out, errOut: errOut}
	root := rootCmd(a)
	root.SetArgs(args)
	root.SetOut(out)
	root.SetErr(errOut)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintln(errOut, ee.err)
		}
		return ee.code
	}
	if st, ok := status.FromError(err); ok && st.Code() == codes.InvalidArgument {
		fmt.Fprintln(errOut, st.Message())
		return 2
	} else if ok {
		fmt.Fprintf(errOut, "hpcsub: %s: %s\n", st.Code(), st.Message())
		return 1
	}
	msg := err.Error()
	if strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "unknown flag") ||
		strings.HasPrefix(msg, "unknown shorthand") || strings.Contains(msg, "arg(s)") || strings.Contains(msg, "invalid argument") {
		fmt.Fprintln(errOut, "hpcsub:", msg)
		return 2
	}
	fmt.Fprintln(errOut, "hpcsub:", msg)
	return 1
}

func rootCmd(a *app) *cobra.Command {
	var sub submitFlags
	root := &cobra.Command{
		Use:   "hpcsub [flags] JOB.yaml",
		Short: "submit and inspect vhpc batch jobs",
		Long: `hpcsub submits a job.yaml to the vhpc queue master and inspects the queue.

  hpcsub job.yaml                submit; prints "Submitted job N"
  hpcsub --dry-run job.yaml      validate, print the canonical spec and where it would start
  hpcsub --wait job.yaml         submit and exit with the job's exit code
  hpcsub --follow job.yaml       submit, print progress and output until the job ends
  hpcsub fetch ID [DIR]          download a finished job's stageOut files (every array task's)
  hpcsub queue | show ID | cancel ID | logs ID | nodes | cluster | schema
  hpcsub login | whoami          get a short-lived user credential; show who you are

stageIn files are uploaded with the submission to the cluster's store (only
what the store lacks is sent); --wait and --follow download the stageOut
files into the job file's directory when the job succeeds.

The master is chosen with --addr or HPC_ADDR (comma-separated; tried in turn).`,
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usage("hpcsub: name a job file (hpcsub job.yaml) or a command; see hpcsub --help")
			}
			return a.submit(cmd.Context(), args[0], sub)
		},
	}
	def := os.Getenv("HPC_ADDR")
	if def == "" {
		def = "127.0.0.1:7070"
	}
	root.PersistentFlags().StringVar(&a.addr, "addr", def, "master address(es), comma-separated (env HPC_ADDR)")
	root.PersistentFlags().BoolVar(&a.asJSON, "json", false, "print JSON instead of text")
	root.Flags().BoolVar(&sub.dryRun, "dry-run", false, "validate and show the canonical spec and estimate; enqueue nothing")
	root.Flags().BoolVar(&sub.parsable, "parsable", false, "print only the job id")
	root.Flags().BoolVar(&sub.wait, "wait", false, "wait for the job to end and exit with its exit code")
	root.Flags().BoolVar(&sub.follow, "follow", false, "print progress and output until the job ends (implies --wait)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usage("hpcsub: %v", err) })
	root.AddCommand(queueCmd(a), showCmd(a), cancelCmd(a), logsCmd(a), fetchCmd(a), nodesCmd(a), clusterCmd(a), schemaCmd(a))
	root.AddCommand(loginCmd(a), whoamiCmd(a)) // login.go
	return root
}
