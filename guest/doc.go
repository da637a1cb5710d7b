// Package guest is hpc-guest (cmd/hpc-guest): the PID 1 of every vhpc
// guest. It boots the tiny guest (mounts, kernel modules, the job share
// and scratch disk), runs the job described in the share's job.json,
// samples the guest's GPUs with nvidia-smi, writes exit.json and powers
// the guest off. In the guests of a multi-node job it also configures the
// job network and runs the remote-start service (the launcher) that MPI
// uses instead of ssh, and its client (vhpc-rsh).
//
// The files it exchanges with the host are defined in package guestproto,
// which the host imports instead of this package. hpc-guest must be a
// static, cgo-free binary (the initramfs has no dynamic loader): this
// package imports only the standard library (not package net, which links
// the cgo resolver when cgo is on), golang.org/x/sys/unix and guestproto,
// never nodeagent/gpu or go-nvml (cmd/hpc-guest's tests check it). See
// README.md for the protocol and the boot sequence.
package guest
