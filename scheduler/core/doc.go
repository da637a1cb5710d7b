// Package core is the vhpc scheduler: a pure function from a cluster
// snapshot (nodes, jobs, allocations, usage, now) to a model.Plan.
//
// Schedule is called by the leader's scheduling loop (scheduler/server), by
// `hpcsub --dry-run`, by the tests and by hpcsim; CheckStart by the FSM right
// before it applies a start; Explain by `hpcsub show`. None of them do I/O,
// read the wall clock, start goroutines or keep state between calls: the same
// Input and Config always give the same Plan (maps are never iterated into
// the output unsorted).
//
// Imports: scheduler/model and the standard library only.
package core
