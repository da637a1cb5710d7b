//go:build !cgo

package gpu

import (
	"fmt"
	"log/slog"
	"time"
)

// NVML stands in for the NVML source in binaries built without cgo
// (CGO_ENABLED=0): go-nvml needs cgo to dlopen libnvidia-ml.so.1. Open
// always fails with ErrNoNVML, so such a binary runs as on a host without
// the NVIDIA driver.
type NVML struct{}

var _ Source = (*NVML)(nil)

var errNoCgo = fmt.Errorf("%w: this binary was built without cgo (CGO_ENABLED=0); NVML needs cgo", ErrNoNVML)

// Open reports ErrNoNVML: NVML is not available without cgo.
func Open(*slog.Logger) (*NVML, error) { return nil, errNoCgo }

// Devices reports ErrNoNVML.
func (*NVML) Devices() ([]DeviceInfo, error) { return nil, errNoCgo }

// Sample reports ErrNoNVML.
func (*NVML) Sample() ([]Sample, error) { return nil, errNoCgo }

// Events reports ErrNoNVML.
func (*NVML) Events(time.Duration) ([]Event, error) { return nil, errNoCgo }

// Shutdown does nothing.
func (*NVML) Shutdown() error { return nil }
