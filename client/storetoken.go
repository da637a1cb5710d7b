package client

import (
	"context"
	"fmt"
	"sync"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
)

// storeTokenMargin is how long before its expiry a store token is renewed.
const storeTokenMargin = time.Minute

// StoreTokens is the registry token source (an imagestore.TokenSource)
// of a user of the cluster's store: the token that came with info, the
// answer to JobService.DataStore for req; from a minute before it expires
// it asks DataStore again, so a long upload or download outlives the
// first token. nil when info carries no token (the registry is open).
// hpcsub and hpc call it.
func StoreTokens(c *Client, req *api.DataStoreRequest, info *api.DataStoreInfo) func(context.Context, string) (string, error) {
	if info.GetRegistryToken() == "" {
		return nil
	}
	var mu sync.Mutex
	tok, exp := info.GetRegistryToken(), info.GetRegistryTokenExpires().AsTime()
	return func(ctx context.Context, _ string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Now().Add(storeTokenMargin).Before(exp) {
			return tok, nil
		}
		var fresh *api.DataStoreInfo
		err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			var err error
			fresh, err = Jobs(conn).DataStore(ctx, req)
			return err
		})
		if err != nil {
			return "", fmt.Errorf("renew the store token: %w", err)
		}
		tok, exp = fresh.GetRegistryToken(), fresh.GetRegistryTokenExpires().AsTime()
		return tok, nil
	}
}
