#!/usr/bin/env bash
# The test command (`make test`, and what .ci/run calls): prepares the host
# parts the tests use for real, runs the static checks, verifies that the
# generated gRPC code is current, then runs every test tier that runs here:
# unit, cluster (real Raft on loopback), e2e (real libvirtd + QEMU guests),
# and the fuzz seed corpora.
set -euo pipefail
cd "$(dirname "$0")/.."
export GOFLAGS="${GOFLAGS:-} -tags=libvirt_dlopen"
# go-nvml's deprecation warnings stay out of the output (as in the Makefile).
export CGO_CFLAGS="${CGO_CFLAGS:--O2 -g -Wno-deprecated-declarations}"

./scripts/install-deps.sh
./scripts/start-libvirt.sh

echo "== the Debian package list provides what the project uses (tools/pkgcheck)" >&2
go run ./tools/pkgcheck

echo "== gofmt, go vet" >&2
bad=$(git ls-files '*.go' | grep -v '\.pb\.go$' | xargs gofmt -l)
if [ -n "$bad" ]; then echo "gofmt needed: $bad" >&2; exit 1; fi
go vet ./...

echo "== generated code is current (make generate)" >&2
./scripts/generate.sh >/dev/null
if ! git diff --quiet -- api/; then
  git diff --stat -- api/ >&2
  echo "api/*.pb.go differ from what make generate produces; commit the regenerated files" >&2
  exit 1
fi

echo "== go test (unit, cluster, e2e, fuzz seeds)" >&2
export VHPC_E2E=1
# cmd/hpcd holds the slowest e2e tests (two Debian guests per MPI job under
# TCG, and public/mpi:1's build when hpc-guest changed): 45 minutes per
# package leaves room on a loaded 2-core machine; the whole run takes
# about 20 minutes there.
go test -count=1 -timeout 45m ./...
