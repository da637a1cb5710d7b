package gpumetrics

import (
	"fmt"

	"vhpc/guestproto"
	"vhpc/nodeagent/gpu"
)

// ParseGuestSample turns one line of a guest's GPU samples file
// (guestproto.GPUSamplesFile, written by hpc-guest) into a gpu.Sample,
// with the PCI address normalised (gpu.NormalizePCIBusID; still the
// guest's address) and the product name shortened to the model
// (gpu.ModelFromName). The agent calls it for every complete line it
// tails and maps the result to the host GPU with the guest address; an
// error means the line is not a usable sample and is to be skipped.
func ParseGuestSample(line []byte) (gpu.Sample, error) {
	g, err := guestproto.DecodeGPUSample(line)
	if err != nil {
		return gpu.Sample{}, err
	}
	pci, err := gpu.NormalizePCIBusID(g.PCIBusID)
	if err != nil {
		return gpu.Sample{}, fmt.Errorf("guest GPU sample of %s: %w", g.UUID, err)
	}
	return gpu.Sample{
		UUID: g.UUID, PCIBusID: pci, Model: gpu.ModelFromName(g.Model), Time: g.Time,
		UtilizationPct:   g.UtilizationPct,
		MemoryUsedBytes:  g.MemoryUsedBytes,
		MemoryTotalBytes: g.MemoryTotalBytes,
		TemperatureC:     g.TemperatureC,
		PowerW:           g.PowerW,
	}, nil
}
