package client

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/imagestore"
)

// DataStore asks the master for the cluster's store (JobService.DataStore
// with req) and returns its answer with the registry token source of the
// caller: the token that came with the answer, renewed by asking again a
// minute before it expires (imagestore.RenewingToken), so a long upload
// or download outlives the first token. The source is nil when the
// answer carries no token (the registry is open). hpcsub and hpc call it.
func DataStore(ctx context.Context, c *Client, req *api.DataStoreRequest) (*api.DataStoreInfo, imagestore.TokenSource, error) {
	info, err := askDataStore(ctx, c, req)
	if err != nil {
		return nil, nil, err
	}
	if info.GetRegistryToken() == "" {
		return info, nil, nil
	}
	renew := func(ctx context.Context) (string, time.Time, error) {
		fresh, err := askDataStore(ctx, c, req)
		if err != nil {
			return "", time.Time{}, fmt.Errorf("renew the store token: %w", err)
		}
		return fresh.GetRegistryToken(), fresh.GetRegistryTokenExpires().AsTime(), nil
	}
	return info, imagestore.RenewingToken(info.GetRegistryToken(), info.GetRegistryTokenExpires().AsTime(), nil, renew), nil
}

func askDataStore(ctx context.Context, c *Client, req *api.DataStoreRequest) (*api.DataStoreInfo, error) {
	var info *api.DataStoreInfo
	err := c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
		var err error
		info, err = Jobs(conn).DataStore(ctx, req)
		return err
	})
	return info, err
}
