# cgpol: per-container network policy with pinned eBPF cgroup programs.
#
#   make build      bin/cgpol (the CLI)
#   make test       unit, fuzz-seed and privileged integration tests (run as root)
#   make bench      benchmarks, each a ratio against a baseline in the same run
#   make generate   rebuild bpf/bpf_bpfel.{go,o} with Debian's clang and libbpf-dev
#   make deps       install the Debian packages that tests and generate need
#   make fuzz       run every fuzz target for FUZZTIME each

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 20s
BENCHTIME ?= 20x

# Debian packages: clang/llvm/libbpf-dev/bpftool for generate and for looking
# at what is loaded; the rest for the end-to-end tests.
DEB_PACKAGES := clang llvm libbpf-dev bpftool iproute2 busybox-static

.PHONY: all build generate check-generated test bench fuzz deps clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cgpol ./cmd/cgpol

generate:
	$(GO) generate ./bpf/

# check-generated fails if the committed BPF object is not what the C source
# compiles to.
check-generated: generate
	git diff --exit-code -- bpf/

test:
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench:
	$(GO) test -run '^$$' -bench . -benchtime $(BENCHTIME) -timeout 30m ./...

fuzz:
	@for pkg in $$($(GO) list ./...); do \
	  for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$target"; \
	    $(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

deps:
	@if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
	missing=; for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

clean:
	rm -rf $(BIN)
