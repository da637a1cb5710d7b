// Package jobdata moves a job's files through the cluster's store, the OCI
// registry that also holds the department images.
//
// A file set (the stage-in files of one submission, the stage-out files of
// one attempt of one task) is one OCI artifact in the repository of the
// job's department (Repository): every regular file is a layer stored as is,
// its sha256 its digest, named by its path in the job's work directory
// (the org.opencontainers.image.title annotation) with its permission bits.
// The manifest is stored under its own digest, which is what a job refers
// to. Blobs the registry holds already are not sent again, so a second
// submission of the same inputs sends only a manifest; the registry refuses
// a manifest naming a blob it lacks, so an upload cut halfway never becomes
// a set that a job can name (hpcsub just runs again and sends what is
// missing).
//
//	hpcsub ── Collect(submit dir, stageIn) ── Push ──▶ registry ──▶ Pull ── agent (work dir)
//	agent  ── Collect(work dir, stageOut)  ── Push ──▶ registry ──▶ Pull ── hpcsub fetch
//
// Paths are checked both ways: Collect opens everything through os.Root
// (no "..", no absolute path, no symlink followed), and Inspect refuses a
// manifest whose paths are not clean relative paths before Pull writes
// anything, again through os.Root: neither a client nor a registry can
// make a node read or write outside the job's directory.
//
// Callers: cmd/hpcsub (inputs up, outputs down), the node agent (inputs
// down, outputs up), scheduler/server (Inspect at submit: the set exists,
// its paths match the job's stageIn, its size is within the limit).
package jobdata
