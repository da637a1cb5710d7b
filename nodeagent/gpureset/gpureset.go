// Package gpureset returns passed-through GPUs to a known state once the
// guest that had them is gone: a function-level reset of every function
// that was passed through (/sys/bus/pci/devices/<addr>/reset), then,
// optionally, a rebind of the functions to a configured host driver. The
// runner (nodeagent/runner) calls Returner.Return after the domain has
// been destroyed (libvirt's managed hostdevs are back on their host driver
// by then).
//
// Every sysfs access goes through the small Sysfs interface: Dir is the
// real one (with an injectable root), Fake the in-memory one for tests.
// Nothing here can be tested for real on a host without a GPU and an
// IOMMU; see nodeagent/README.md.
package gpureset

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// Drivers Return can rebind to (runner.Config.GPUReturnDriver).
const (
	// DriverKeep leaves each function on the driver libvirt left it on.
	DriverKeep = ""
	// DriverNVIDIA binds the GPU functions to the host's nvidia driver
	// (NVML sees them again); companion functions are left alone.
	DriverNVIDIA = "nvidia"
	// DriverVFIO binds every function to vfio-pci, ready for the next
	// passthrough and invisible to the host driver.
	DriverVFIO = "vfio-pci"
)

// Sysfs is the part of /sys a reset needs. Names are relative to the
// sysfs root: "bus/pci/devices/0000:3b:00.0/reset".
type Sysfs interface {
	// Write writes value to the existing attribute name.
	Write(name, value string) error
	// Exists reports whether the attribute name exists.
	Exists(name string) bool
	// Driver returns the driver bound to the PCI function addr, "" when
	// none is.
	Driver(addr string) (string, error)
}

// Function is one host PCI function that was passed through.
type Function struct {
	// Address is the host PCI address, "0000:3b:00.1".
	Address string
	// GPU is true for a GPU function, false for its companions (HDMI
	// audio, USB-C).
	GPU bool
}

// Error lists the functions Return could not bring to a known state; the
// agent should drain them (errors.As from the runner's error).
type Error struct {
	// Addresses are the failed functions, in the order tried.
	Addresses []string
	// Err joins the individual failures.
	Err error
}

// Error names the functions and the failures.
func (e *Error) Error() string {
	return fmt.Sprintf("GPU functions %s not returned to a known state (drain them until a person looks): %v", strings.Join(e.Addresses, ", "), e.Err)
}

// Unwrap returns the joined failures.
func (e *Error) Unwrap() error { return e.Err }

// Returner resets and rebinds functions through a Sysfs. It holds no
// state between calls and is safe for concurrent use on distinct GPUs.
type Returner struct {
	sys    Sysfs
	driver string
	log    *slog.Logger
}

// New returns a Returner over sys that rebinds to driver (DriverKeep,
// DriverNVIDIA or DriverVFIO); any other driver is an error. log may be
// nil.
func New(sys Sysfs, driver string, log *slog.Logger) (*Returner, error) {
	switch driver {
	case DriverKeep, DriverNVIDIA, DriverVFIO:
	default:
		return nil, fmt.Errorf("gpu return driver %q: want \"\" (leave as libvirt left it), %q or %q", driver, DriverNVIDIA, DriverVFIO)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Returner{sys: sys, driver: driver, log: log}, nil
}

func devAttr(addr, attr string) string { return "bus/pci/devices/" + addr + "/" + attr }

// Return resets every function of fns (a function-level reset through its
// sysfs reset attribute), then rebinds them to the configured driver. It
// tries every function even after a failure, and returns an *Error naming
// those not in a known state. A GPU function without a reset attribute is
// a failure; a companion function without one is skipped with a log line
// (many HDMI audio functions have no reset method).
func (r *Returner) Return(fns []Function) error {
	failed := map[string]error{}
	var order []string
	fail := func(addr string, err error) {
		if _, ok := failed[addr]; !ok {
			order = append(order, addr)
		}
		failed[addr] = errors.Join(failed[addr], err)
	}
	for _, f := range fns {
		name := devAttr(f.Address, "reset")
		switch {
		case r.sys.Exists(name):
			if err := r.sys.Write(name, "1"); err != nil {
				fail(f.Address, fmt.Errorf("reset %s: %w", f.Address, err))
				continue
			}
			r.log.Info("gpu function reset", "pci_address", f.Address)
		case f.GPU:
			fail(f.Address, fmt.Errorf("reset %s: the device has no reset method (no /sys/%s)", f.Address, name))
		default:
			r.log.Info("gpu companion function has no reset method; skipped", "pci_address", f.Address)
		}
	}
	for _, f := range fns {
		if _, bad := failed[f.Address]; bad || r.driver == DriverKeep || (r.driver == DriverNVIDIA && !f.GPU) {
			continue
		}
		if err := r.bind(f.Address); err != nil {
			fail(f.Address, err)
		}
	}
	if len(order) == 0 {
		return nil
	}
	var errs []error
	for _, a := range order {
		errs = append(errs, failed[a])
	}
	return &Error{Addresses: order, Err: errors.Join(errs...)}
}

// bind moves addr to r.driver: unbind from the current driver, then
// driver_override + drivers_probe, then clear the override, then check.
func (r *Returner) bind(addr string) error {
	cur, err := r.sys.Driver(addr)
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", addr, r.driver, err)
	}
	if cur == r.driver {
		return nil
	}
	if cur != "" {
		if err := r.sys.Write(devAttr(addr, "driver/unbind"), addr); err != nil {
			return fmt.Errorf("unbind %s from %s: %w", addr, cur, err)
		}
	}
	if err := r.sys.Write(devAttr(addr, "driver_override"), r.driver); err != nil {
		return fmt.Errorf("bind %s to %s: driver_override: %w", addr, r.driver, err)
	}
	perr := r.sys.Write("bus/pci/drivers_probe", addr)
	cerr := r.sys.Write(devAttr(addr, "driver_override"), "\n")
	if err := errors.Join(perr, cerr); err != nil {
		return fmt.Errorf("bind %s to %s: %w", addr, r.driver, err)
	}
	now, err := r.sys.Driver(addr)
	if err != nil {
		return fmt.Errorf("bind %s to %s: %w", addr, r.driver, err)
	}
	if now != r.driver {
		return fmt.Errorf("bind %s to %s: bound to %q after probing (is the %s module loaded?)", addr, r.driver, now, r.driver)
	}
	r.log.Info("gpu function rebound", "pci_address", addr, "from_driver", cur, "driver", now)
	return nil
}
