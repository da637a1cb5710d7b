package imagestore

import "slices"

// CachedDigests lists the digests ("sha256:...") of the images ready in the
// cache, sorted; images still being pulled are left out. The node agent
// sends them with every heartbeat (HeartbeatRequest.cached_images), so the
// master prefers this node for jobs that boot them.
func (c *Cache) CachedDigests() []string {
	c.mu.Lock()
	out := make([]string, 0, len(c.entries))
	for d, e := range c.entries {
		if e.pulling == nil {
			out = append(out, d)
		}
	}
	c.mu.Unlock()
	slices.Sort(out)
	return out
}
