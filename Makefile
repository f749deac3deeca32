.DEFAULT_GOAL := help

help: ## list the tasks
	@grep -E '^[a-z/-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## run the shop on 127.0.0.1:8080 with SQLite under ./data
	go run ./cmd/widgetstore

run/postgres: ## run the shop on the local PostgreSQL
	DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable go run ./cmd/widgetstore

run/bench: ## run the shop without the per-client checkout limits, for make load (one client)
	go run ./cmd/widgetstore -checkouts-per-minute 0 -pending-units 0

test: ## run every test (PostgreSQL and chromium are used when present)
	go test -count=1 ./...

test/race: ## every test under the race detector (needs cgo)
	go test -race -count=1 ./...

chaos: ## only the tests that SIGKILL the real binary
	go test -count=1 -v ./chaos

bench: ## the payment round trip, and Send/Recv against SetEvent/GetEvent wake-ups
	go test -run '^$$' -bench . -benchtime 200x ./internal/checkout

load: ## drive the shop running on :8080 (make run/bench) with the load generator
	go run ./cmd/loadgen -rate 50 -duration 4s -product 4

# LOAD_ARGS adds to or overrides bench/load's flags, e.g. LOAD_ARGS="-customers 8 -rounds 3".
bench/load: ## the cost of a purchase: the shop built, started on fresh databases, 1 to 64 customers, both engines
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	go build -o "$$dir/widgetstore" ./cmd/widgetstore && \
	go run ./cmd/loadgen -shop "$$dir/widgetstore" -engine sqlite,postgres -customers 1,8,32,64 -duration 10s $(LOAD_ARGS)

# DEMO_SRC is a checkout of DBOS's demo shop: dbos-demo-apps/golang/widget-store.
bench/demo: ## this shop beside DBOS's own demo shop (on PostgreSQL; the shop on SQLite too), interleaved, 32 customers, 3 rounds of 20 s (DEMO_SRC=…)
	@test -n "$(DEMO_SRC)" || { echo "set DEMO_SRC to a checkout of dbos-demo-apps/golang/widget-store" >&2; exit 2; }
	@dir=$$(mktemp -d) && trap 'rm -rf "$$dir"' EXIT && \
	bash cmd/loadgen/demo/build.sh "$(DEMO_SRC)" "$$dir/demo" && \
	go build -o "$$dir/widgetstore" ./cmd/widgetstore && \
	go run ./cmd/loadgen -shop demo="$$dir/demo/widget-store",shop="$$dir/widgetstore" -engine postgres,sqlite -customers 32 -rounds 3 -duration 20s $(LOAD_ARGS)

# staticcheck's version, pinned (honnef.co/go/tools v0.8.2 is staticcheck
# 2026.2.2); .ci/run pins the same.
STATICCHECK_VERSION := v0.8.2
# No function outside the tests above complexity 15: past it, a function
# no longer reads as its steps. .ci/run pins the same.
GOCYCLO_VERSION := v0.6.0
GOBIN := $(or $(shell go env GOBIN),$(shell go env GOPATH)/bin)

lint: ## vet, staticcheck and gocyclo (installed at their pinned versions) and gofmt
	go vet ./...
	go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	$(GOBIN)/staticcheck ./...
	go install github.com/fzipp/gocyclo/cmd/gocyclo@$(GOCYCLO_VERSION)
	$(GOBIN)/gocyclo -over 15 $$(git ls-files '*.go' | grep -v '_test\.go$$')
	test -z "$$(gofmt -l .)"

ci: ## what CI runs
	bash .ci/run

.PHONY: help run run/postgres run/bench test test/race chaos bench load bench/load bench/demo lint ci
