package server

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"vhpc/scheduler/core"
	"vhpc/scheduler/fsm"
	"vhpc/scheduler/model"
	"vhpc/scheduler/state"
)

// imageCaches is the leader's soft state of which catalog images each
// node's cache holds (HeartbeatRequest.cached_images), for the scheduler's
// locality term (core.Input.ImageNodes). It is not replicated: it is only a
// preference, a new leader starts it empty and the next heartbeats rebuild
// it. The zero value is ready to use.
type imageCaches struct {
	mu     sync.Mutex
	byNode map[string][]string // node -> sorted digests, as last reported
	// nodes is digest -> sorted node names. It is replaced on a change,
	// never modified in place, so snapshot can hand it out without a copy.
	nodes map[string][]string
}

// checkCachedImages validates a heartbeat's cached_images: at most
// model.MaxCachedImages digests, each sha256:<64 hex>. It returns them
// sorted and without repeats (a new slice).
func checkCachedImages(ds []string) ([]string, error) {
	if len(ds) > model.MaxCachedImages {
		return nil, fmt.Errorf("cached_images lists %d digests; at most %d", len(ds), model.MaxCachedImages)
	}
	for i, d := range ds {
		if err := model.CheckDigest(d); err != nil {
			return nil, fmt.Errorf("cached_images[%d]: %w", i, err)
		}
	}
	out := slices.Clone(ds)
	slices.Sort(out)
	return slices.Compact(out), nil
}

// set records that node's cache holds ds (sorted, as checkCachedImages
// returns them). Called by Heartbeat on the leader; an unchanged list
// costs one comparison.
func (c *imageCaches) set(node string, ds []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.byNode[node]
	if slices.Equal(old, ds) {
		return
	}
	if c.byNode == nil {
		c.byNode = map[string][]string{}
	}
	if len(ds) == 0 {
		delete(c.byNode, node)
	} else {
		c.byNode[node] = ds
	}
	nodes := maps.Clone(c.nodes)
	if nodes == nil {
		nodes = map[string][]string{}
	}
	for _, d := range old {
		if _, held := slices.BinarySearch(ds, d); !held {
			rest := slices.DeleteFunc(slices.Clone(nodes[d]), func(n string) bool { return n == node })
			if len(rest) == 0 {
				delete(nodes, d)
			} else {
				nodes[d] = rest
			}
		}
	}
	for _, d := range ds {
		if _, had := slices.BinarySearch(old, d); !had {
			ns := nodes[d]
			if i, found := slices.BinarySearch(ns, node); !found {
				nodes[d] = slices.Insert(slices.Clone(ns), i, node)
			}
		}
	}
	c.nodes = nodes
}

// snapshot is digest -> names of the nodes holding it, for one scheduling
// cycle; the caller must not modify it. nil when no node reported images.
func (c *imageCaches) snapshot() map[string][]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.nodes) == 0 {
		return nil
	}
	return c.nodes
}

// reset forgets every node's images; a new leader calls it before its
// first cycle.
func (c *imageCaches) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.byNode, c.nodes = nil, nil
}

// coreInput is the scheduler core's input at now: the replicated state of
// snap (fsm.CoreInput) plus this member's soft state of which nodes hold
// which images (empty on a follower). The scheduling loop, the dry run
// and Explain all use it, so they place alike.
func (s *Server) coreInput(snap *state.Snapshot, now time.Time) core.Input {
	in := fsm.CoreInput(snap, now)
	in.ImageNodes = s.images.snapshot()
	return in
}
