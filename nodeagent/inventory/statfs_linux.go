package inventory

import (
	"fmt"
	"syscall"
)

// statfs is the default Options.Statfs: statfs(2) on dir.
func statfs(dir string) (DiskSpace, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return DiskSpace{}, fmt.Errorf("statfs: %w", err)
	}
	bs := uint64(st.Bsize)
	return DiskSpace{TotalBytes: st.Blocks * bs, AvailBytes: st.Bavail * bs}, nil
}
