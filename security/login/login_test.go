package login

import (
	"context"
	"crypto/x509"
	"errors"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"vhpc/security/pki"
	"vhpc/security/pki/pkitest"
)

// TestLoginIssuesTheCallersOwnName: the name comes from the kernel's peer
// credentials, the key stays with the client, unknown users are refused.
func TestLoginIssuesTheCallersOwnName(t *testing.T) {
	me, err := user.Current()
	if err != nil {
		t.Skip(err)
	}
	ca := pkitest.New(t)
	sock := filepath.Join(t.TempDir(), "login.sock")
	l, err := Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{me.Username: true}
	srv := &Server{CA: ca.CA, Known: func(n string) error {
		if !known[n] {
			return errors.New("user " + n + " is not a user of this cluster")
		}
		return nil
	}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go srv.Serve(ctx, l)

	dir := filepath.Join(t.TempDir(), "creds")
	id, until, err := Login(ctx, sock, dir)
	if err != nil {
		t.Fatal(err)
	}
	if id != (pki.Identity{Role: pki.RoleUser, Name: me.Username}) || time.Until(until) < time.Hour {
		t.Fatalf("got %s until %s", id, until)
	}
	r, err := pki.NewReloader(pki.FilesIn(dir, id.BaseName()), pki.ReloadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := r.Verify([]*x509.Certificate{r.Certificate().Leaf}, x509.ExtKeyUsageClientAuth); err != nil || got != id {
		t.Fatalf("verify the new credential: %s, %v", got, err)
	}
	delete(known, me.Username)
	if _, _, err := Login(ctx, sock, dir); err == nil || !strings.Contains(err.Error(), "not a user of this cluster") {
		t.Fatalf("unknown user: %v", err)
	}
}
