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

# Per-path program cost (ns/packet) with BPF_PROG_TEST_RUN.
bench:
	$(GO) test -run '^$$' -bench . -benchtime 2000000x ./dataplane

demo: deps build
	./$(BIN)/eipgw-demo

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change: $$out"; exit 1; fi
	$(GO) vet ./...

clean:
	rm -rf $(BIN)
