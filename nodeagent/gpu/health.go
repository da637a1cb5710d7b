package gpu

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// criticalXIDs are the XID codes after which a GPU must be drained (taken out
// of scheduling until someone resets or replaces it). Immutable table; see
// NVIDIA's "XID Errors" guide.
var criticalXIDs = map[uint64]string{
	48: "double-bit ECC error",
	63: "ECC page retirement or row remapping event",
	64: "ECC page retirement or row remapping failure",
	74: "NVLink error",
	79: "GPU has fallen off the bus",
	94: "contained ECC error",
	95: "uncontained ECC error",
}

// CriticalXID reports whether an XID code means the GPU must be drained, and
// what it means. The agent uses it to phrase logs; EvaluateHealth uses it to
// decide.
func CriticalXID(xid uint64) (meaning string, critical bool) {
	m, ok := criticalXIDs[xid]
	return m, ok
}

// Drain is the verdict for one GPU that must not be given to jobs any more.
// Reason is written for people ("XID 79 (GPU has fallen off the bus)") and
// goes into model.GPU.Drained.
type Drain struct {
	UUID     string
	PCIBusID string
	Reason   string
}

// EvaluateHealth decides which GPUs must be drained, and why, from what one
// source reported. It is pure: the agent calls it after each sampling round
// with the GPUs it expects that source to see (host NVML: the GPUs not passed
// through; a guest: the GPUs given to it), the latest samples and the events
// since the last call.
//
// A GPU is drained when it had a critical XID (see CriticalXID), when its
// uncorrectable ECC count is above zero, when the driver reports it lost, or
// when an expected GPU is missing from the samples. The result is sorted by
// PCI bus id, then UUID; GPUs that are fine do not appear.
func EvaluateHealth(expected []DeviceInfo, samples []Sample, events []Event) []Drain {
	type entry struct {
		uuid, pci string
		reasons   []string
		seen      bool
	}
	var entries []*entry
	byUUID, byPCI := map[string]*entry{}, map[string]*entry{}
	// get resolves an id pair to one entry, so that a GPU known by UUID in
	// one place and by PCI address in another is one entry.
	get := func(uuid, pci string) *entry {
		e := byUUID[uuid]
		if e == nil || uuid == "" {
			e = byPCI[pci]
			if pci == "" {
				e = nil
			}
		}
		if e == nil {
			e = &entry{}
			entries = append(entries, e)
		}
		if e.uuid == "" && uuid != "" {
			e.uuid = uuid
			byUUID[uuid] = e
		}
		if e.pci == "" && pci != "" {
			e.pci = pci
			byPCI[pci] = e
		}
		return e
	}
	add := func(e *entry, r string) {
		if !slices.Contains(e.reasons, r) {
			e.reasons = append(e.reasons, r)
		}
	}
	for _, d := range expected {
		get(d.UUID, d.PCIBusID)
	}
	for _, s := range samples {
		e := get(s.UUID, s.PCIBusID)
		e.seen = true
		if s.Lost {
			r := "GPU lost: the driver no longer reaches it"
			if s.Err != "" {
				r += " (" + s.Err + ")"
			}
			add(e, r)
		}
		if s.ECCUncorrected > 0 {
			add(e, fmt.Sprintf("uncorrectable ECC errors: %d", s.ECCUncorrected))
		}
	}
	for _, d := range expected {
		if e := get(d.UUID, d.PCIBusID); !e.seen {
			add(e, "GPU gone: expected but not reported by the driver")
		}
	}
	for _, ev := range events {
		if m, ok := CriticalXID(ev.XID); ok {
			add(get(ev.UUID, ev.PCIBusID), fmt.Sprintf("XID %d (%s)", ev.XID, m))
		}
	}

	var out []Drain
	for _, e := range entries {
		if len(e.reasons) > 0 {
			out = append(out, Drain{UUID: e.uuid, PCIBusID: e.pci, Reason: strings.Join(e.reasons, "; ")})
		}
	}
	slices.SortFunc(out, func(a, b Drain) int {
		return cmp.Or(cmp.Compare(a.PCIBusID, b.PCIBusID), cmp.Compare(a.UUID, b.UUID))
	})
	return out
}
