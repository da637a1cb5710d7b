//go:build !linux

package inventory

import "errors"

// statfs is the default Options.Statfs; vhpc agents run on Linux only.
func statfs(dir string) (DiskSpace, error) {
	return DiskSpace{}, errors.New("statfs: only implemented on linux; set Options.Statfs")
}
