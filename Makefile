# Quill's build, test and demo entry points. `make help` lists them.
#
# A machine starts on its own Go and ignores go.mod's toolchain line, so the
# toolchain is pinned here; the go command fetches it from the module proxy.
export GOTOOLCHAIN := go1.27.3
export GOFLAGS := -buildvcs=false
# A Go of 1.21 or later honours GOTOOLCHAIN; hack/ensure-go.sh finds one, or
# fetches the pinned toolchain with an older Go (installing Debian's when
# the machine has none), and names the folder to put first on PATH.
GO_BIN_DIR := $(shell hack/ensure-go.sh)
ifeq ($(GO_BIN_DIR),)
$(error hack/ensure-go.sh found no Go able to run $(GOTOOLCHAIN); see its message above)
endif
export PATH := $(GO_BIN_DIR):$(PATH)

SHELL := /usr/bin/env bash -o pipefail
BIN := $(CURDIR)/bin
CONTROLLER_GEN := $(BIN)/controller-gen
# go test's own -timeout; the harness ties every process it starts to the
# test binary, so a timed-out run leaves nothing behind.
TEST_TIMEOUT ?= 40m
DEMO_OUT ?= _out/demo

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: deps
deps: ## Install the system packages the tests need (apt, as root) if missing.
	@hack/install-deps.sh
	@hack/openssl35.sh >/dev/null

.PHONY: tools
tools: ## Build the control-plane binaries (kube-apiserver, etcd, cert-manager controller and webhook), kubectl, controller-gen and helm into bin/ (cached).
	@hack/build-tools.sh

.PHONY: build
build: ## Build quill-controller and quillctl into bin/.
	go build -o $(BIN)/quill-controller ./cmd/controller
	go build -o $(BIN)/quillctl ./cmd/quillctl

.PHONY: generate
generate: ## Regenerate deepcopy, CRDs and RBAC from the Go sources, and the chart's CRDs, RBAC and values schema from them.
	@hack/build-tools.sh controller-gen >/dev/null
	$(CONTROLLER_GEN) object:headerFile=hack/boilerplate.go.txt paths=./api/...
	$(CONTROLLER_GEN) crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(CONTROLLER_GEN) rbac:roleName=quill-controller paths=./controllers/... output:rbac:artifacts:config=config/rbac
	go run ./hack/chartgen

.PHONY: verify
verify: generate ## Check formatting, vet, go.mod tidiness and that generated files are committed.
	@files=$$(git ls-files '*.go') && [ -n "$$files" ] || { echo "verify: git ls-files listed no Go files"; exit 1; }; \
	unformatted=$$(gofmt -l $$files) || exit 1; \
	test -z "$$unformatted" || { echo "gofmt needed:"; echo "$$unformatted"; exit 1; }
	go vet ./...
	go mod tidy -diff
	@git diff --quiet -- api config charts; rc=$$?; \
	[ $$rc -le 1 ] || { echo "verify: git diff failed"; exit 1; }; \
	[ $$rc -eq 0 ] || { git diff --stat -- api config charts; echo "generated files are out of date: run make generate and commit"; exit 1; }
	@untracked=$$(git status --porcelain --untracked-files=all -- api config charts) || exit 1; \
	test -z "$$untracked" || { echo "untracked generated files:"; echo "$$untracked"; exit 1; }

.PHONY: test-unit
test-unit: ## Unit tests (no control plane).
	go test -count=1 ./pkg/... ./api/...

# The packages where goroutines share state on the signing path (the
# PKCS#11 session pool against SoftHSM2, the CA cache, the ledger index, the
# OCSP cache, the controllers) run a second time under the race detector.
RACE_PACKAGES := ./pkg/pkcs11/ ./pkg/kms/... ./pkg/castore/ ./pkg/ledger/ ./pkg/ocspserver/ ./pkg/crl/ ./controllers/...

.PHONY: test
test: deps tools build ## All tests: unit, integration (kube-apiserver) and end-to-end (cert-manager), then the concurrent packages under -race. What CI runs.
	go test -count=1 -timeout $(TEST_TIMEOUT) ./...
	go test -count=1 -race $(RACE_PACKAGES)

.PHONY: demo
demo: deps tools build ## Local control plane + cert-manager + Quill: issue certificates and use them for mutual TLS.
	go run ./hack/demo -out $(DEMO_OUT)

.PHONY: clean
clean: ## Remove bin/ links and _out/ (the tool cache in ~/.cache/quill stays).
	rm -rf $(BIN) _out

BENCH_N ?= 200

.PHONY: bench-issuance
bench-issuance: deps tools build ## Issuance benchmark: CA issuer vs Quill (every certificate in its ledger) vs Quill with an HSM key (docs/benchmarks.md).
	go run ./hack/bench/issuance -n $(BENCH_N)

LEDGER_N ?= 10000,100000,1000000
LEDGER_FORMAT ?= segments
LEDGER_ARGS ?=

.PHONY: bench-ledger-scale
bench-ledger-scale: deps tools build ## Ledger at scale: etcd, kube-apiserver and controller memory, start-up to OCSP/CRL served, audit report, at LEDGER_N entries stored as LEDGER_FORMAT (segments, legacy or both: legacy,segments) (docs/benchmarks.md).
	go run ./hack/bench/ledgerscale -n $(LEDGER_N) -format $(LEDGER_FORMAT) $(LEDGER_ARGS)

.PHONY: bench-ledger-estate
bench-ledger-estate: deps tools ## Ledger steady state: 5,000 pods on 1-hour certificates over 30 simulated days with retention; etcd, live entries and archive per day (docs/benchmarks.md).
	go run ./hack/bench/ledgerscale -estate $(LEDGER_ARGS)

# The version stamped into the image binary (and the chart's appVersion on release).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)

.PHONY: image-binary
image-binary: ## Build quill-controller as the Dockerfile does (cgo, glibc, version stamp) into bin/ and check it.
	hack/image-binary.sh $(BIN)/quill-controller-image $(VERSION)

# CI builds and checks the image's binary too.
test: image-binary

IMAGE ?= quill-controller:$(VERSION)

.PHONY: image
image: deps ## Build the Dockerfile with buildah FROM local Debian stand-ins for its base images (cached), tag it IMAGE (quill-controller:VERSION) and check it.
	@hack/images/image.sh $(IMAGE) $(VERSION) >/dev/null

# CI builds the image and test/image runs it under podman as the chart does.
test: image

.PHONY: chart-lint
chart-lint: ## helm lint the chart (make test also lints it, dry-runs it and runs it end to end).
	@hack/build-tools.sh helm >/dev/null
	$(BIN)/helm lint --strict charts/quill

.PHONY: bench-ocsp
bench-ocsp: ## OCSP responder benchmark: Quill vs openssl ocsp at 1, 8 and 32 clients (docs/benchmarks.md).
	go run ./hack/bench/ocsp -duration 8s

.PHONY: bench-crl
bench-crl: ## CRL build benchmark: pkg/crl vs openssl ca -gencrl at 10k and 100k entries (docs/benchmarks.md).
	go run ./hack/bench/crl

.PHONY: bench-startup
bench-startup: deps tools build ## Restart quill-controller over a ledger of BENCH_RECORDS (100000) entries, as sealed segments or BENCH_FORMAT=legacy: OCSP answers and readiness during the start (docs/benchmarks.md).
	QUILL_STARTUP_RECORDS=$(or $(BENCH_RECORDS),100000) QUILL_STARTUP_FORMAT=$(or $(BENCH_FORMAT),segments) go test -count=1 -timeout 60m -run TestRestartNeverAnswersWrongly -v ./test/startup 2>&1 | grep -E '^(=== RUN|--- |PASS|FAIL|ok|\s+startup_test)'

.PHONY: bench-tls
bench-tls: ## TLS handshake benchmark: classical, hybrid ML-KEM and ML-DSA chains issued by Quill, on loopback (docs/benchmarks.md).
	go run ./hack/bench/tls
