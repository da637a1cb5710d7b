package gpureset

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const (
	gpuA   = "0000:3b:00.0"
	audioA = "0000:3b:00.1"
)

func fns() []Function { return []Function{{Address: gpuA, GPU: true}, {Address: audioA}} }

func TestReturn(t *testing.T) {
	reset := []string{"bus/pci/devices/" + gpuA + "/reset=1", "bus/pci/devices/" + audioA + "/reset=1"}
	rebindGPU := func(from, to string) []string {
		var w []string
		if from != "" {
			w = append(w, "bus/pci/devices/"+gpuA+"/driver/unbind="+gpuA)
		}
		return append(w, "bus/pci/devices/"+gpuA+"/driver_override="+to, "bus/pci/drivers_probe="+gpuA, "bus/pci/devices/"+gpuA+"/driver_override=\n")
	}
	tests := []struct {
		name        string
		driver      string
		setup       func(*Fake)
		wantWrites  []string
		wantDrivers map[string]string
		wantFailed  []string // addresses in the *Error
		wantErr     string
	}{
		{name: "keep: reset only", driver: DriverKeep,
			wantWrites: reset, wantDrivers: map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"}},
		{name: "nvidia: GPU already on nvidia", driver: DriverNVIDIA,
			wantWrites: reset, wantDrivers: map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"}},
		{name: "nvidia: from vfio-pci, audio left alone", driver: DriverNVIDIA,
			setup:      func(f *Fake) { f.Drivers[gpuA] = "vfio-pci" },
			wantWrites: append(slices.Clone(reset), rebindGPU("vfio-pci", "nvidia")...), wantDrivers: map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"}},
		{name: "nvidia: from no driver", driver: DriverNVIDIA,
			setup:      func(f *Fake) { f.Drivers[gpuA] = "" },
			wantWrites: append(slices.Clone(reset), rebindGPU("", "nvidia")...), wantDrivers: map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"}},
		{name: "vfio-pci: every function", driver: DriverVFIO,
			wantDrivers: map[string]string{gpuA: "vfio-pci", audioA: "vfio-pci"}},
		{name: "nvidia module not loaded", driver: DriverNVIDIA,
			setup:      func(f *Fake) { f.Drivers[gpuA] = "vfio-pci"; f.Unloaded["nvidia"] = true },
			wantFailed: []string{gpuA}, wantErr: "is the nvidia module loaded"},
		{name: "audio without reset method is skipped", driver: DriverKeep,
			setup:      func(f *Fake) { f.NoReset[audioA] = true },
			wantWrites: reset[:1], wantDrivers: map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"}},
		{name: "GPU without reset method fails, audio still reset", driver: DriverKeep,
			setup:      func(f *Fake) { f.NoReset[gpuA] = true },
			wantWrites: reset[1:], wantFailed: []string{gpuA}, wantErr: "no reset method"},
		{name: "reset write fails: no rebind of that function", driver: DriverVFIO,
			setup:      func(f *Fake) { f.Fail["bus/pci/devices/"+gpuA+"/reset"] = errors.New("device busy") },
			wantFailed: []string{gpuA}, wantErr: "device busy", wantDrivers: map[string]string{gpuA: "nvidia", audioA: "vfio-pci"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := NewFake(map[string]string{gpuA: "nvidia", audioA: "snd_hda_intel"})
			if tc.setup != nil {
				tc.setup(f)
			}
			r, err := New(f, tc.driver, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = r.Return(fns())
			var re *Error
			switch {
			case tc.wantFailed == nil && err != nil:
				t.Fatalf("Return: %v", err)
			case tc.wantFailed != nil && (!errors.As(err, &re) || !slices.Equal(re.Addresses, tc.wantFailed) || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Return = %v, want *Error for %v mentioning %q", err, tc.wantFailed, tc.wantErr)
			}
			if tc.wantWrites != nil && !slices.Equal(f.Writes(), tc.wantWrites) {
				t.Errorf("writes\n%q\nwant\n%q", f.Writes(), tc.wantWrites)
			}
			for a, d := range tc.wantDrivers {
				if got, _ := f.Driver(a); got != d {
					t.Errorf("%s bound to %q, want %q", a, got, d)
				}
			}
		})
	}
}

func TestNewRejectsDriver(t *testing.T) {
	if _, err := New(NewFake(nil), "nouveau", nil); err == nil || !strings.Contains(err.Error(), "vfio-pci") {
		t.Fatalf("err = %v", err)
	}
}

// TestDir: the real Sysfs over a fixture directory writes existing
// attributes only, reads the driver link and refuses non-local names.
func TestDir(t *testing.T) {
	root := t.TempDir()
	dev := filepath.Join(root, "bus/pci/devices", gpuA)
	if err := os.MkdirAll(dev, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dev, "reset"), nil, 0o200); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../../../../bus/pci/drivers/nvidia", filepath.Join(dev, "driver")); err != nil {
		t.Fatal(err)
	}
	d := Dir{Root: root}
	r, err := New(d, DriverKeep, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Return([]Function{{Address: gpuA, GPU: true}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dev, "reset")); string(b) != "1" {
		t.Errorf("reset attribute holds %q", b)
	}
	if drv, err := d.Driver(gpuA); err != nil || drv != "nvidia" {
		t.Errorf("Driver = %q, %v", drv, err)
	}
	if drv, err := d.Driver(audioA); err != nil || drv != "" {
		t.Errorf("Driver of an absent function = %q, %v", drv, err)
	}
	if err := d.Write("bus/pci/devices/"+gpuA+"/remove", "1"); err == nil {
		t.Error("Write created a missing attribute")
	}
	if err := d.Write("../etc/passwd", "x"); err == nil || d.Exists("../etc") {
		t.Error("non-local name accepted")
	}
}
