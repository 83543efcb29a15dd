# cgpol: per-container network policy with pinned eBPF cgroup programs.
#
#   make demo       the tour: two runc containers, one allowed and one denied
#                   by annotation (as root, on Debian; installs what it needs)
#   make build      bin/cgpol (the CLI), bin/cgpol-hook (the OCI hook) and
#                   bin/cgpol-nri (the NRI plugin)
#   make install    the programs, the hooks.d files, the NRI plugin and the
#                   example config
#   make test       unit, fuzz-seed and privileged integration tests (run as root)
#   make bench      benchmarks, each a ratio against a baseline in the same run
#   make generate   rebuild bpf/bpf_bpfel.{go,o} with Debian's clang and libbpf-dev
#   make deps       install the Debian packages that tests and generate need
#   make fuzz       run every fuzz target for FUZZTIME each
#   make containerd build the pinned containerd that the NRI tests run, into _build/

GO        ?= go
BIN       := bin
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X main.version=$(VERSION)
FUZZTIME  ?= 20s
BENCHTIME ?= 20x

# Debian packages: clang/llvm/libbpf-dev/bpftool for generate and for looking
# at what is loaded; the rest for the end-to-end tests (runc, Podman).
DEB_PACKAGES := clang llvm libbpf-dev bpftool iproute2 busybox-static runc podman

# make install: PREFIX for the programs, DESTDIR to stage a package.
PREFIX    ?= /usr/local
DESTDIR   ?=
# Where Podman and CRI-O look for hooks.d files (CRI-O's hooks_dir, Podman's
# --hooks-dir default) and where older setups keep them.
HOOKS_DIRS := /usr/share/containers/oci/hooks.d /usr/libexec/oci/hooks.d

.PHONY: all build install uninstall demo generate check-generated test bench fuzz deps clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cgpol ./cmd/cgpol
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cgpol-hook ./hook

# install places the programs in $(PREFIX)/bin, the hooks.d files (pointed at
# $(PREFIX)/bin/cgpol-hook) in each of HOOKS_DIRS, the runc hooks snippet in
# $(PREFIX)/share/cgpol, and the example node config in /etc/cgpol unless one
# is there already.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/cgpol $(DESTDIR)/etc/cgpol
	install -m 0755 $(BIN)/cgpol $(BIN)/cgpol-hook $(DESTDIR)$(PREFIX)/bin/
	set -e; for dir in $(HOOKS_DIRS); do \
	  install -d $(DESTDIR)$$dir; \
	  for f in configs/hooks.d/*.json; do \
	    sed 's|/usr/local/bin/cgpol-hook|$(PREFIX)/bin/cgpol-hook|' $$f > $(DESTDIR)$$dir/$$(basename $$f); \
	    chmod 0644 $(DESTDIR)$$dir/$$(basename $$f); \
	  done; \
	done
	sed 's|/usr/local/bin/cgpol-hook|$(PREFIX)/bin/cgpol-hook|' configs/runc-hooks.json > $(DESTDIR)$(PREFIX)/share/cgpol/runc-hooks.json
	[ -e $(DESTDIR)/etc/cgpol/config.yaml ] || install -m 0644 configs/config.yaml $(DESTDIR)/etc/cgpol/config.yaml

# uninstall removes what install placed, except /etc/cgpol/config.yaml. It
# leaves the pinned BPF objects alone: see cgpol uninstall.
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/cgpol $(DESTDIR)$(PREFIX)/bin/cgpol-hook $(DESTDIR)$(PREFIX)/share/cgpol/runc-hooks.json
	for dir in $(HOOKS_DIRS); do for f in configs/hooks.d/*.json; do rm -f $(DESTDIR)$$dir/$$(basename $$f); done; done
	-rmdir $(DESTDIR)$(PREFIX)/share/cgpol 2>/dev/null

# demo needs root on Debian: it installs packages, builds, installs and runs
# two runc containers. See scripts/demo.sh.
demo:
	./scripts/demo.sh

# --- NRI plugin (cgpol-nri) and the containerd its tests run ---------------
# bin/cgpol-nri; make install-nri puts it in $(PREFIX)/bin, links it as a
# plugin that containerd launches, and adds its configuration unless one
# is there already. uninstall-nri keeps the configuration.
NRI_PLUGIN_DIR ?= /opt/nri/plugins
NRI_CONF_DIR   ?= /etc/nri/conf.d
NRI_PLUGIN_IDX ?= 10

# The containerd that the end-to-end tests drive, built from the Go module
# proxy at a pinned version and cached in _build/ (git-ignored). The tests
# find it there, or in $CGPOL_CONTAINERD_DIR.
CONTAINERD_VERSION := v2.4.2
CONTAINERD_DIR     := _build/containerd
CONTAINERD_STAMP   := $(CONTAINERD_DIR)/.built-$(CONTAINERD_VERSION)
CONTAINERD_CMDS    := containerd ctr containerd-shim-runc-v2

.PHONY: build-nri install-nri uninstall-nri containerd

build: build-nri
build-nri:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/cgpol-nri ./plugin

install: install-nri
install-nri: build-nri
	install -D -m 0755 $(BIN)/cgpol-nri $(DESTDIR)$(PREFIX)/bin/cgpol-nri
	install -d $(DESTDIR)$(NRI_PLUGIN_DIR)
	ln -sfn $(PREFIX)/bin/cgpol-nri $(DESTDIR)$(NRI_PLUGIN_DIR)/$(NRI_PLUGIN_IDX)-cgpol
	@conf=$(DESTDIR)$(NRI_CONF_DIR)/$(NRI_PLUGIN_IDX)-cgpol.conf; \
	if [ -e $$conf ]; then echo "keeping $$conf"; \
	else install -D -m 0644 configs/nri/10-cgpol.conf $$conf; fi

uninstall: uninstall-nri
uninstall-nri:
	rm -f $(DESTDIR)$(NRI_PLUGIN_DIR)/$(NRI_PLUGIN_IDX)-cgpol $(DESTDIR)$(PREFIX)/bin/cgpol-nri

containerd: $(CONTAINERD_STAMP)
$(CONTAINERD_STAMP):
	rm -f $(CONTAINERD_DIR)/.built-*
	GOBIN=$(abspath $(CONTAINERD_DIR)) $(GO) install \
	  $(foreach c,$(CONTAINERD_CMDS),github.com/containerd/containerd/v2/cmd/$(c)@$(CONTAINERD_VERSION))
	touch $@
# ---------------------------------------------------------------------------

generate:
	$(GO) generate ./bpf/

# check-generated fails if the committed BPF object is not what the C source
# compiles to.
check-generated: generate
	git diff --exit-code -- bpf/

test: containerd
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 20m ./...

bench: containerd
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
