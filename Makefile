# tillkeep — `make` (or `make help`) lists the targets.
#
# Two commands set everything up:
#   make demo   run a platform and two tills locally and redeem coupons online and offline
#   make test   vet and run every test (with the race detector)

SHELL         := /bin/bash
.SHELLFLAGS   := -euo pipefail -c
.DEFAULT_GOAL := help

GO       ?= go
BIN      := bin/tillkeep
# git describe gives v1.2.3, v1.2.3-4-gabcdef0, or a bare commit; "dev" outside git.
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 30s

.PHONY: help build test demo bench fuzz soak lint clean

help: ## List the targets
	@echo "tillkeep $(VERSION): make <target>"
	@echo
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | \
		awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: VERSION=$(VERSION) FUZZTIME=$(FUZZTIME) GO=$(GO)"

build: ## Build the static binary bin/tillkeep, version stamped from git
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) ./cmd/tillkeep

test: ## Vet, then run every test with the race detector (< 15 min on 2 cores)
	$(GO) vet ./...
	$(GO) test -race -timeout 14m ./...

demo: build ## Run a local platform and tills, and redeem coupons online and offline
	./scripts/demo.sh

.PHONY: package
package: ## Cross-compiled binaries, a .deb and .rpm per role and the Windows zip, into dist/
	GO=$(GO) ./scripts/package.sh

bench: ## Print every performance figure next to its target (writes a JSON table too)
	cd bench && $(GO) run .

fuzz: ## Run each fuzz target of the repository for FUZZTIME (default 30s)
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

soak: ## Long crash-consistency run: 1,000 kill points (up to 60 min)
	$(GO) test -tags soak -run Soak -timeout 60m ./...

lint: ## gofmt must have nothing to say; go vet; staticcheck when installed
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt -l: run gofmt -w on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if [[ -f bench/go.mod ]]; then echo "(cd bench && $(GO) vet ./...)"; cd bench && $(GO) vet ./...; fi
	@if command -v staticcheck >/dev/null; then echo "staticcheck ./..."; staticcheck ./...; \
	else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

clean: ## Remove build outputs (bin/, dist/)
	rm -rf bin dist
