# eipgw: see README.md. Targets that touch namespaces or BPF need root.
GO    ?= go
BIN   := bin

.PHONY: all deps generate build install package test bench demo lint clean
PREFIX  ?= /usr/local
DESTDIR ?=

all: build

deps:
	./scripts/deps.sh

# Regenerates the BPF object and its Go bindings from bpf/ (needs clang). The output
# is committed; CI checks it is current with: make generate && git diff --exit-code
generate:
	./scripts/deps.sh --generate
	$(GO) generate ./dataplane ./control/model

build:
	$(GO) build -buildvcs=auto -o $(BIN)/ ./cmd/...

# The binaries, the systemd units (pointing at them), the example configuration
# unless one is there, and credentials with a random secret unless there are some:
# what the Debian package installs, under PREFIX. `systemctl daemon-reload` after.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)/etc/systemd/system $(DESTDIR)/etc/eipgw
	install -m 0755 $(BIN)/eipd $(BIN)/eipctl $(BIN)/eipdp $(DESTDIR)$(PREFIX)/bin/
	for u in eipd eipd-agent; do \
		sed 's|/usr/bin/eipd|$(PREFIX)/bin/eipd|g' packaging/systemd/$$u.service >$(DESTDIR)/etc/systemd/system/$$u.service; \
	done
	[ -e $(DESTDIR)/etc/eipgw/eipd.json ] || install -m 0644 examples/eipd.json $(DESTDIR)/etc/eipgw/eipd.json
	DPKG_ROOT=$(DESTDIR) sh packaging/deb/postinst configure

# The Debian package (dpkg-deb): dist/eipgw_VERSION_ARCH.deb.
package:
	./scripts/package.sh dist

test: deps
	./scripts/test.sh

# Packet rates against the kernel's NAT and the XDP floor, program cost, scale
# curves: writes bench/results/ (see bench/README.md). deps installs etcd, without
# which the cluster's figures are reported as not measured.
bench: deps
	$(GO) run ./bench

demo: deps build
	./$(BIN)/eipgw-demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN) dist
