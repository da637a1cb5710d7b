package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/jobdata"
	"vhpc/jobspec"
	"vhpc/scheduler/model"
)

// stagesOf converts the spec's stages for jobdata.
func stagesOf(in []jobspec.Stage) []jobdata.Stage {
	out := make([]jobdata.Stage, 0, len(in))
	for _, s := range in {
		out = append(out, jobdata.Stage{From: s.From, To: s.To})
	}
	return out
}

// collectInputs lists the job's stageIn files under dir, refusing a
// missing path, one that leaves dir or a symlink before anything is sent.
func collectInputs(spec *jobspec.Spec, dir string) (*jobdata.Collected, error) {
	c, err := jobdata.Collect(dir, stagesOf(spec.StageIn), jobdata.CollectOptions{})
	if err != nil {
		return nil, exitError{code: 2, err: fmt.Errorf("stageIn: %w", err)}
	}
	return c, nil
}

// dataStore asks the master where the department's files go, and for
// the token that opens its repository there (and job's outputs
// repository, when job is not 0).
func dataStore(ctx context.Context, c *client.Client, department string, job uint64) (*api.DataStoreInfo, imagestore.TokenSource, error) {
	return client.DataStore(ctx, c, &api.DataStoreRequest{Department: department, Job: job})
}

// uploadInputs sends the job's stageIn files to the cluster's store and
// returns the file set's digest for SubmitRequest.inputs. Files the store
// holds already are not sent again. Large uploads show their progress.
func (a *app) uploadInputs(ctx context.Context, c *client.Client, spec *jobspec.Spec, dir string) (string, error) {
	files, err := collectInputs(spec, dir)
	if err != nil {
		return "", err
	}
	defer files.Close()
	for _, s := range files.Skipped {
		fmt.Fprintf(a.errOut, "hpcsub: stageIn: skipping %s (symlinks and special files are not staged)\n", s)
	}
	info, tokens, err := dataStore(ctx, c, spec.Department, 0)
	if err != nil {
		return "", fmt.Errorf("stageIn: %w", err)
	}
	if n := files.Bytes(); n > info.GetMaxInputBytes() {
		return "", exitError{code: 2, err: fmt.Errorf("stageIn: %s of input files; this cluster takes at most %s per job", humanBytes(n), humanBytes(info.GetMaxInputBytes()))}
	}
	prog := a.progress("uploading inputs", files.Bytes())
	p, err := jobdata.Push(ctx, info.GetRegistry(), jobdata.RepositoryName(spec.Department), files, imagestore.Options{Progress: prog.update, Token: tokens})
	prog.done()
	if err != nil {
		return "", fmt.Errorf("stageIn: upload to %s: %w (run again: what arrived is not sent twice)", info.GetRegistry(), err)
	}
	if !a.asJSON {
		fmt.Fprintf(a.errOut, "hpcsub: stageIn: %d files, %s (%s sent, the rest was in the store)\n", p.Files, humanBytes(p.Bytes), humanBytes(p.SentBytes))
	}
	return p.Digest, nil
}

// outputSet is one allocation's stored outputs that fetch downloads.
type outputSet struct {
	alloc string
	task  int64
	set   string
	// repo holds the set: the job's outputs repository, or the
	// department's for outputs stored before jobs had their own.
	repo string
}

// outputSets picks, for each task of the job (one for a plain job), the
// outputs of its latest attempt that stored any.
func outputSets(j *api.Job) []outputSet {
	best := map[int64]*api.Allocation{}
	for _, al := range j.GetAllocations() {
		if al.GetOutputs() == "" {
			continue
		}
		if b := best[al.GetTask()]; b == nil || al.GetAttempt() > b.GetAttempt() {
			best[al.GetTask()] = al
		}
	}
	var out []outputSet
	for task, al := range best {
		repo := al.GetOutputsRepository()
		if repo == "" {
			repo = jobdata.RepositoryName(j.GetDepartment())
		}
		out = append(out, outputSet{alloc: al.GetId(), task: task, set: al.GetOutputs(), repo: repo})
	}
	sort.Slice(out, func(i, k int) bool { return out[i].task < out[k].task })
	return out
}

// fetchOutputs downloads the job's outputs into dir: every task's set
// (an array's frames side by side). Two tasks that wrote different files
// at one path are refused before anything is written.
func (a *app) fetchOutputs(ctx context.Context, c *client.Client, j *api.Job, dir string) error {
	var spec struct {
		StageOut []jobspec.Stage `json:"stageOut"`
	}
	_ = jsonUnmarshal(j.GetSpecJson(), &spec)
	if len(spec.StageOut) == 0 {
		return usage("hpcsub: job %d has no stageOut: there is nothing to fetch", j.GetId())
	}
	if d := j.GetArtifactsDeleted(); d != nil {
		return fmt.Errorf("job %d's outputs were deleted from the store at %s, after the cluster's retention period", j.GetId(), d.AsTime().Local().Format(time.RFC3339))
	}
	sets := outputSets(j)
	if len(sets) == 0 {
		if !model.JobState(j.GetState()).Terminal() {
			return usage("hpcsub: job %d is %s; its outputs are uploaded when it ends (hpcsub --wait, or fetch later)", j.GetId(), j.GetState())
		}
		return fmt.Errorf("job %d stored no outputs (%s)", j.GetId(), missingOutputs(j))
	}
	info, tokens, err := dataStore(ctx, c, j.GetDepartment(), j.GetId())
	if err != nil {
		return err
	}
	opts := imagestore.Options{Token: tokens}
	var files []fetchFile
	for _, s := range sets {
		set, err := jobdata.Inspect(ctx, info.GetRegistry(), s.repo, s.set, opts)
		if err != nil {
			return fmt.Errorf("outputs of %s: %w", s.alloc, err)
		}
		for _, f := range set.Files {
			files = append(files, fetchFile{File: f, alloc: s.alloc})
		}
	}
	if err := checkFetchConflicts(files); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var total int64
	for _, f := range files {
		total += f.Size
	}
	prog := a.progress("downloading outputs", total)
	var done int64
	for _, s := range sets {
		base := done
		set, err := jobdata.Pull(ctx, info.GetRegistry(), s.repo, s.set, dir, imagestore.Options{Token: tokens, Progress: func(n, _ int64) { prog.update(base+n, total) }})
		if err != nil {
			prog.done()
			return fmt.Errorf("outputs of %s: %w", s.alloc, err)
		}
		done += set.Bytes()
	}
	prog.done()
	if !a.asJSON {
		fmt.Fprintf(a.errOut, "hpcsub: job %d: fetched %d files (%s) from %d output sets into %s\n", j.GetId(), len(files), humanBytes(total), len(sets), dir)
		if m := missingOutputs(j); m != "" {
			fmt.Fprintf(a.errOut, "hpcsub: job %d: %s\n", j.GetId(), m)
		}
	}
	return nil
}

// fetchFile is one file of the sets fetch lays out, with its allocation.
type fetchFile struct {
	jobdata.File
	alloc string
}

func checkFetchConflicts(files []fetchFile) error {
	seen := map[string]fetchFile{}
	for _, f := range files {
		if prev, ok := seen[f.Path]; ok && prev.Digest != f.Digest {
			return fmt.Errorf("allocations %s and %s both wrote %s with different contents; give each task its own file names (e.g. with $VHPC_ARRAY_TASK)", prev.alloc, f.alloc, f.Path)
		}
		seen[f.Path] = f
	}
	return nil
}

// missingOutputs says which stageOut sources the job did not produce.
func missingOutputs(j *api.Job) string {
	var parts []string
	for _, al := range j.GetAllocations() {
		if m := al.GetOutputsMissing(); len(m) > 0 {
			parts = append(parts, fmt.Sprintf("%s did not produce %s", al.GetId(), strings.Join(m, ", ")))
		}
	}
	return strings.Join(parts, "; ")
}

func fetchCmd(a *app) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch ID [DIR]",
		Short: "download a finished job's stageOut files (every array task's) into DIR (default: the current directory)",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseJobID(args[0])
			if err != nil {
				return err
			}
			dir := "."
			if len(args) == 2 {
				dir = args[1]
			}
			c, err := a.client()
			if err != nil {
				return usage("hpcsub: %v", err)
			}
			defer c.Close()
			var j *api.Job
			err = c.Do(cmd.Context(), func(ctx context.Context, conn *grpc.ClientConn) error {
				var err error
				j, err = client.Jobs(conn).Get(ctx, &api.GetJobRequest{Id: id})
				return err
			})
			if err != nil {
				return err
			}
			return a.fetchOutputs(cmd.Context(), c, j, dir)
		},
	}
}

// humanBytes prints a size for people.
func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// progressLine prints a transfer's progress to stderr at most once a
// second, for transfers of at least progressMinBytes.
type progressLine struct {
	w     io.Writer
	what  string
	total int64
	last  time.Time
	shown bool
}

// progressMinBytes: smaller transfers print no progress.
const progressMinBytes = 32 << 20

func (a *app) progress(what string, total int64) *progressLine {
	p := &progressLine{w: a.errOut, what: what, total: total, last: time.Now()}
	if a.asJSON || total < progressMinBytes {
		p.w = nil
	}
	return p
}

func (p *progressLine) update(done, total int64) {
	if p.w == nil || time.Since(p.last) < time.Second {
		return
	}
	p.last, p.shown = time.Now(), true
	if total > 0 && total != p.total { // an upload counts hashing and sending: scale to the files' size
		done = int64(float64(done) / float64(total) * float64(p.total))
	}
	done = min(done, p.total)
	fmt.Fprintf(p.w, "hpcsub: %s: %s of %s (%.0f%%)\n", p.what, humanBytes(done), humanBytes(p.total), 100*float64(done)/float64(max(p.total, 1)))
}

func (p *progressLine) done() {
	if p.w != nil && p.shown {
		fmt.Fprintf(p.w, "hpcsub: %s: done\n", p.what)
	}
}

// jsonUnmarshal decodes a job's spec_json.
func jsonUnmarshal(s string, v any) error { return json.Unmarshal([]byte(s), v) }
