package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"

	"google.golang.org/grpc"

	"vhpc/api"
	"vhpc/client"
	"vhpc/imagestore"
	"vhpc/scheduler/server"
	"vhpc/security/regtoken"
	"vhpc/vmimages"
)

// startDevRegistry runs Debian's docker-registry for `hpcd dev` on a free
// loopback port with its storage under DATA-DIR/registry: a child process
// that ends with hpcd (Close, or the kernel's parent-death signal when hpcd
// is killed). Without the program the error names the Debian package and
// --registry. With tokens (a secure dev cluster) it takes only the
// master's registry tokens.
func startDevRegistry(dataDir string, tokens *imagestore.TokenAuth, log *slog.Logger) (*imagestore.Registry, error) {
	reg, err := imagestore.StartRegistry(context.Background(), imagestore.RegistryConfig{
		Dir: filepath.Join(dataDir, "registry"), Logger: log, DieWithParent: true, TokenAuth: tokens,
	})
	if err != nil {
		return nil, fmt.Errorf("hpcd dev: %w (or point hpcd at a running registry with --registry URL)", err)
	}
	log.Info("image registry started", "url", reg.URL, "storage", filepath.Join(dataDir, "registry", "storage"), "token_auth", tokens != nil)
	go func() {
		<-reg.Exited()
		log.Debug("image registry stopped", "url", reg.URL)
	}()
	return reg, nil
}

// publishTiny puts the built-in tiny image into the dev registry and the
// catalog as public/tiny, so that a job can name it (image: public/tiny)
// and take the same path as a department image: pulled by digest into the
// node's cache, booted from there. `hpcd dev` calls it once its agent has
// registered (the agent has built the image by then; EnsureTiny finds it
// by its input hash). The push is content-addressed, so a restart that
// publishes the same bytes moves nothing. Failures are logged: the
// built-in image ("tiny") works without it.
func publishTiny(ctx context.Context, s *server.Server, creds *client.Credentials, registryURL, imageDir, guestFlag string, log *slog.Logger) {
	err := func() error {
		gb, err := vmimages.FindGuestBinary(guestFlag)
		if err != nil {
			return err
		}
		img, err := vmimages.EnsureTiny(ctx, imageDir, vmimages.TinySpec{GuestBinary: gb}, log)
		if err != nil {
			return err
		}
		repo, _, _ := imagestore.SplitRef(vmimages.TinyRef)
		opts := s.RegistryOptions(repo, regtoken.ActionPull, regtoken.ActionPush)
		opts.Logger = log
		res, err := imagestore.Push(ctx, registryURL, vmimages.TinyRef+":latest", img.Dir, opts)
		if err != nil {
			return err
		}
		c, err := client.New([]string{s.GRPCAddr()}, client.WithCredentials(creds))
		if err != nil {
			return err
		}
		defer c.Close()
		return c.Do(ctx, func(ctx context.Context, conn *grpc.ClientConn) error {
			_, err := api.NewImageServiceClient(conn).Put(ctx, &api.PutImageRequest{Ref: vmimages.TinyRef + ":latest", Digest: res.Digest,
				SizeBytes: res.Size, Public: true, BuiltFrom: "hpcd dev: the built-in tiny image (kernel " + img.KernelVersion + ")"})
			return err
		})
	}()
	if err != nil {
		log.Warn("could not publish the tiny image as "+vmimages.TinyRef+"; jobs can still use the built-in image tiny", "err", err)
		return
	}
	log.Info("tiny image published", "ref", vmimages.TinyRef+":latest")
}
