# Boomerang — see README.md. Every target works on a machine with only Go.

SHELL := /bin/bash
GO ?= go
BIN := $(CURDIR)/build/bin
# Every module of the workspace: plain `go test ./...` does not cross them.
MODULES := $(shell $(GO) list -m -f '{{.Dir}}/...')
# Fuzzing is bounded by executions, not time: on Go 1.26 a -fuzztime
# duration races the fuzzing coordinator's own deadline and can fail a run
# that found nothing ("context deadline exceeded", golang/go#75804). The
# counts below take 5-10 s a target on two cores; FUZZSCALE multiplies them.
FUZZSCALE ?= 1
fuzzx = $$(( $(1) * $(FUZZSCALE) ))x

export BOOMERANG_FX_RATES_FILE ?= $(CURDIR)/deploy/fx-rates.csv
export BOOMERANG_BASE_CURRENCY ?= EUR

.PHONY: docs chaos chaos-short run build test test-race vet fmt-check tidy-check fuzz bench bench-go bench-memory bench-import proto proto-deps proto-check lint compose-check clean

## run: start the whole platform in one process (embedded NATS, SQLite)
run:
	LEDGER_PROGRAMME_FILE=$${LEDGER_PROGRAMME_FILE:-$(CURDIR)/deploy/programme.yaml} $(GO) run ./cmd/boomerang

## build: build the binaries into build/bin
build:
	$(GO) build -o $(BIN)/ ./cmd/boomerang ./cmd/boomctl ./services/ingest/cmd/ingest ./services/ledger/cmd/ledger ./services/segmentation/cmd/segmentation ./services/feedback/cmd/feedback

## test: vet, check formatting and run every module's tests
test: vet fmt-check
	$(GO) test -count=1 -timeout 15m $(MODULES)

test-race:
	$(GO) test -race -count=1 -timeout 30m $(MODULES)

vet:
	$(GO) vet $(MODULES)

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## tidy-check: every module's go.mod is tidy on its own (container builds use GOWORK=off)
tidy-check:
	@for m in proto pkg services/ingest services/ledger services/segmentation services/feedback cmd; do \
	  (cd $$m && GOWORK=off $(GO) mod tidy -diff) || { echo "$$m: go.mod is not tidy: cd $$m && GOWORK=off go mod tidy"; exit 1; }; \
	done

## docs: regenerate the references made from the code (docs/configuration.md, docs/cli/); make test fails when they are stale
docs:
	$(GO) test -count=1 -run '^TestCLIReferenceIsCurrent$$' ./cmd/boomctl -update
	$(GO) test -count=1 -run '^TestConfigurationReferenceIsCurrent$$' ./cmd/internal/platform -update

## fuzz: run each fuzz target for a number of executions (FUZZSCALE=10 for ten times as many)
FUZZFLAGS = -run '^$$' -fuzzminimizetime 200x
fuzz:
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParse$$' -fuzztime $(call fuzzx,800000) ./pkg/money
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzDecode$$' -fuzztime $(call fuzzx,150000) ./services/ingest/internal/orderjson
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzDecodeMessage$$' -fuzztime $(call fuzzx,40000) ./services/ingest/internal/bus
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzShopifyMap$$' -fuzztime $(call fuzzx,40000) ./services/ingest/internal/webhook
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzParseTransactions$$' -fuzztime $(call fuzzx,400000) ./services/segmentation/clv
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzDecode$$' -fuzztime $(call fuzzx,15000) ./services/feedback/internal/bus
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzShopify$$' -fuzztime $(call fuzzx,100000) ./cmd/internal/orderimport
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzWooCommerce$$' -fuzztime $(call fuzzx,100000) ./cmd/internal/orderimport
	$(GO) test $(FUZZFLAGS) -fuzz '^FuzzJSONL$$' -fuzztime $(call fuzzx,50000) ./cmd/internal/orderimport

## bench: end-to-end load benchmark (orders/s, latency percentiles) and the Go benchmarks
bench: bench-e2e bench-go

bench-e2e:
	$(GO) run ./cmd/boombench
	$(GO) run ./cmd/boombench -services ingest -drain ledger,segmentation -paced 2s

bench-go:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(MODULES)

## bench-import: boomctl's import of a 1,000,000-order JSON Lines file beside plain SubmitOrders calls of the same orders (ORDERS=100000 to scale down, ROUNDS=2 to alternate the runs on a busy machine; target: the import at ≥ 0.8 of SubmitOrders)
ORDERS ?= 1000000
ROUNDS ?= 1
bench-import:
	$(GO) run ./cmd/boombench -import -orders $(ORDERS) -rounds $(ROUNDS)

## bench-memory: the single process's peak and steady resident size after a million orders from 100,000 customers (takes many minutes)
bench-memory:
	$(GO) run ./cmd/boombench -memory -orders 1000000 -customers 100000 -settle 5m

## chaos: the fault suite at full size (100,000 orders, 20 SIGKILLs, each mode; see README, Reliability)
CHAOSFLAGS = -tags faults -count=1 -v -timeout 90m
chaos:
	$(GO) test $(CHAOSFLAGS) ./cmd/faults -faults.orders 100000 -faults.kills 20

## chaos-short: the fault suite as CI runs it (10,000 orders, 3 SIGKILLs, each mode)
chaos-short:
	$(GO) test $(CHAOSFLAGS) ./cmd/faults -faults.orders 10000 -faults.kills 3

## proto: lint the .proto files and regenerate the Go code with pinned tools
proto: proto-deps
	$(BIN)/buf format -d --exit-code proto
	$(BIN)/buf lint proto
	rm -rf proto/gen/go
	PATH=$(BIN):$$PATH $(BIN)/buf generate

# buf and the protoc plugins are pinned in tools/ (outside the workspace);
# buf/validate/validate.proto comes from the pinned protovalidate module,
# because the buf registry is not reachable from every build machine.
proto-deps:
	cd tools && GOWORK=off $(GO) build -o $(BIN)/ github.com/bufbuild/buf/cmd/buf
	cd tools/protoc && GOWORK=off $(GO) build -o $(BIN)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc
	mkdir -p build/protodeps/buf/validate
	cd tools/protoc && GOWORK=off $(GO) mod download github.com/bufbuild/protovalidate
	dir=$$(cd tools/protoc && GOWORK=off $(GO) list -m -f '{{.Dir}}' github.com/bufbuild/protovalidate) && \
	  install -m 0644 $$dir/proto/protovalidate/buf/validate/validate.proto build/protodeps/buf/validate/

## proto-check: fail when the checked-in generated code is stale or buf lint fails
proto-check: proto
	@git diff --exit-code -- proto/gen || { echo "proto/gen is stale: run make proto and commit"; exit 1; }
	@test -z "$$(git status --porcelain -- proto/gen)" || { echo "proto/gen has untracked files: run make proto and commit"; git status --porcelain -- proto/gen; exit 1; }

## compose-check: validate docker-compose.yml (no Docker engine needed)
compose-check:
	.ci/compose-check

lint: vet fmt-check
	$(BIN)/buf lint proto

clean:
	rm -rf build data
