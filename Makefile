# hookpipe: webhooks in, counted exactly, streamed live to a dashboard.
# `make run-all` starts everything; `make test` is what CI runs.

SHELL   := /bin/bash
# The Go release with the latest standard-library security fixes, as the
# toolchain lines of go.work and every go.mod name it; the go command
# fetches it from the module proxy once (GOTOOLCHAIN=local on some
# machines would otherwise keep their own Go).
export GOTOOLCHAIN := go1.26.11
GO      ?= go
BIN     := bin
MODULES := task plumbing receiver relay dashboard producer devenv testdata
# Import paths, not ./dir/...: the go tool skips folders named testdata in
# relative patterns, and testdata/ is a module of its own here.
PKGS    := $(foreach m,$(MODULES),github.com/hookpipe/hookpipe/$(m)/...)
WASM    := dashboard/web/app.wasm
GOBIN   := $(shell $(GO) env GOPATH)/bin
HEY     := $(GOBIN)/hey
FUZZTIME ?= 10s

.PHONY: help build wasm run-all build-cluster run-cluster bench-cluster test-cluster test lint fuzz bench bench-receiver bench-relay bench-dashboard loadtest verify replay replay-same-ids hey clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

build: wasm ## build every binary into bin/ and the dashboard's wasm
	$(GO) build -o $(BIN)/ ./receiver ./relay ./producer ./dashboard ./devenv/cmd/run-all

wasm: $(WASM).br ## build the dashboard's WebAssembly, pre-compressed (only when its sources changed)

# The wasm and its compressed copies are rebuilt only when a Go file of the
# page or of the contract changed: brotli at its best level takes a minute.
WASM_SRC := $(shell find dashboard task plumbing/backoff -name '*.go' -not -name '*_test.go') dashboard/go.mod task/go.mod

$(WASM): $(WASM_SRC)
	GOOS=js GOARCH=wasm $(GO) build -trimpath -ldflags="-s -w" -o $(WASM) ./dashboard

$(WASM).br: $(WASM)
	$(GO) run ./dashboard/tools/compress $(WASM)

run-all: build ## start the whole pipeline (NATS and Redis embedded when none answers)
	$(BIN)/run-all

build-cluster: build ## build everything and nats-server, which the cluster runs as processes
	$(GO) build -o $(BIN)/ ./devenv/cmd/run-cluster github.com/nats-io/nats-server/v2

run-cluster: build-cluster ## 3 NATS nodes, a Redis Cluster (3 masters, 3 replicas), 2 receivers on one port, 2 relays, dashboard, producer
	$(BIN)/run-cluster

bench-cluster: build-cluster hey ## the receiver bench on the cluster (stream R3, Redis Cluster) beside one NATS and one Redis, same run, with the ratio; the relay bench on two relays of each
	$(GO) build -o $(BIN)/ ./relay/cmd/relaybench
	$(GO) run ./receiver/cmd/loadtest cluster -bin $(BIN) -relaybench $(BIN)/relaybench

test-cluster: build-cluster ## kill NATS, Redis, receiver and relay nodes of a cluster under load; nothing acknowledged is lost
	HOOKPIPE_CLUSTER_BIN=$(CURDIR)/$(BIN) $(GO) test -count=1 -timeout 15m -v ./devenv/cluster

# Browser tests use the wasm built by the wasm target and leave their
# screenshots in .artifacts/ (ignored by git).
export HOOKPIPE_TEST_WEB_DIR := $(abspath dashboard/web)
export HOOKPIPE_ARTIFACTS_DIR := $(abspath .artifacts)

test: lint wasm hey ## gofmt, go vet, every module's tests with -race, the end-to-end browser test, a short fuzz run
	$(GO) test -race -count=1 -timeout 20m $$($(GO) list $(PKGS) | grep -v /devenv/e2e$$)
	$(GO) test -race -count=1 -timeout 10m -v ./devenv/e2e
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) -fuzzminimizetime 2s ./task

lint: ## gofmt and go vet, native and for the browser
	@out=$$(gofmt -l $(MODULES)); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	GOOS=js GOARCH=wasm $(GO) vet ./task/... ./plumbing/backoff ./dashboard ./dashboard/internal/board/... ./dashboard/internal/chart/... ./dashboard/internal/ui/...

fuzz: ## fuzz the task decoder for longer (FUZZTIME=5m)
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(if $(filter 10s,$(FUZZTIME)),5m,$(FUZZTIME)) ./task

bench: wasm ## Go benchmarks of every module
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

bench-receiver: hey ## hey against the receiver and against a bare fasthttp handler, same run, with the ratio
	$(GO) run ./receiver/cmd/loadtest bench

bench-relay: ## webhooks through the receiver to 1,000 and 10,000 WebSocket clients: frames/s, latency, CPU, memory per connection
	$(GO) build -o $(BIN)/ ./receiver ./relay/cmd/relaybench
	$(BIN)/relaybench -receiver-bin $(BIN)/receiver -clients 1000 -rate 2000 -duration 10s -exact-latency
	HOOKPIPE_RELAY_MAX_UPDATE_EVENTS=20 $(BIN)/relaybench -receiver-bin $(BIN)/receiver -clients 10000 -rate 2000 -duration 10s -exact-latency

bench-dashboard: wasm ## cold and warm load of the PWA in headless Chromium, and the page's Go benchmarks
	$(GO) test -run '^$$' -bench . -benchmem ./dashboard/internal/board ./dashboard/internal/chart ./dashboard/internal/ui
	$(GO) test -run '^$$' -bench BenchmarkPage -benchtime 3x ./dashboard/internal/pagetest

# The tools beside a running run-all take its NATS and Redis credentials
# (when it started those servers itself) unless NATS_URL or REDIS_URL is set.
STACK_ENV := if [ -f .data/stack.env ]; then . ./.data/stack.env; fi;

loadtest: hey ## hey against the running receiver; checks Redis counted every 200
	@$(STACK_ENV) $(GO) run ./receiver/cmd/loadtest run

verify: ## compare Redis's counts with what the stream implies, per priority and per batch (VERIFY_FLAGS=--repair rebuilds)
	@$(STACK_ENV) $(GO) run ./receiver verify $(VERIFY_FLAGS)

replay: ## replay every committed batch against the running receiver, counts before and after
	@$(STACK_ENV) $(GO) run ./producer replay --speed max --counts testdata/batches/*.jsonl

replay-same-ids: ## replay a batch twice with its recorded ids: the second run must move no count
	@$(STACK_ENV) $(GO) run ./producer replay --speed max --counts --same-ids testdata/batches/small.jsonl
	@$(STACK_ENV) $(GO) run ./producer replay --speed max --counts --same-ids testdata/batches/small.jsonl

hey: ## install hey when it is missing
	@test -x $(HEY) || $(GO) install github.com/rakyll/hey@v0.1.5

clean: ## remove build output and run-all's data
	rm -rf $(BIN) .data .artifacts $(WASM) $(WASM).br $(WASM).gz
