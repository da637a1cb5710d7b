// Package registrytest starts a real OCI registry (Debian's docker-registry)
// for tests: on a free loopback port, with its storage in t.TempDir(),
// killed at the test's cleanup. Test code only.
package registrytest

import (
	"context"
	"testing"
	"time"

	"vhpc/imagestore"
)

// Start runs docker-registry for the test and returns it; the test fails
// (naming the Debian package) when the program is missing or does not
// answer within 20 s.
func Start(t testing.TB) *imagestore.Registry {
	t.Helper()
	dir := t.TempDir()
	r, err := imagestore.StartRegistry(context.Background(), imagestore.RegistryConfig{Dir: dir, StartTimeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("%v (scripts/install-deps.sh installs it)", err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
