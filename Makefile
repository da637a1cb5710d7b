# vhpc: the two commands are `make demo` and `make test` (see README.md).
GO        ?= go
TAGS      := libvirt_dlopen
BIN       := bin
DATA      ?= $(CURDIR)/.data/demo
export CGO_ENABLED ?= 1

.PHONY: all build demo test soak generate lint clean

all: build

# build: every command into bin/. hpc-guest is built apart with cgo off: it
# is /init of the guest's initramfs, which has no dynamic loader, and agents
# find it next to themselves in bin/ (they never run the Go toolchain).
# cmd/hpc-guest's tests check that it stays static even with cgo on.
build:
	$(GO) build -tags $(TAGS) -o $(BIN)/ $$($(GO) list ./cmd/... | grep -v '/cmd/hpc-guest$$')
	CGO_ENABLED=0 $(GO) build -tags $(TAGS) -o $(BIN)/ ./cmd/hpc-guest

# demo: builds everything, installs what is missing (as root), starts hpcd dev,
# and runs the example jobs.
demo: build
	./scripts/demo.sh

# test: every tier that runs on this machine; .ci/run calls exactly this.
test:
	./scripts/test.sh

# soak: the HA fault test for many rounds (by hand; about 10 s a round).
SOAK_ROUNDS ?= 100
soak:
	VHPC_SOAK_ROUNDS=$(SOAK_ROUNDS) $(GO) test -tags $(TAGS) -count=1 -timeout 0 -run TestHAFaultsLoseNothing -v ./cmd/hpcd/

generate:
	./scripts/generate.sh

lint:
	@bad=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	if [ -n "$$bad" ]; then echo "gofmt needed: $$bad"; exit 1; fi
	$(GO) vet -tags $(TAGS) ./...

clean:
	rm -rf $(BIN)
