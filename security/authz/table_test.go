package authz_test

import (
	"os"
	"strings"
	"testing"

	"vhpc/security/authz"
	"vhpc/security/pki"
)

// TestTableCoversEveryRPC fails when an RPC is added to api/vhpc.proto
// without a row in authz.Table (it would be refused at run time).
func TestTableCoversEveryRPC(t *testing.T) {
	rows := authz.Table()
	for _, m := range authz.MethodsWithoutRule(rows) {
		t.Errorf("%s has no row in authz.Table: add one (and to security/README.md and the matrix test)", m)
	}
	known := map[string]bool{}
	for _, m := range authz.Methods() {
		known[m.FullName] = true
	}
	for _, r := range rows {
		if !known[r.Method] {
			t.Logf("row %s names no RPC of api/vhpc.proto (removed or renamed?)", r.Method)
		}
		if len(r.Allow) == 0 {
			t.Errorf("row %s allows no role", r.Method)
		}
	}
	if _, err := authz.New(fakeFacts{}.verifier(t), fakeFacts{}, rows); err != nil {
		t.Fatal(err)
	}
}

func TestNewRejectsBadTables(t *testing.T) {
	for _, tc := range []struct {
		name string
		rows []authz.Rule
		err  string
	}{
		{"duplicate", []authz.Rule{{Method: "/a/B", Allow: map[pki.Role]authz.Check{pki.RoleUser: authz.Any}}, {Method: "/a/B"}}, "two rules"},
		{"unknown role", []authz.Rule{{Method: "/a/B", Allow: map[pki.Role]authz.Check{"root": authz.Any}}}, "unknown role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := authz.New(fakeFacts{}.verifier(t), fakeFacts{}, tc.rows); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want %q", err, tc.err)
			}
		})
	}
}

func (fakeFacts) verifier(t *testing.T) *pki.Reloader {
	t.Helper()
	c := newCluster(t)
	return c.ca.Reloader("")
}

// TestREADMETable: security/README.md shows the table the code enforces.
func TestREADMETable(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := authz.Markdown(authz.Table())
	if !strings.Contains(string(readme), want) {
		t.Errorf("security/README.md does not contain the ACL table as the code has it; paste this:\n%s", want)
	}
}
