package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"vhpc/imagestore"
)

// startDevRegistry runs Debian's docker-registry for `hpcd dev` on a free
// loopback port with its storage under DATA-DIR/registry: a child process
// that ends with hpcd (Close, or the kernel's parent-death signal when hpcd
// is killed). Without the program the error names the Debian package and
// --registry.
func startDevRegistry(dataDir string, log *slog.Logger) (*imagestore.Registry, error) {
	reg, err := imagestore.StartRegistry(context.Background(), imagestore.RegistryConfig{
		Dir: filepath.Join(dataDir, "registry"), Logger: log, DieWithParent: true,
	})
	if err != nil {
		return nil, fmt.Errorf("hpcd dev: %w (or point hpcd at a running registry with --registry URL)", err)
	}
	log.Info("image registry started", "url", reg.URL, "storage", filepath.Join(dataDir, "registry", "storage"))
	go func() {
		<-reg.Exited()
		log.Debug("image registry stopped", "url", reg.URL)
	}()
	return reg, nil
}
