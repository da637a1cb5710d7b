// Package accept decides node acceptance: whether one run of hpcbench on a
// node (its CPU and each of its GPUs) measured within a margin of the other
// devices of the same model. It is a pure function over plain values: the
// master (scheduler/server) calls Judge with the run's results, the latest
// results of every other device it knows, the operators' reference values
// and the margin, and commits the verdicts; nothing here reads a clock or
// the state.
//
// Imports: the standard library only.
package accept

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// DefaultMarginPercent is how far below its model's median a device may
// measure and still pass (hpcd --acceptance-margin).
const DefaultMarginPercent = 10.0

// Result is one workload measured on one device.
type Result struct {
	// Subject names the device: "cpu", or the GPU's PCI address. Peers
	// from other nodes carry "node/subject" so they never collide.
	Subject string
	// Model is the CPU model string or the GPU model from the inventory;
	// devices are only compared with devices of the same model.
	Model    string
	Workload string
	Unit     string
	Value    float64
	// Error is set when the workload failed or did not validate; such a
	// result fails the subject whatever its value.
	Error string
}

// Reference is the known-good value of each workload per model:
// Reference[model][workload]. It is used when no other device of the model
// has results.
type Reference map[string]map[string]float64

// Verdict is the outcome for one subject of the run.
type Verdict struct {
	Subject string
	Model   string
	// Reason is empty when the subject passed; otherwise it names the
	// workload, its value, the median (or reference) and the margin, and
	// is what the node or GPU is drained with.
	Reason string
	// Note says how a passing subject was judged when there was nothing to
	// compare with ("no other H200 and no reference: accepted").
	Note string
}

// Passed reports whether the subject passed.
func (v Verdict) Passed() bool { return v.Reason == "" }

// ValidateMargin checks a margin in percent: more than 0, less than 100.
func ValidateMargin(pct float64) error {
	if !(pct > 0 && pct < 100) {
		return fmt.Errorf("acceptance margin %v%%: want more than 0 and less than 100 (percent below the median that still passes, e.g. 10)", pct)
	}
	return nil
}

// Judge returns one verdict per subject of run, in subject order. A
// result of the run is compared with the median of the same workload over
// peers and over the run's other subjects of the same model (never with
// itself); with none of those, with ref[model][workload]; with no
// reference either, it passes. It fails when it is more than marginPct
// percent below that value, or when it carries an Error. A subject's
// reason names its worst workload (and how many others failed).
func Judge(run, peers []Result, ref Reference, marginPct float64) []Verdict {
	bySubject := map[string][]Result{}
	for _, r := range run {
		bySubject[r.Subject] = append(bySubject[r.Subject], r)
	}
	var out []Verdict
	for _, subj := range slices.Sorted(maps.Keys(bySubject)) {
		out = append(out, judgeSubject(subj, bySubject[subj], run, peers, ref, marginPct))
	}
	return out
}

type failure struct {
	workload string
	deficit  float64 // fraction below the baseline; +Inf-like 2 for errors
	text     string
}

func judgeSubject(subj string, mine, run, peers []Result, ref Reference, marginPct float64) Verdict {
	v := Verdict{Subject: subj, Model: mine[0].Model}
	var fails []failure
	var notes []string
	for _, r := range mine {
		if r.Error != "" {
			fails = append(fails, failure{r.Workload, 2, fmt.Sprintf("%s failed: %s", r.Workload, r.Error)})
			continue
		}
		var others []float64
		for _, set := range [][]Result{run, peers} {
			for _, o := range set {
				if o.Subject != subj && o.Model == r.Model && o.Workload == r.Workload && o.Error == "" {
					others = append(others, o.Value)
				}
			}
		}
		base, what := 0.0, ""
		switch {
		case len(others) > 0:
			base = Median(others)
			what = fmt.Sprintf("the median %.1f %s of %d other %s", base, r.Unit, len(others), r.Model)
		case ref[r.Model][r.Workload] > 0:
			base = ref[r.Model][r.Workload]
			what = fmt.Sprintf("the reference %.1f %s of %s", base, r.Unit, r.Model)
		default:
			notes = append(notes, r.Workload)
			continue
		}
		if r.Value < base*(1-marginPct/100) {
			d := 1 - r.Value/base
			fails = append(fails, failure{r.Workload, d, fmt.Sprintf("%s %.1f %s is %.1f%% below %s (margin %g%%)", r.Workload, r.Value, r.Unit, 100*d, what, marginPct)})
		}
	}
	if len(fails) > 0 {
		worst := slices.MaxFunc(fails, func(a, b failure) int { return cmp.Compare(a.deficit, b.deficit) })
		v.Reason = "acceptance: " + worst.text
		if len(fails) > 1 {
			v.Reason += fmt.Sprintf(" (and %d more workloads)", len(fails)-1)
		}
		return v
	}
	if len(notes) == len(mine) {
		v.Note = fmt.Sprintf("no other %s and no reference: accepted", v.Model)
	} else if len(notes) > 0 {
		v.Note = fmt.Sprintf("nothing to compare %v with: accepted", notes)
	}
	return v
}

// Median returns the median of xs (the mean of the middle two for an even
// count); 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}
