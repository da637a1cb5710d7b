package agent

import "vhpc/scheduler/model"

// cachedImages is what heartbeatLoop reports in cached_images: the digests
// of the images ready in the node's cache (ImageCache.CachedDigests),
// sorted, nil without an image cache. A cache of more than
// model.MaxCachedImages images (the master refuses a longer list, which
// would cost the node its lease) reports the first that many by digest: a
// preference lost for the rest, nothing more.
func (a *Agent) cachedImages() []string {
	if a.cfg.Images == nil {
		return nil
	}
	ds := a.cfg.Images.CachedDigests()
	if len(ds) > model.MaxCachedImages {
		ds = ds[:model.MaxCachedImages]
	}
	return ds
}
