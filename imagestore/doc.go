// Package imagestore keeps vhpc department images in an OCI distribution
// registry and on the nodes that boot them.
//
// An image directory (what the builder writes, what the agent boots) holds
// config.json (template, packages, provenance) and the files of LayerRoles:
// a kernel, an initrd and a root disk (root.qcow2). Push stores such a
// directory as one OCI artifact: the config as a blob of ConfigMediaType and
// each file as a layer of its role's media type (gzip'd when a sample shows
// it shrinks), named by the org.opencontainers.image.title annotation.
// Pull fetches an artifact by digest, checks every blob's sha256 while it
// streams, and lays out the same directory; Cache keeps pulled images on a
// node within a size limit (LRU, never evicting a pinned image).
//
// Callers: cmd/hpc (image push, inspect), hpcd dev (StartRegistry), the node
// agent (Cache). Everything registry-facing goes through
// github.com/google/go-containerregistry; nothing here writes registry HTTP.
package imagestore
