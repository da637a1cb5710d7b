package imagestore

import (
	"context"
	"sync"
	"time"
)

// TokenRenewMargin is how long before its expiry a RenewingToken asks for
// a new token, so that no call starts with a token about to lapse.
const TokenRenewMargin = time.Minute

// TokenFetch asks the master for a registry token and says when it
// expires (JobService.DataStore for users, NodeService.RegistryToken for
// agents).
type TokenFetch func(ctx context.Context) (token string, expires time.Time, err error)

// RenewingToken is the TokenSource of a holder whose one token covers
// every repository it touches: it answers the token it holds until
// TokenRenewMargin before that expires, then asks fetch again (one fetch
// at a time; a failed fetch is returned and tried again on the next
// call). Seed it with a token already in hand, or with "" to fetch on
// first use. now is the clock (nil: time.Now). hpcsub, hpc and the node
// agent call it; it is safe for concurrent use.
func RenewingToken(token string, expires time.Time, now func() time.Time, fetch TokenFetch) TokenSource {
	if now == nil {
		now = time.Now
	}
	var mu sync.Mutex
	return func(ctx context.Context, _ string) (string, error) {
		mu.Lock()
		defer mu.Unlock()
		if token != "" && now().Add(TokenRenewMargin).Before(expires) {
			return token, nil
		}
		tok, exp, err := fetch(ctx)
		if err != nil {
			return "", err
		}
		token, expires = tok, exp
		return token, nil
	}
}
