# eipgw: see README.md. Targets that touch namespaces or BPF need root.
GO    ?= go
BIN   := bin

.PHONY: all deps generate build test bench demo lint clean

all: build

deps:
	./scripts/deps.sh

# Regenerates the BPF object and its Go bindings from bpf/ (needs clang). The output
# is committed; CI checks it is current with: make generate && git diff --exit-code
generate:
	./scripts/deps.sh --generate
	$(GO) generate ./dataplane

build:
	$(GO) build -o $(BIN)/ ./cmd/...

test: deps
	./scripts/test.sh

# Packet rates against the kernel's NAT and the XDP floor, program cost, scale
# curves: writes bench/results/ (see bench/README.md).
bench:
	$(GO) run ./bench

demo: deps build
	./$(BIN)/eipgw-demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
