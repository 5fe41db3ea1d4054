# applbuild: build, test and install.
#   make deps        install the Debian packages builds and tests need (root)
#   make quickstart  deps + build + the example site's seeds
#   make test        every test, with real tools (fails if a tool is missing)
#   make plugin      build the Packer plugin and install it (packer plugins install --path)

GO      ?= go
PREFIX  ?= /usr/local
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X main.version=$(VERSION) -X main.commit=$(COMMIT)
export CGO_ENABLED ?= 0

# The example site, used by the quickstart.
SITE      ?= bank1
SITES_DIR ?= examples/sites

.PHONY: all build deps quickstart test test-short lint bench bench-ja4 install clean plugin

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/applbuild ./cmd/applbuild
	$(GO) build -trimpath -ldflags '-s -w -X main.version=$(VERSION)' -o bin/appliance ./cmd/appliance

deps:
	bash .ci/deps

# quickstart: what the README's first command runs.
quickstart: deps build
	./bin/applbuild keygen --site $(SITE) --sites-dir $(SITES_DIR)
	./bin/applbuild seed --site $(SITE) --sites-dir $(SITES_DIR)
	./bin/applbuild image gateway

# APPLBUILD_REQUIRE_TOOLS=1 turns "tool not installed" skips into failures,
# so a passing `make test` means every real-tool test really ran.
test: build
	APPLBUILD_REQUIRE_TOOLS=1 $(GO) test -count=1 -timeout 40m ./...

test-short:
	$(GO) test -short ./...

lint:
	$(GO) vet ./...
	@out="$$(gofmt -l $$(git ls-files '*.go') 2>/dev/null)"; if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# bench: every measured figure (build times, sizes, boots, seed ISO time,
# JA4 cost) into docs/benchmarks.md, raw samples in dist/bench/results.json.
# Needs root (mmdebstrap) and the tools of `make deps`; about 45 minutes on
# a 2-core machine under TCG. BENCH_FLAGS passes more, e.g. --boot-runs 3.
bench:
	CGO_ENABLED=0 $(GO) run ./verify/bench/cmd/applbuild-bench --doc docs/benchmarks.md --data dist/bench/results.json $(BENCH_FLAGS)

# TLS handshakes per second through HAProxy with JA4 on and off (same
# config otherwise), alternating rounds in one run: medians and their ratio.
bench-ja4:
	@mkdir -p dist
	APPLBUILD_REQUIRE_TOOLS=1 $(GO) test -run '^$$' -bench 'JA4HandshakeCost' -benchtime 1x -v ./roles/gateway/ | tee dist/bench-ja4.txt

# plugin: Packer >= 1.11 installs a local plugin from its path under a source
# address; the plugin reports its own version, so VERSION is not passed.
PACKER ?= packer
plugin:
	$(GO) build -trimpath -ldflags '-s -w' -o bin/packer-plugin-applbuild ./cmd/packer-plugin-applbuild
	$(PACKER) plugins install --path bin/packer-plugin-applbuild github.com/applbuild/applbuild

install: build
	install -D -m 0755 bin/applbuild $(DESTDIR)$(PREFIX)/bin/applbuild
	install -D -m 0755 bin/appliance $(DESTDIR)$(PREFIX)/bin/appliance

clean:
	rm -rf bin dist
