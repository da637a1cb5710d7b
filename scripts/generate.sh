#!/usr/bin/env bash
# Regenerates api/*.pb.go from api/vhpc.proto with Debian's protoc and the
# plugins pinned as tools in go.mod. Installs missing Debian packages (as
# root) through scripts/install-deps.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
tools=$(mktemp -d); trap 'rm -rf "$tools"' EXIT
go build -o "$tools/protoc-gen-go" google.golang.org/protobuf/cmd/protoc-gen-go
go build -o "$tools/protoc-gen-go-grpc" google.golang.org/grpc/cmd/protoc-gen-go-grpc
protoc -I api -I /usr/include \
  --plugin=protoc-gen-go="$tools/protoc-gen-go" --plugin=protoc-gen-go-grpc="$tools/protoc-gen-go-grpc" \
  --go_out=api --go_opt=paths=source_relative \
  --go-grpc_out=api --go-grpc_opt=paths=source_relative \
  api/vhpc.proto api/vhpc_auth.proto
echo "generated: $(ls api/*.pb.go | tr '\n' ' ')"
