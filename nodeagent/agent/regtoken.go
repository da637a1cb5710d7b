package agent

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
)

// allocTokenFetch asks the master for the registry token of one
// allocation (NodeService.RegistryToken). An unreachable master wraps
// errMasterUnreachable, so the store's retry waits for it.
func allocTokenFetch(c *client.Client, allocID string) imagestore.TokenFetch {
	return func(ctx context.Context) (string, time.Time, error) {
		if c == nil {
			return "", time.Time{}, fmt.Errorf("registry token for allocation %s: no client to ask the master", allocID)
		}
		var resp *api.RegistryTokenResponse
		err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			var err error
			resp, err = client.Nodes(conn).RegistryToken(ctx, &api.RegistryTokenRequest{AllocId: allocID})
			return err
		})
		switch {
		case status.Code(err) == codes.Unavailable || status.Code(err) == codes.DeadlineExceeded:
			return "", time.Time{}, fmt.Errorf("registry token for allocation %s: %w: %w", allocID, errMasterUnreachable, err)
		case err != nil:
			return "", time.Time{}, fmt.Errorf("registry token for allocation %s: %w", allocID, err)
		}
		return resp.GetToken(), resp.GetExpires().AsTime(), nil
	}
}

// withAllocToken returns ctx carrying the allocation's token source: asked
// of the master when the registry first wants one and renewed before it
// expires (imagestore.RenewingToken). runOne uses it, so the image pull,
// datasets, inputs and outputs of the allocation go with its token and
// no other.
func (a *Agent) withAllocToken(ctx context.Context, allocID string) context.Context {
	return imagestore.WithTokenSource(ctx, imagestore.RenewingToken("", time.Time{}, nil, allocTokenFetch(a.cfg.Client, allocID)))
}
