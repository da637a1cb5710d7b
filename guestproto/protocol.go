// Package guestproto is the host<->guest protocol of vhpc: the names,
// types and encodings of the files that the node agent and hpc-guest
// exchange over the job share (a 9p filesystem with mount tag "jobshare").
// guest/README.md describes the protocol itself.
//
// Both ends import it: the host side (nodeagent/runner, nodeagent/agent,
// nodeagent/gpumetrics) and hpc-guest (package guest). It imports only the
// standard library, so hpc-guest stays a static, cgo-free binary; keep it
// that way (cmd/hpc-guest's tests check the guest's import graph).
package guestproto

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Protocol constants shared by the host and the guest.
const (
	// ProtocolVersion is written into every Request and Exit. A guest that
	// sees a newer major version it does not know fails the job with a
	// clear error instead of guessing.
	ProtocolVersion = 1
	// ShareTag is the 9p mount tag of the job share.
	ShareTag = "jobshare"
	// ShareMount is where the guest mounts the job share.
	ShareMount = "/jobshare"
	// DatasetsMount holds the job's read-only datasets, one folder each
	// (/datasets/<name>, 9p tags DatasetTag(i)).
	DatasetsMount = "/datasets"
	// ScratchMount is where the guest mounts the scratch disk.
	ScratchMount = "/scratch"
	// ScratchSerial is the virtio-blk serial of the scratch disk; the guest
	// finds the disk through /dev/disk/by-id-like lookup of this serial in
	// /sys/block/*/serial.
	ScratchSerial = "vhpc-scratch"
	// RequestFile is written by the host before boot, read by the guest.
	RequestFile = "job.json"
	// OutputFile receives the job's stdout and stderr, appended as they come.
	OutputFile = "output.log"
	// StartedFile is written atomically by the guest just before the job
	// starts (content: Started); the host reports the job "running" then.
	StartedFile = "started.json"
	// ExitFile is written atomically by the guest when the job has ended.
	ExitFile = "exit.json"
	// WorkDir is the job's working directory inside the share: stage-in
	// writes into it, stage-out reads from it.
	WorkDir = "work"
	// JobUID and JobGID are the unprivileged identity jobs run as.
	JobUID = 1000
	JobGID = 1000
)

// Request is the content of job.json: everything the guest needs to run
// the job. The host writes it with WriteRequest before it starts the domain.
type Request struct {
	Version int    `json:"version"`
	AllocID string `json:"allocId"`
	JobID   uint64 `json:"jobId"`
	Task    int64  `json:"task"`
	Rank    int    `json:"rank"`
	Attempt uint64 `json:"attempt"`
	// Argv is the command to run; when empty, Script is run with /bin/sh.
	Argv   []string          `json:"argv,omitempty"`
	Script string            `json:"script,omitempty"`
	Env    map[string]string `json:"env,omitempty"`
	UID    int               `json:"uid"`
	GID    int               `json:"gid"`
	NCPUs  int               `json:"ncpus"`
	// MemoryMiB is the guest's memory, exported as VHPC_MEMORY_MIB.
	MemoryMiB int64 `json:"memoryMiB"`
	// Scratch says whether a scratch disk is attached.
	Scratch bool `json:"scratch"`
	// Network is the job's private network (jobs of more than one node);
	// nil: the guest has no network.
	Network *Network `json:"network,omitempty"`
	// MPI is the job's MPI flavour: "openmpi", "mpich" or "" (none). With
	// one, rank 0 starts Argv/Script under that MPI's launcher across all
	// peers (TasksPerNode ranks each) and the other guests serve remote
	// starts until rank 0 ends; without one, every guest runs the command.
	MPI string `json:"mpi,omitempty"`
	// TasksPerNode and CPUsPerTask shape the ranks (MPI slots and binding).
	TasksPerNode int `json:"tasksPerNode,omitempty"`
	CPUsPerTask  int `json:"cpusPerTask,omitempty"`
	// Datasets are mounted read-only at DatasetsMount/<Name> from the 9p
	// share Tag before the job starts.
	Datasets []Dataset `json:"datasets,omitempty"`
}

// Dataset is one read-only dataset share of a job.
type Dataset struct {
	Name string `json:"name"`
	Tag  string `json:"tag"`
}

// MaxDatasets bounds a job's datasets (jobspec.MaxDatasets).
const MaxDatasets = 16

// DatasetTag is the 9p mount tag of a job's i-th dataset share.
func DatasetTag(i int) string { return "vhpcds" + strconv.Itoa(i) }

// Validate reports whether the request can be run.
func (r Request) Validate() error {
	if r.Version != ProtocolVersion {
		return fmt.Errorf("job.json: protocol version %d, this hpc-guest speaks %d", r.Version, ProtocolVersion)
	}
	if len(r.Argv) == 0 && r.Script == "" {
		return errors.New("job.json: neither argv nor script is set")
	}
	if r.UID < 0 || r.GID < 0 {
		return fmt.Errorf("job.json: negative uid %d or gid %d", r.UID, r.GID)
	}
	switch r.MPI {
	case "", "openmpi", "mpich":
	default:
		return fmt.Errorf("job.json: mpi %q: want openmpi, mpich or none", r.MPI)
	}
	if r.MPI != "" && r.Network == nil {
		return errors.New("job.json: an MPI job needs a network")
	}
	if len(r.Datasets) > MaxDatasets {
		return fmt.Errorf("job.json: %d datasets; at most %d", len(r.Datasets), MaxDatasets)
	}
	seen := map[string]bool{}
	for i, d := range r.Datasets {
		if d.Tag != DatasetTag(i) {
			return fmt.Errorf("job.json: dataset %d has tag %q, want %q", i, d.Tag, DatasetTag(i))
		}
		if d.Name == "" || d.Name == "." || d.Name == ".." || len(d.Name) > 64 || strings.Trim(d.Name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("job.json: dataset name %q: want 1..64 of letters, digits, '.', '_', '-'", d.Name)
		}
		if seen[d.Name] {
			return fmt.Errorf("job.json: dataset %q twice", d.Name)
		}
		seen[d.Name] = true
	}
	if r.Network != nil {
		return r.Network.Validate()
	}
	return nil
}

// Environ returns the job's environment: a fixed base, the job's own variables,
// then the VHPC_* variables (which the job cannot override), sorted by name
// so that the result is deterministic.
func (r Request) Environ() []string {
	env := map[string]string{
		"PATH":  "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
		"HOME":  filepath.Join(ShareMount, WorkDir),
		"SHELL": "/bin/sh",
		"USER":  "job",
	}
	for k, v := range r.Env {
		env[k] = v
	}
	env["VHPC_ALLOC_ID"] = r.AllocID
	env["VHPC_JOB_ID"] = strconv.FormatUint(r.JobID, 10)
	env["VHPC_TASK"] = strconv.FormatInt(r.Task, 10)
	env["VHPC_RANK"] = strconv.Itoa(r.Rank)
	env["VHPC_ATTEMPT"] = strconv.FormatUint(r.Attempt, 10)
	env["VHPC_NCPUS"] = strconv.Itoa(r.NCPUs)
	env["VHPC_MEMORY_MIB"] = strconv.FormatInt(r.MemoryMiB, 10)
	env["VHPC_SHARE"] = ShareMount
	env["VHPC_WORKDIR"] = filepath.Join(ShareMount, WorkDir)
	if r.Scratch {
		env["VHPC_SCRATCH"] = ScratchMount
	}
	if len(r.Datasets) > 0 {
		env["VHPC_DATASETS"] = DatasetsMount
	}
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, k+"="+env[k])
	}
	return out
}

// Exit is the content of exit.json, the guest's last word.
type Exit struct {
	Version  int `json:"version"`
	ExitCode int `json:"exitCode"`
	// Signal is the signal that ended the job, if any ("terminated").
	Signal string `json:"signal,omitempty"`
	// BootSeconds is the guest's uptime when the job started (kernel boot +
	// hpc-guest setup); RunSeconds is the job's own run time.
	BootSeconds float64 `json:"bootSeconds"`
	RunSeconds  float64 `json:"runSeconds"`
	// Error is set when hpc-guest itself failed (bad request, mount
	// failure, command not found); ExitCode is then 127 or 126.
	Error string `json:"error,omitempty"`
	// Stopped is true when the host asked the guest to stop (ACPI power
	// button) and the job was terminated because of it.
	Stopped bool `json:"stopped,omitempty"`
}

// Started is the content of started.json.
type Started struct {
	Version     int     `json:"version"`
	BootSeconds float64 `json:"bootSeconds"`
}

// WriteStarted writes started.json into dir atomically (guest side).
func WriteStarted(dir string, s Started) error {
	s.Version = ProtocolVersion
	return writeJSONAtomic(filepath.Join(dir, StartedFile), s)
}

// WriteRequest writes job.json into the share directory dir (host side).
func WriteRequest(dir string, r Request) error {
	return writeJSONAtomic(filepath.Join(dir, RequestFile), r)
}

// ReadRequest reads job.json from the share directory dir (guest side).
func ReadRequest(dir string) (Request, error) {
	var r Request
	b, err := os.ReadFile(filepath.Join(dir, RequestFile))
	if err != nil {
		return r, fmt.Errorf("read job request: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decode %s: %w", RequestFile, err)
	}
	return r, nil
}

// WriteExit writes exit.json into dir atomically: a temporary file is
// written and fsynced, renamed over exit.json, and the directory fsynced, so
// the host sees either no exit.json or a complete one.
func WriteExit(dir string, e Exit) error {
	e.Version = ProtocolVersion
	return writeJSONAtomic(filepath.Join(dir, ExitFile), e)
}

// ReadExit reads exit.json from dir (host side). It returns an error that
// wraps fs.ErrNotExist when the guest has not written it.
func ReadExit(dir string) (Exit, error) {
	var e Exit
	b, err := os.ReadFile(filepath.Join(dir, ExitFile))
	if err != nil {
		return e, fmt.Errorf("read exit status: %w", err)
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("decode %s: %w", ExitFile, err)
	}
	return e, nil
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Base(path), err)
	}
	b = append(b, '\n')
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("fsync %s: %w", filepath.Base(path), err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", filepath.Base(path), err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", filepath.Base(path), err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		// fsync of the directory makes the rename durable; 9p may not
		// support it, which is harmless (the host sees the rename anyway).
		_ = d.Sync()
		d.Close()
	}
	return nil
}
