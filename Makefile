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
# make test ends with a smoke pass of every fuzz target, TEST_FUZZTIME each.
TEST_FUZZTIME ?= 3s
# make soak: kill points of the crash soak (internal/e2e TestSoak).
TILLKEEP_SOAK_KILLS ?= 1000

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

test: ## Vet, run every test with the race detector, then each fuzz target for TEST_FUZZTIME (3s)
	$(GO) vet ./...
	$(GO) test -race -timeout 14m ./...
	FUZZTIME=$(TEST_FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

demo: build ## Run a local platform and tills, and redeem coupons online and offline
	./scripts/demo.sh

.PHONY: package
package: ## Cross-compiled binaries, a .deb and .rpm per role and the Windows zip, into dist/
	GO=$(GO) ./scripts/package.sh

bench: ## Print every performance figure next to its target (writes a JSON table too)
	cd bench && $(GO) run .

fuzz: ## Run each fuzz target of the repository for FUZZTIME (default 30s)
	FUZZTIME=$(FUZZTIME) GO=$(GO) ./scripts/fuzz.sh

soak: ## Crash soak: SIGKILL tills and platform at 1,000 random points (TILLKEEP_SOAK_SEED replays)
	TILLKEEP_SOAK_KILLS=$(TILLKEEP_SOAK_KILLS) $(GO) test -count=1 -v -run '^TestSoak$$' -timeout 60m ./internal/e2e/

lint: ## gofmt must have nothing to say; go vet; staticcheck when installed
	@unformatted="$$(gofmt -l .)"; \
	if [[ -n "$$unformatted" ]]; then echo "gofmt -l: run gofmt -w on:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	@if [[ -f bench/go.mod ]]; then echo "(cd bench && $(GO) vet ./...)"; cd bench && $(GO) vet ./...; fi
	@if command -v staticcheck >/dev/null; then echo "staticcheck ./..."; staticcheck ./...; \
	else echo "staticcheck not installed: skipped (go install honnef.co/go/tools/cmd/staticcheck@latest)"; fi

clean: ## Remove build outputs (bin/, dist/)
	rm -rf bin dist
