package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"go.yaml.in/yaml/v3"

	"vhpc/scheduler/core"
)

// schedulerFile is the optional --scheduler-config YAML: what an admin sets
// beyond the flags. Unknown fields are errors; the result is checked with
// core.Config.Validate, the check hpcsim's flags use too.
//
//	policy: default
//	estimates: predicted  # or request: plan with each user's history or with the walltime
//	history: 2            # predicted: runtimes of a user's last jobs averaged
//	predictBy: kind       # or user: average the user's last runs of the job's kind, or of any kind
//	accuracyRuns: 4       # kind: a new kind's walltime times the user's accuracy over these last runs
//	reservations: 4
//	backfill: shortest    # or packing or priority: the order of the jobs behind the reservations
//	smallJobArea: 0       # core-seconds up to which packing backfills a job first
//	drainPacking: 0.5     # shortest backfill packs the drain of a starving job this wide (share of the machine; 0: off)
//	drainSmallArea: 36000 # core-seconds up to which a packed drain backfills a job first
//	drainYield: 10m       # jobs planned this short start before a packed drain's lead, delaying it at most this long (0: off)
//	slowdownGuard: 600    # expansion factor from which a job goes first (0: off)
//	speculativeBackfill: true  # the default: while a starving job leads, start jobs on their predictions; requeue those that overrun into its reservation
//	speculativeSlack: 1   # such a start needs a hole of its prediction plus this many times it (0: the prediction alone)
//	starvationAge: 48h    # a job starves (goes first) after at most this wait,
//	starvationBacklog: 2  # or sooner, once it has waited this x the backlog (0: the age alone),
//	starvationFloor: 24h  # but never before this
//	preemption: requeue   # or off (the default)
//	stopGrace: 1m         # how long stopping a preempted guest is planned to take
//	shares: {physics: 2, chemistry: 1}
//	quotas:
//	  physics: {gpus: 16, cores: 512, runningJobs: 100}
//	partitions:
//	  gpu: {maxWalltime: 48h, defaultWalltime: 4h, maxNodes: 8, limits: {gpus: 64}}
type schedulerFile struct {
	Policy        string                   `yaml:"policy"`
	Estimates     string                   `yaml:"estimates"`
	Reservations  *int                     `yaml:"reservations"`
	Backfill      string                   `yaml:"backfill"`
	SmallJobArea  *float64                 `yaml:"smallJobArea"`
	DrainPacking  *float64                 `yaml:"drainPacking"`
	DrainSmall    *float64                 `yaml:"drainSmallArea"`
	SlowdownGuard *float64                 `yaml:"slowdownGuard"`
	HistoryLen    *int                     `yaml:"history"`
	PredictBy     string                   `yaml:"predictBy"`
	AccuracyRuns  *int                     `yaml:"accuracyRuns"`
	Speculative   *bool                    `yaml:"speculativeBackfill"`
	SpecSlack     *float64                 `yaml:"speculativeSlack"`
	StarveAge     string                   `yaml:"starvationAge"`
	StarveBacklog *float64                 `yaml:"starvationBacklog"`
	StarveFloor   string                   `yaml:"starvationFloor"`
	DrainYield    string                   `yaml:"drainYield"`
	Preemption    string                   `yaml:"preemption"`
	StopGrace     string                   `yaml:"stopGrace"`
	Shares        map[string]float64       `yaml:"shares"`
	Quotas        map[string]limitsFile    `yaml:"quotas"`
	Partitions    map[string]partitionFile `yaml:"partitions"`
}

type limitsFile struct {
	GPUs        int `yaml:"gpus"`
	Cores       int `yaml:"cores"`
	RunningJobs int `yaml:"runningJobs"`
}

type partitionFile struct {
	MaxWalltime     string     `yaml:"maxWalltime"`
	DefaultWalltime string     `yaml:"defaultWalltime"`
	MaxNodes        int        `yaml:"maxNodes"`
	Limits          limitsFile `yaml:"limits"`
}

// core converts l; core.Config.Validate checks the values.
func (l limitsFile) core() core.Limits {
	return core.Limits{GPUs: l.GPUs, Cores: l.Cores, RunningJobs: l.RunningJobs}
}

func parseDur(what, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%s: %q is not a duration such as 48h", what, s)
	}
	return d, nil
}

// loadSchedulerFile applies a --scheduler-config file onto cfg.
func loadSchedulerFile(path string, cfg *core.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--scheduler-config: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var f schedulerFile
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) { // an empty file sets nothing
		return fmt.Errorf("%s: %w", path, err)
	}
	if f.Policy != "" {
		cfg.Policy = f.Policy
	}
	if f.Estimates != "" {
		cfg.Estimate = f.Estimates
	}
	if f.Reservations != nil {
		cfg.ReservationDepth = *f.Reservations
	}
	if f.Backfill != "" {
		cfg.Backfill = f.Backfill
	}
	if f.SmallJobArea != nil {
		cfg.SmallJobArea = *f.SmallJobArea
	}
	if f.DrainPacking != nil {
		cfg.DrainPacking = *f.DrainPacking
	}
	if f.DrainSmall != nil {
		cfg.DrainSmallArea = *f.DrainSmall
	}
	if f.SlowdownGuard != nil {
		cfg.SlowdownGuard = *f.SlowdownGuard
	}
	if f.HistoryLen != nil {
		cfg.HistoryLen = *f.HistoryLen
	}
	if f.PredictBy != "" {
		cfg.PredictBy = f.PredictBy
	}
	if f.AccuracyRuns != nil {
		cfg.AccuracyLen = *f.AccuracyRuns
	}
	if f.Speculative != nil {
		cfg.SpeculativeBackfill = *f.Speculative
	}
	if f.SpecSlack != nil {
		cfg.SpeculativeSlack = *f.SpecSlack
	}
	if f.StarveBacklog != nil {
		cfg.StarvationBacklog = *f.StarveBacklog
	}
	for _, d := range []struct {
		key, v string
		to     *time.Duration
	}{{"starvationAge", f.StarveAge, &cfg.StarvationAge}, {"starvationFloor", f.StarveFloor, &cfg.StarvationFloor}, {"drainYield", f.DrainYield, &cfg.DrainYield}} {
		if d.v == "" {
			continue
		}
		v, err := parseDur(path+": "+d.key, d.v)
		if err != nil {
			return err
		}
		*d.to = v
	}
	if f.Preemption != "" {
		cfg.Preemption = f.Preemption
	}
	if f.StopGrace != "" {
		g, err := parseDur(path+": stopGrace", f.StopGrace)
		if err != nil {
			return err
		}
		if g < time.Second || g > time.Hour {
			return fmt.Errorf("%s: stopGrace %s: want 1s..1h", path, g)
		}
		cfg.StopGrace = g
	}
	for d, w := range f.Shares {
		if cfg.Shares == nil {
			cfg.Shares = map[string]float64{}
		}
		cfg.Shares[d] = w
	}
	for d, l := range f.Quotas {
		if cfg.Quotas == nil {
			cfg.Quotas = map[string]core.Limits{}
		}
		cfg.Quotas[d] = l.core()
	}
	for name, p := range f.Partitions {
		what := path + ": partitions." + name
		maxW, err := parseDur(what+".maxWalltime", p.MaxWalltime)
		if err != nil {
			return err
		}
		defW, err := parseDur(what+".defaultWalltime", p.DefaultWalltime)
		if err != nil {
			return err
		}
		if cfg.Partitions == nil {
			cfg.Partitions = map[string]core.Partition{}
		}
		cfg.Partitions[name] = core.Partition{MaxWalltime: maxW, DefaultWalltime: defW, MaxNodes: p.MaxNodes, Limits: p.Limits.core()}
	}
	// The one check of the values, the same as hpcsim's flags get
	// (core.Config.Validate: shares, quotas and partitions too).
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
