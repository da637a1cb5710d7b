package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"vhpc/scheduler/model"
)

const probeCacheFile = "hypervisor.json"

// probeCache is the cached result of the KVM probe in StateDir.
type probeCache struct {
	Hypervisor string    `json:"hypervisor"`
	Reason     string    `json:"reason"`
	ProbedAt   time.Time `json:"probedAt"`
}

// settleHypervisor decides between KVM and TCG: forced by the config, or
// the cached probe result, or a fresh probe (cached afterwards). It logs
// which and why.
func (r *Runner) settleHypervisor(ctx context.Context) error {
	switch r.cfg.Hypervisor {
	case "kvm", "tcg":
		r.hv, r.hvReason = r.cfg.Hypervisor, "forced by configuration"
		r.log.Info("hypervisor", "hypervisor", r.hv, "reason", r.hvReason)
		return nil
	}
	path := filepath.Join(r.cfg.StateDir, probeCacheFile)
	if b, err := os.ReadFile(path); err == nil {
		var pc probeCache
		if json.Unmarshal(b, &pc) == nil && (pc.Hypervisor == "kvm" || pc.Hypervisor == "tcg") {
			r.hv, r.hvReason = pc.Hypervisor, pc.Reason
			r.log.Info("hypervisor", "hypervisor", r.hv, "reason", r.hvReason, "cached_in", path, "probed_at", pc.ProbedAt)
			return nil
		}
	}
	hv, reason := r.probe(ctx)
	r.hv, r.hvReason = hv, reason
	r.log.Info("hypervisor", "hypervisor", hv, "reason", reason)
	b, err := json.MarshalIndent(probeCache{Hypervisor: hv, Reason: reason, ProbedAt: time.Now().UTC()}, "", "  ")
	if err != nil {
		return fmt.Errorf("runner: encode probe cache: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("runner: write probe cache: %w", err)
	}
	return nil
}

// probe boots the tiny image under KVM with a trivial command. KVM is
// used only if /dev/kvm opens and the probe guest finishes within
// ProbeTimeout: on some hosts (nested virtualization) /dev/kvm exists but
// guests hang.
func (r *Runner) probe(ctx context.Context) (string, string) {
	f, err := os.OpenFile(r.kvmDevice, os.O_RDWR, 0)
	if err != nil {
		return "tcg", fmt.Sprintf("KVM unusable: %v", err)
	}
	f.Close()
	r.hv = "kvm"
	core := 0
	if len(r.cfg.HousekeepingCores) > 0 {
		core = r.cfg.HousekeepingCores[0]
	}
	pctx, cancel := context.WithTimeout(ctx, r.cfg.ProbeTimeout)
	defer cancel()
	start := time.Now()
	res, err := r.Run(pctx, Task{
		AllocID: "probe-kvm", Command: []string{"/bin/true"},
		Placement: model.Placement{Cores: []int{core}, MemoryMiB: 256},
	}, nil)
	if lerr := r.RemoveLogs("probe-kvm"); lerr != nil {
		r.log.Warn("remove probe logs", "err", lerr)
	}
	if err == nil && res.State == model.AllocCompleted {
		return "kvm", fmt.Sprintf("KVM probe guest finished in %.1fs", time.Since(start).Seconds())
	}
	why := res.Reason
	if err != nil {
		why = err.Error()
	}
	return "tcg", fmt.Sprintf("KVM probe guest did not finish within %s (%s); nested guests hang on some hosts", r.cfg.ProbeTimeout, why)
}
