package main

import (
	"os"
	"testing"
	"time"

	"vhpc/client"
)

// TestMain: the members these tests start are plaintext (--insecure)
// unless a test says otherwise (startDev runs hpcd dev secure and points
// VHPC_CREDENTIALS at its credential), so clients, and the hpcsub, hpc,
// hpc-agent and hpcd operator processes the tests run, dial plaintext by
// default and never pick up the developer's own ~/.config/vhpc.
func TestMain(m *testing.M) {
	os.Setenv(client.CredentialsEnv, "none")
	os.Exit(m.Run())
}

// waitFile waits up to 30 s for path to exist (hpcd dev writes its
// credentials right after it starts).
func waitFile(t testing.TB, path string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared", path)
		}
	}
}
