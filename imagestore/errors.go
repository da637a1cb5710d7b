package imagestore

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Unavailable reports whether err means the registry could not be reached
// or answered with an error on its side (5xx, 408 Request Timeout, 429 Too
// Many Requests), a condition that passes: the node agent keeps the job
// waiting with the reason and tries again instead of failing it. Digest
// mismatches, a full cache or disk, a cancelled pull and definite answers
// such as "manifest unknown" are not unavailability.
func Unavailable(err error) bool {
	if err == nil || errors.Is(err, ErrDigestMismatch) || errors.Is(err, ErrCacheFull) ||
		errors.Is(err, context.Canceled) || NoSpace(err) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return te.StatusCode >= http.StatusInternalServerError ||
			te.StatusCode == http.StatusRequestTimeout || te.StatusCode == http.StatusTooManyRequests
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, io.ErrUnexpectedEOF)
}

// NoSpace reports whether err means the image did not fit on this node:
// the cache is full of images in use (ErrCacheFull) or the disk filled
// during the pull (ENOSPC; the partial files are already removed). Another
// node may have room, so the agent hands the job back to the queue.
func NoSpace(err error) bool {
	return errors.Is(err, ErrCacheFull) || errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}
