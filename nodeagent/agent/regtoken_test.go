package agent

import (
	"context"
	"strings"
	"testing"
)

// TestAllocTokenFetchNamesTheAllocation: without a client to ask the
// master, fetching an allocation's token fails naming the allocation
// (renewal itself is imagestore.TestRenewingToken's).
func TestAllocTokenFetchNamesTheAllocation(t *testing.T) {
	_, _, err := allocTokenFetch(nil, "7.0.0.1")(context.Background())
	if err == nil || !strings.Contains(err.Error(), "7.0.0.1") {
		t.Fatalf("err %v; want one naming allocation 7.0.0.1", err)
	}
}
