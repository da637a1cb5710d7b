package gpureset

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Dir is the real Sysfs: attributes are files under Root ("/sys" on a
// host; a fixture directory in tests).
type Dir struct {
	Root string
}

var _ Sysfs = Dir{}

func (d Dir) path(name string) (string, error) {
	if !filepath.IsLocal(name) {
		return "", fmt.Errorf("sysfs attribute %q: not a local path", name)
	}
	return filepath.Join(d.Root, name), nil
}

// Write implements Sysfs: it opens the existing attribute for writing (it
// never creates files) and writes value in one write, as sysfs wants.
func (d Dir) Write(name, value string) error {
	p, err := d.path(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("sysfs: %w", err)
	}
	_, werr := f.WriteString(value)
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		return fmt.Errorf("sysfs: write %s: %w", p, err)
	}
	return nil
}

// Exists implements Sysfs.
func (d Dir) Exists(name string) bool {
	p, err := d.path(name)
	if err != nil {
		return false
	}
	_, err = os.Stat(p)
	return err == nil
}

// Driver implements Sysfs: the base name of the function's driver link.
func (d Dir) Driver(addr string) (string, error) {
	p, err := d.path(devAttr(addr, "driver"))
	if err != nil {
		return "", err
	}
	target, err := os.Readlink(p)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("sysfs: driver of %s: %w", addr, err)
	}
	return filepath.Base(target), nil
}

// Fake is an in-memory Sysfs for tests: it records writes and models
// reset attributes, unbind, driver_override and drivers_probe.
type Fake struct {
	// Drivers is the driver bound to each function ("" or absent: none).
	Drivers map[string]string
	// NoReset lists functions that have no reset attribute.
	NoReset map[string]bool
	// Unloaded lists drivers whose module is not loaded: probing with
	// such an override leaves the function unbound.
	Unloaded map[string]bool
	// Fail makes writes to an attribute name fail with the error.
	Fail map[string]error
	// OnWrite, if set, is called before each write is applied.
	OnWrite func(name, value string)

	mu       sync.Mutex
	override map[string]string
	writes   []string
}

var _ Sysfs = (*Fake)(nil)

// NewFake returns a Fake with the given drivers bound (copied).
func NewFake(drivers map[string]string) *Fake {
	f := &Fake{Drivers: map[string]string{}, NoReset: map[string]bool{}, Unloaded: map[string]bool{}, Fail: map[string]error{}, override: map[string]string{}}
	for a, d := range drivers {
		f.Drivers[a] = d
	}
	return f
}

// Writes returns every write so far as "name=value", in order.
func (f *Fake) Writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.writes...)
}

// Write implements Sysfs.
func (f *Fake) Write(name, value string) error {
	if f.OnWrite != nil {
		f.OnWrite(name, value)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.Fail[name]; err != nil {
		return err
	}
	rest, isDev := strings.CutPrefix(name, "bus/pci/devices/")
	addr, attr, _ := strings.Cut(rest, "/")
	switch {
	case isDev && attr == "reset" && f.NoReset[addr]:
		return fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
	case isDev && attr == "driver/unbind":
		if f.Drivers[addr] == "" {
			return fmt.Errorf("open %s: %w", name, fs.ErrNotExist)
		}
		f.Drivers[addr] = ""
	case isDev && attr == "driver_override":
		f.override[addr] = strings.TrimSpace(value)
	case name == "bus/pci/drivers_probe":
		if o := f.override[value]; o != "" && f.Drivers[value] == "" && !f.Unloaded[o] {
			f.Drivers[value] = o
		}
	}
	f.writes = append(f.writes, name+"="+value)
	return nil
}

// Exists implements Sysfs: every attribute exists but the reset of a
// NoReset function.
func (f *Fake) Exists(name string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	rest, isDev := strings.CutPrefix(name, "bus/pci/devices/")
	addr, attr, _ := strings.Cut(rest, "/")
	return !(isDev && attr == "reset" && f.NoReset[addr])
}

// Driver implements Sysfs.
func (f *Fake) Driver(addr string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.Drivers[addr], nil
}
