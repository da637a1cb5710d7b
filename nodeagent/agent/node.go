package agent

import (
	"fmt"
	"log/slog"
	"os"

	"vhpc/nodeagent/inventory"
	"vhpc/scheduler/model"
)

// LocalNode scans this host (sysfs, statfs of scratchDir) and returns the
// node to register as name. reserved cores are kept for the host and QEMU's
// emulator threads and never given to jobs.
// The inventory is returned too, for passthrough checks.
func LocalNode(name, scratchDir, partition string, reserved []int, log *slog.Logger) (*model.Node, *inventory.Inventory, error) {
	if name == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, nil, fmt.Errorf("node name: %w", err)
		}
		name = h
	}
	if err := os.MkdirAll(scratchDir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("scratch dir: %w", err)
	}
	inv, err := inventory.Scan(inventory.Options{ScratchDir: scratchDir, Logger: log})
	if err != nil {
		return nil, nil, fmt.Errorf("inventory: %w", err)
	}
	for _, note := range inv.Notes {
		log.Info("inventory", "note", note)
	}
	n := inv.ToNode(name)
	n.Partition = partition
	n.ReservedCores = reserved
	return n, inv, nil
}
