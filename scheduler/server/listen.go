package server

import "fmt"

// ListenError is returned by New when one of the member's three listeners
// cannot bind. cmd/hpcd maps Listener to the flag that sets the address,
// so "address already in use" tells the operator what to change.
type ListenError struct {
	// Listener is "gRPC", "HTTP" or "Raft".
	Listener string
	Addr     string
	Err      error
}

// Error says which listener failed on which address, and why.
func (e *ListenError) Error() string {
	return fmt.Sprintf("listen for %s on %s: %v", e.Listener, e.Addr, e.Err)
}

// Unwrap gives the cause (errors.Is(err, syscall.EADDRINUSE) works).
func (e *ListenError) Unwrap() error { return e.Err }
