package core

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"vhpc/scheduler/model"
)

// Policy names accepted in Config.Policy.
const (
	// PolicyFCFS starts jobs strictly in submit order: the first job that
	// cannot start blocks every job behind it. No backfill.
	PolicyFCFS = "fcfs"
	// PolicyFCFSEasy orders by submit time, reserves for the first blocked
	// job (EASY backfill) and backfills anything that does not delay it.
	PolicyFCFSEasy = "fcfs-easy"
	// PolicySJFEasy orders by estimate, shortest first (ties by submit
	// time), reserves for the first blocked job and backfills the rest in
	// that order: the classic baseline that favours short jobs and lets
	// long ones wait. hpcsim --suite replays it as a baseline.
	PolicySJFEasy = "sjf-easy"
	// PolicyDefault orders by multifactor priority (age, fair-share, size,
	// QOS), holds conservative reservations for the first
	// Config.ReservationDepth blocked jobs and backfills the rest.
	PolicyDefault = "default"
)

// Estimate modes accepted in Config.Estimate.
const (
	// EstimateRequest plans with each job's requested walltime.
	EstimateRequest = "request"
	// EstimatePredicted plans with a per-user prediction from Input.History
	// (mean of the user's last runtimes, capped by the walltime). The
	// walltime stays the kill limit; the prediction only shapes the plan.
	// A running job that outlives its prediction is expected to run to its
	// deadline (the correction), and while a starving job (past
	// StarvationAge) leads the queue every job is planned with its
	// walltime, so jobs that outrun their predictions cannot keep pushing
	// the starving job's reservation back.
	EstimatePredicted = "predicted"
)

// Predictors accepted in Config.PredictBy (EstimatePredicted).
const (
	// PredictKind predicts a job's runtime from its user's last runs of
	// the same kind (model.JobKind: name, image, partition, shape and
	// requested walltime); a kind the user has not run lately gets its
	// walltime times the user's recent accuracy (runtime over walltime,
	// Config.AccuracyLen runs). The default.
	PredictKind = "kind"
	// PredictUser predicts from the user's last runs of any kind
	// (Tsafrir, Etsion and Feitelson's EASY++ predictor).
	PredictUser = "user"
)

// Preemption modes accepted in Config.Preemption.
const (
	// PreemptOff never stops running work to make room (the default).
	PreemptOff = "off"
	// PreemptRequeue lets a job that cannot start now stop running gangs of
	// a strictly lower QOS (low < normal < high) and requeue them: they
	// start again later as a new attempt, without using up a retry.
	PreemptRequeue = "requeue"
)

// Backfill orders accepted in Config.Backfill (PolicyDefault only).
const (
	// BackfillPacking tries the jobs left after the reservations in packing
	// order: starving and urgent jobs (Config.SlowdownGuard) first, then
	// small jobs (area at most Config.SmallJobArea; none by default), the
	// most slowed down (highest expansion factor) first, then the rest
	// largest area first, so the long jobs fill the holes in front of a
	// reservation and the short ones what is left (the default).
	BackfillPacking = "packing"
	// BackfillPriority tries them in priority order, like the jobs ahead
	// of the reservations.
	BackfillPriority = "priority"
	// BackfillShortest tries them shortest estimate first (starving and
	// urgent jobs still first): EASY++'s shortest-job backfilling, which
	// fills the holes with the jobs whose slowdown gains most.
	BackfillShortest = "shortest"
)

// Age modes accepted in Config.AgeMode.
const (
	// AgeWait makes the age factor wait/MaxAge, saturating at 1.
	AgeWait = "wait"
	// AgeExpansion makes it 1 - 1/XF with the expansion factor
	// XF = (wait + estimate)/estimate: short jobs rise fast, long jobs
	// slowly but without bound, so nothing starves.
	AgeExpansion = "expansion"
)

// Weights are the multipliers of the priority factors; each factor is in
// [0,1], so the priority is at most the sum of the weights.
type Weights struct {
	Age       float64
	FairShare float64
	Size      float64
	QOS       float64
}

// Limits bound what a department or a partition may hold at once; zero
// means no limit.
type Limits struct {
	GPUs        int
	Cores       int
	RunningJobs int
}

// Partition is a named node set (Node.Partition == name) with its own limits
// and defaults.
type Partition struct {
	// MaxWalltime rejects (as never satisfiable) longer jobs; 0 = none.
	MaxWalltime time.Duration
	// DefaultWalltime applies to jobs with Walltime 0; 0 = Config's.
	DefaultWalltime time.Duration
	// MaxNodes is the largest gang the partition accepts; 0 = none.
	MaxNodes int
	// Limits bound the partition's running work.
	Limits Limits
}

// Config is the scheduling policy. The server builds it from its config
// file; hpcsim from flags. Start from DefaultConfig and change fields.
type Config struct {
	// Policy is one of PolicyFCFS, PolicyFCFSEasy, PolicyDefault.
	Policy string
	// Estimate is EstimateRequest or EstimatePredicted.
	Estimate string
	// ReservationDepth is how many blocked jobs get a reservation under
	// PolicyDefault (conservative backfill for the first N; 1 = EASY). A
	// job reserved behind the gangs it preempts counts as one of them.
	ReservationDepth int
	// Backfill is the order in which PolicyDefault tries the jobs behind
	// its reservations: BackfillPacking ("" too) or BackfillPriority.
	// Priority decides who is reserved (and so who cannot be overtaken);
	// the backfill order only decides who gets the holes.
	Backfill string
	// SmallJobArea is the job area (core-seconds of the estimate, GPUs
	// counted with GPUWeight) up to which BackfillPacking treats a job as
	// small and tries it before the large ones.
	SmallJobArea float64
	// SlowdownGuard bounds how far PolicyDefault lets a job fall behind
	// its own length: a job whose expansion factor (wait + estimate) /
	// estimate reached it is urgent. Urgent jobs are ordered ahead of every
	// job but the starving ones (in priority order among themselves), and
	// an urgent job that is blocked gets a reservation besides the
	// ReservationDepth ones, so it neither waits behind the holes' fillers
	// nor takes a reservation from the jobs first by priority. With
	// BackfillPacking this is what lets short jobs wait as hole fillers
	// (largest area first) without their slowdown growing unbounded.
	// 0 disables the guard; 1 would make every job urgent.
	SlowdownGuard float64
	// SlowdownReservations bounds the urgent jobs reserved in one cycle
	// (the first ones in order); the others wait without a reservation.
	// It keeps a cycle's cost bounded when a backlog turns urgent at once.
	SlowdownReservations int
	// Weights of the priority factors (PolicyDefault only).
	Weights Weights
	// AgeMode is AgeWait or AgeExpansion ("" = AgeWait).
	AgeMode string
	// MaxAge is the age at which the age factor saturates at 1.
	MaxAge time.Duration
	// StarvationAge bounds waiting under PolicyDefault: a job waiting
	// longer is ordered ahead of every younger job, oldest first, so it
	// reaches the reservations and cannot be overtaken forever by smaller
	// jobs. 0 disables the guard.
	StarvationAge time.Duration
	// StarvationGrace is how long a starving lead job (EstimatePredicted)
	// still lets consistent predictions run in front of it: for its first
	// StarvationGrace of starving, a job whose prediction's newest two
	// runtimes (its kind's under PredictKind) are within 2x of each other
	// is planned with its prediction, any other with its walltime; after that, every job with its walltime.
	// 0: the walltime at once.
	StarvationGrace time.Duration
	// StarvationBacklog makes the starvation threshold follow the queue:
	// with b > 0 a job starves once its wait exceeds b x backlog, but
	// never sooner than StarvationFloor nor later than StarvationAge, the
	// backlog being the work pending and running (estimates, widths) over
	// the machine's capacity: how long the machine needs to run what it
	// holds. A job passed over while the queue drains then starves in
	// hours, not days. 0: StarvationAge alone.
	StarvationBacklog float64
	// StarvationFloor is the earliest a job starves under
	// StarvationBacklog (one above StarvationAge acts as StarvationAge).
	StarvationFloor time.Duration
	// SpeculativeBackfill (EstimatePredicted only) lets a job start in a
	// hole in front of a starving job's protected reservation when its
	// prediction fits there but its walltime does not. Its allocations
	// are marked speculative (model.Start.Speculative); once one has
	// outlived its prediction it is expected to end within StopGrace, and
	// when the starving job that leads could start if such gangs
	// stopped, the plan preempts them (requeue; only gangs of jobs
	// submitted after that job); a job that has run before never starts
	// speculatively again. Off: jobs are planned with their walltimes
	// while a starving job leads. On by default since issue 17's sixth
	// round; it has no effect under another policy, with requested
	// estimates or without a starvation age (nothing is then protected).
	SpeculativeBackfill bool
	// SpeculativeSlack is the margin a speculative start needs
	// (SpeculativeBackfill): the job starts only where a hole holds its
	// prediction plus this many times the prediction (at most its
	// walltime), so that a run a little longer than the mean of its last
	// two still ends before the starving job needs its nodes, and fewer
	// runs are stopped and lost. It changes only where a job may start:
	// once running, the gang is still stopped when it outlives its
	// prediction. 0 is the prediction alone (before issue 17's
	// fourteenth round); 1 (twice the prediction) by default.
	SpeculativeSlack float64
	// DrainPacking packs the drain of a wide starving job (PolicyDefault
	// with BackfillShortest): while a starving job that needs at least
	// this share of the ready capacity (cores, GPUs by GPUWeight) leads,
	// the jobs behind it are backfilled small ones first (area up to
	// DrainSmallArea, the most slowed down first), then largest area
	// first, as BackfillPacking does, instead of shortest first. Long
	// jobs then fill the hole in front of its reservation while it is
	// long, and short ones are kept for what is left. 0 turns it off.
	// 0.5 by default since issue 17's eighth round.
	DrainPacking float64
	// DrainSmallArea is the area (core-seconds of the estimate, GPUs by
	// GPUWeight) up to which DrainPacking backfills a job first.
	DrainSmallArea float64
	// DrainYield lets short jobs go before a wide starving job
	// (DrainPacking's leads only): a pending job that is not starving
	// and planned to run at most this long (its walltime, as everything
	// is planned while a starving job leads) starts where it fits now,
	// before the lead's reservation is placed, so it may delay that
	// reservation by at most this long; an array's tasks so, in order,
	// as many as fit and its parallel limit allows. Without it a job of
	// a minute that arrives during the drain waits out the wide job's
	// whole run. 10 minutes by default since issue 17's twelfth round;
	// 0 turns it off.
	DrainYield time.Duration
	// StarvationSlots is how many of the oldest starving jobs are promoted
	// at once (0 = all of them, the default since issue 17's twelfth
	// round: the starving jobs go first, oldest first).
	StarvationSlots int
	// SizeRef is the job area (core-seconds of the estimate) at which the
	// size factor has fallen to 0.5; smaller jobs rank higher.
	SizeRef float64
	// SizeWidthExponent weighs the job's width in its size: 0 ranks by
	// estimated runtime only, 1 by area (width x runtime).
	SizeWidthExponent float64
	// Shares are the fair-share targets per department; departments not
	// listed get DefaultShare.
	Shares       map[string]float64
	DefaultShare float64
	// HalfLife is the usage decay half-life; DecayUsage callers pass it.
	HalfLife time.Duration
	// GPUWeight is how many core-seconds one GPU-second of use counts as.
	GPUWeight float64
	// Quotas per department; a department not listed uses DefaultQuota.
	Quotas       map[string]Limits
	DefaultQuota Limits
	// Partitions by name. Jobs with an empty Partition use
	// DefaultPartition; if that is empty too they may run on any node.
	Partitions       map[string]Partition
	DefaultPartition string
	// DefaultWalltime applies to jobs with no walltime anywhere.
	DefaultWalltime time.Duration
	// HistoryLen is how many runtimes the predictor averages
	// (EstimatePredicted): the user's last runs of the job's kind, or of
	// any kind (see PredictBy).
	HistoryLen int
	// AccuracyLen is how many of the user's last runs PredictKind
	// averages the accuracy (runtime over requested walltime) of, for a
	// job of a kind the user has not run lately (0: such a job is planned
	// with its walltime).
	AccuracyLen int
	// PredictBy is what a prediction is made from: PredictKind ("" too)
	// or PredictUser.
	PredictBy string
	// Preemption is PreemptOff ("" too) or PreemptRequeue.
	Preemption string
	// StopGrace is how long stopping a guest is expected to take: a gang
	// the master asked to stop is planned to release its resources this
	// long from now, and a preempting job is reserved from then.
	StopGrace time.Duration
}

// DefaultConfig returns the policy the server runs when its config file says
// nothing: EASY++ — plan with each job's predicted runtime (the mean of
// its user's last two runs of its kind, else its walltime times the
// user's recent accuracy, capped by the walltime), reserve for the first blocked
// job (EASY), try the rest shortest prediction first, and let a job that
// has waited 48 hours go first with a reservation that nothing predicted
// may overrun. A 7-day usage half-life for fair-share.
func DefaultConfig() Config {
	return Config{
		Policy:   PolicyDefault,
		Estimate: EstimatePredicted,
		// Chosen on a family of generated workloads (bench/gen, hpcsim
		// --suite) and checked on the Lublin trace:
		// docs/scheduler-experiments.md.
		ReservationDepth:     1,
		Backfill:             BackfillShortest,
		SmallJobArea:         0,
		SlowdownGuard:        0,
		SlowdownReservations: 16,
		Weights:              Weights{Age: 10000, FairShare: 5000, Size: 3000, QOS: 2000},
		AgeMode:              AgeWait,
		MaxAge:               7 * 24 * time.Hour,
		StarvationAge:        48 * time.Hour,
		StarvationBacklog:    2,
		StarvationFloor:      24 * time.Hour,
		StarvationSlots:      0,
		SizeRef:              3600,
		SizeWidthExponent:    0,
		DefaultShare:         1,
		HalfLife:             7 * 24 * time.Hour,
		GPUWeight:            16,
		DefaultWalltime:      time.Hour,
		HistoryLen:           2,
		AccuracyLen:          4,
		PredictBy:            PredictKind,
		Preemption:           PreemptOff,
		StopGrace:            time.Minute,
		SpeculativeBackfill:  true,
		SpeculativeSlack:     1,
		DrainPacking:         0.5,
		DrainSmallArea:       10 * 3600,
		DrainYield:           10 * time.Minute,
	}
}

// Policies lists the accepted Config.Policy values.
func Policies() []string {
	return []string{PolicyFCFS, PolicyFCFSEasy, PolicySJFEasy, PolicyDefault}
}

// Validate returns an error naming the first field of c that Schedule
// cannot use, with the accepted values. hpcd (flags and
// --scheduler-config) and hpcsim (flags) both call it, so they accept the
// same policies.
func (c *Config) Validate() error {
	oneOf := func(field, v string, ok ...string) error {
		if slices.Contains(ok, v) {
			return nil
		}
		named := slices.DeleteFunc(slices.Clone(ok), func(s string) bool { return s == "" })
		return fmt.Errorf("%s %q: want one of %s", field, v, strings.Join(named, ", "))
	}
	for _, e := range []error{
		oneOf("policy", c.Policy, Policies()...),
		oneOf("estimates", c.Estimate, EstimateRequest, EstimatePredicted),
		oneOf("backfill", c.Backfill, "", BackfillPacking, BackfillPriority, BackfillShortest),
		oneOf("age mode", c.AgeMode, "", AgeWait, AgeExpansion),
		oneOf("predictor", c.PredictBy, "", PredictKind, PredictUser),
		oneOf("preemption", c.Preemption, "", PreemptOff, PreemptRequeue),
	} {
		if e != nil {
			return e
		}
	}
	if g := c.SlowdownGuard; g != 0 && !(g >= 1 && g <= 1e9) {
		return fmt.Errorf("slowdown guard %v: want 0 (off) or an expansion factor 1..1e9", g)
	}
	ints := []struct {
		name  string
		v, hi int
	}{
		{"reservations", c.ReservationDepth, 1000},
		{"slowdown reservations", c.SlowdownReservations, 1 << 20},
		{"starvation slots", c.StarvationSlots, 1 << 20},
		{"history length", c.HistoryLen, 1000},
		{"accuracy length", c.AccuracyLen, model.RunsKept},
	}
	for _, f := range ints {
		if f.v < 0 || f.v > f.hi {
			return fmt.Errorf("%s %d: want 0..%d", f.name, f.v, f.hi)
		}
	}
	floats := []struct {
		name  string
		v, hi float64
	}{
		{"small job area", c.SmallJobArea, 1e12},
		{"drain packing", c.DrainPacking, 1},
		{"drain small area", c.DrainSmallArea, 1e12},
		{"starvation backlog", c.StarvationBacklog, 1e6},
		{"speculative slack", c.SpeculativeSlack, 100},
		{"age weight", c.Weights.Age, 1e9},
		{"fair-share weight", c.Weights.FairShare, 1e9},
		{"size weight", c.Weights.Size, 1e9},
		{"QOS weight", c.Weights.QOS, 1e9},
		{"size reference", c.SizeRef, 1e12},
		{"default share", c.DefaultShare, 1e9},
		{"GPU weight", c.GPUWeight, 1e6},
	}
	for _, f := range floats {
		if !(f.v >= 0 && f.v <= f.hi) {
			return fmt.Errorf("%s %v: want 0..%g", f.name, f.v, f.hi)
		}
	}
	if e := c.SizeWidthExponent; !(e >= -4 && e <= 4) {
		return fmt.Errorf("size width exponent %v: want -4..4", e)
	}
	durs := []struct {
		name string
		v    time.Duration
	}{
		{"max age", c.MaxAge}, {"starvation age", c.StarvationAge}, {"starvation floor", c.StarvationFloor}, {"starvation grace", c.StarvationGrace}, {"half-life", c.HalfLife},
		{"default walltime", c.DefaultWalltime}, {"stop grace", c.StopGrace},
	}
	for _, d := range durs {
		if d.v < 0 {
			return fmt.Errorf("%s %s: must not be negative", d.name, d.v)
		}
	}
	if y := c.DrainYield; y < 0 || y > 24*time.Hour {
		return fmt.Errorf("drain yield %s: want 0 (off) to 24h", y)
	}
	if g := c.StopGrace; g < time.Second || g > time.Hour {
		return fmt.Errorf("stop grace %s: want 1s..1h", g)
	}
	// Maps in name order, so the first bad entry is always the same one.
	for _, d := range slices.Sorted(maps.Keys(c.Shares)) {
		if w := c.Shares[d]; !(w > 0 && w <= 1e6) {
			return fmt.Errorf("share of %s %v: want a weight above 0", d, w)
		}
	}
	if err := c.DefaultQuota.check("default quota"); err != nil {
		return err
	}
	for _, d := range slices.Sorted(maps.Keys(c.Quotas)) {
		if err := c.Quotas[d].check("quotas." + d); err != nil {
			return err
		}
	}
	for _, name := range slices.Sorted(maps.Keys(c.Partitions)) {
		p := c.Partitions[name]
		what := "partitions." + name
		if p.MaxWalltime < 0 || p.DefaultWalltime < 0 {
			return fmt.Errorf("%s: walltimes must not be negative", what)
		}
		if p.MaxNodes < 0 {
			return fmt.Errorf("%s.maxNodes %d: must not be negative", what, p.MaxNodes)
		}
		if err := p.Limits.check(what); err != nil {
			return err
		}
	}
	return nil
}

// check returns an error naming what if any limit is negative.
func (l Limits) check(what string) error {
	if l.GPUs < 0 || l.Cores < 0 || l.RunningJobs < 0 {
		return fmt.Errorf("%s: limits must not be negative", what)
	}
	return nil
}
