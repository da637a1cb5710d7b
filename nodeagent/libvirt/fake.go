package libvirt

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"

	"libvirt.org/go/libvirtxml"
)

// Fake is an in-memory Domains for unit tests of the runner. Tests script
// the guest with the hooks: OnStart runs (in its own goroutine) when a
// domain starts, OnShutdown when the host presses the power button.
// Power off a domain from a hook with Stop.
type Fake struct {
	// OnStart, if set, is called in a new goroutine after a domain starts.
	OnStart func(d *libvirtxml.Domain)
	// OnShutdown, if set, is called in a new goroutine on Shutdown; when
	// nil the guest ignores the power button.
	OnShutdown func(name string)
	// FailStart makes DefineAndStart fail (after defining) with this error.
	FailStart error

	mu      sync.Mutex
	domains map[string]*fakeDomain
	starts  map[string]int
}

type fakeDomain struct {
	def   *libvirtxml.Domain
	state State
}

var _ Domains = (*Fake)(nil)

// NewFake returns an empty fake hypervisor.
func NewFake() *Fake {
	return &Fake{domains: map[string]*fakeDomain{}, starts: map[string]int{}}
}

// DefineAndStart implements Domains.
func (f *Fake) DefineAndStart(ctx context.Context, d *libvirtxml.Domain) error {
	x, err := d.Marshal() // the fake checks the definition encodes, like libvirt would
	if err != nil {
		return fmt.Errorf("encode domain: %w", err)
	}
	var cp libvirtxml.Domain
	if err := cp.Unmarshal(x); err != nil {
		return fmt.Errorf("decode domain: %w", err)
	}
	f.mu.Lock()
	if old, ok := f.domains[d.Name]; ok && !old.state.Stopped() {
		f.mu.Unlock()
		return fmt.Errorf("domain %s is already running", d.Name)
	}
	if f.FailStart != nil {
		f.mu.Unlock()
		return f.FailStart
	}
	f.domains[d.Name] = &fakeDomain{def: &cp, state: StateRunning}
	f.starts[d.Name]++
	hook := f.OnStart
	f.mu.Unlock()
	if hook != nil {
		go hook(&cp)
	}
	return nil
}

// Stop powers the domain off, as the guest would.
func (f *Fake) Stop(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d, ok := f.domains[name]; ok {
		d.state = StateShutoff
	}
}

// Starts returns how many times name was started.
func (f *Fake) Starts(name string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.starts[name]
}

// Shutdown implements Domains.
func (f *Fake) Shutdown(ctx context.Context, name string) error {
	f.mu.Lock()
	_, ok := f.domains[name]
	hook := f.OnShutdown
	f.mu.Unlock()
	if !ok {
		return fmt.Errorf("domain %s: %w", name, ErrNotFound)
	}
	if hook != nil {
		go hook(name)
	}
	return nil
}

// DestroyAndUndefine implements Domains.
func (f *Fake) DestroyAndUndefine(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.domains, name)
	return nil
}

// State implements Domains.
func (f *Fake) State(ctx context.Context, name string) (State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[name]
	if !ok {
		return StateAbsent, nil
	}
	return d.state, nil
}

// List implements Domains.
func (f *Fake) List(ctx context.Context, prefix string) ([]DomainInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []DomainInfo
	for n, d := range f.domains {
		if strings.HasPrefix(n, prefix) {
			out = append(out, DomainInfo{Name: n, State: d.state})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// XML implements Domains.
func (f *Fake) XML(ctx context.Context, name string) (*libvirtxml.Domain, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	d, ok := f.domains[name]
	if !ok {
		return nil, fmt.Errorf("domain %s: %w", name, ErrNotFound)
	}
	x, err := d.def.Marshal()
	if err != nil {
		return nil, err
	}
	var cp libvirtxml.Domain
	if err := cp.Unmarshal(x); err != nil {
		return nil, err
	}
	return &cp, nil
}
