package agent

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
)

// tokenMargin is how long before its expiry a registry token is replaced.
const tokenMargin = time.Minute

// allocTokens holds the registry token of one allocation: asked of the
// master (NodeService.RegistryToken) when the registry first wants one,
// kept until tokenMargin before it expires, then asked again. runOne puts
// its source into the allocation's context (imagestore.WithTokenSource),
// so the image pull, datasets, inputs and outputs of the allocation go
// with its token and no other.
type allocTokens struct {
	client *client.Client
	alloc  string
	now    func() time.Time

	mu      sync.Mutex
	token   string
	expires time.Time
}

// source is the imagestore.TokenSource: the allocation's token covers
// every repository it may use, whichever is asked.
func (t *allocTokens) source(ctx context.Context, _ string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.token != "" && t.now().Add(tokenMargin).Before(t.expires) {
		return t.token, nil
	}
	if t.client == nil {
		return "", fmt.Errorf("registry token for allocation %s: no client to ask the master", t.alloc)
	}
	var resp *api.RegistryTokenResponse
	err := t.client.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		resp, err = client.Nodes(conn).RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: t.alloc})
		return err
	})
	switch {
	case status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded:
		return "", fmt.Errorf("registry token for allocation %s: %w: %w", t.alloc, errMasterUnreachable, err)
	case err != nil:
		return "", fmt.Errorf("registry token for allocation %s: %w", t.alloc, err)
	}
	t.token, t.expires = resp.GetToken(), resp.GetExpires().AsTime()
	return t.token, nil
}

// withAllocToken returns ctx carrying the allocation's token source.
func (a *Agent) withAllocToken(ctx context.Context, allocID string) context.Context {
	t := &allocTokens{client: a.cfg.Client, alloc: allocID, now: time.Now}
	return imagestore.WithTokenSource(ctx, t.source)
}
