package imagestore

import (
	"context"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
)

// TokenSource returns a bearer token for the cluster's registry that grants
// what its holder needs on repository repo ("chemistry/lammps",
// "vhpc-data/chemistry"). It is asked when a call to the registry starts
// and again when the registry refuses the token (it expired), so a source
// may fetch a new one. The master signs tokens (package
// security/regtoken); clients get theirs from it (JobService.DataStore,
// NodeService.RegistryToken).
type TokenSource func(ctx context.Context, repo string) (string, error)

// StaticToken is a TokenSource that always answers tok (a token that
// covers every repository the caller touches).
func StaticToken(tok string) TokenSource {
	return func(context.Context, string) (string, error) { return tok, nil }
}

type tokenSourceKey struct{}

// WithTokenSource returns ctx carrying src, which Push, Pull, Inspect and
// the caches use when their Options name no Token. The node agent puts
// an allocation's token into the context of that allocation's pulls and
// pushes, so one shared cache pulls each image with the token of the
// allocation that asked.
func WithTokenSource(ctx context.Context, src TokenSource) context.Context {
	return context.WithValue(ctx, tokenSourceKey{}, src)
}

func tokenSourceFrom(ctx context.Context) TokenSource {
	src, _ := ctx.Value(tokenSourceKey{}).(TokenSource)
	return src
}

// tokenKeychain gives go-containerregistry a bearer token per repository
// from a TokenSource. Against a registry without token auth it is never
// asked.
type tokenKeychain struct{ src TokenSource }

func (k tokenKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	return k.ResolveContext(context.Background(), r)
}

func (k tokenKeychain) ResolveContext(ctx context.Context, r authn.Resource) (authn.Authenticator, error) {
	repo := strings.TrimPrefix(r.String(), r.RegistryStr()+"/")
	if repo == r.String() {
		repo = "" // the registry itself (no repository)
	}
	return tokenAuth{ctx: ctx, src: k.src, repo: repo}, nil
}

type tokenAuth struct {
	ctx  context.Context
	src  TokenSource
	repo string
}

func (a tokenAuth) Authorization() (*authn.AuthConfig, error) { return a.AuthorizationContext(a.ctx) }

func (a tokenAuth) AuthorizationContext(ctx context.Context) (*authn.AuthConfig, error) {
	tok, err := a.src(ctx, a.repo)
	if err != nil {
		return nil, fmt.Errorf("registry token for %s: %w", a.repo, err)
	}
	return &authn.AuthConfig{RegistryToken: tok}, nil
}
