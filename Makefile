# carehub — one command per job. `make help` lists them.
SHELL := /bin/bash
export GOTOOLCHAIN := local
GO ?= go
BIN := bin
PKGS := ./...
TEST_TIMEOUT ?= 30m

.PHONY: help deps build test check depcheck fmt vet lint demo stop-demo cluster-demo test-cluster bench-cluster bench-ingest bench-ingest-telegraf bench-ingest-embedded bench-steady bench-storm bench-alerts bench-api bench-web bench-push bench-quality security-check screenshots clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

deps: ## install Mosquitto (Debian) and build InfluxDB 1.8 into the cache, once
	@deploy/dev/setup.sh

build: ## build carehub and homesim into bin/
	$(GO) build -o $(BIN)/ ./cmd/carehub ./cmd/homesim ./cmd/carebench ./cmd/carecluster

fmt: ## fail when a file is not gofmt-ed
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet: ## go vet
	$(GO) vet $(PKGS)

lint: ## golangci-lint with .golangci.yml (builds the pinned version into the cache once)
	@deploy/dev/lint.sh $(PKGS)

test: deps fmt vet ## every test, against real Mosquitto, NATS and InfluxDB, with the race detector
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(PKGS)

check: lint test depcheck ## what CI runs

depcheck: ## newer releases of direct dependencies; govulncheck where its database is reachable
	@deploy/dev/depcheck.sh

demo: deps build ## carehub on its embedded broker and NATS, InfluxDB, and homesim with a handful of homes
	@deploy/dev/demo.sh

stop-demo: ## stop what `make demo` started
	@deploy/dev/demo.sh stop

cluster-demo: deps build ## carehub scaled out: 3 NATS nodes, 2 Mosquitto, InfluxDB, 3 carehub instances and homesim on both brokers (Ctrl-C stops all)
	@$(BIN)/carecluster

test-cluster: deps ## fault tests on that topology: kill -9 a NATS node, a carehub, a broker; nothing lost or doubled (about 5 min)
	$(GO) test -race -count=1 -timeout 12m -tags cluster -v -run . ./internal/cluster/

bench-ingest: deps build ## ingest throughput and lag through Mosquitto into InfluxDB (INGEST_ARGS="-compare telegraf" adds Telegraf)
	@$(BIN)/carebench ingest $(INGEST_ARGS)

bench-ingest-telegraf: deps build ## bench-ingest beside Telegraf v1.37.2 on the same load (builds Telegraf into the cache once, ~10 min)
	@deploy/dev/telegraf.sh install
	@$(BIN)/carebench ingest -compare telegraf $(INGEST_ARGS)

bench-ingest-embedded: deps build ## the same load through carehub's embedded broker, one connection per device
	@$(BIN)/carebench ingest -embedded

STEADY_RATE ?= 10000
STEADY_FOR ?= 10m
STORM_RATE ?= 3500
STORM_FOR ?= 10m

bench-steady: deps build ## steady load (STEADY_RATE msgs/s for STEADY_FOR, default 10000 for 10m): CPU per message and RSS sampled over time
	@$(BIN)/carebench ingest -messages 20000 -paced-rate $(STEADY_RATE) -paced-for $(STEADY_FOR) $(INGEST_ARGS)

bench-storm: deps build ## alert storm (STORM_RATE msgs/s for STORM_FOR, default 3500 for 10m: systolic_bp crossing its threshold and back, about 0.3 transitions a message): CPU, RSS and alerts over time
	@$(BIN)/carebench ingest -storm -messages 20000 -paced-rate $(STORM_RATE) -paced-for $(STORM_FOR) $(INGEST_ARGS)

bench-cluster: deps build ## bench-ingest's 200,000 messages through 3 carehub instances on 3 NATS nodes and 2 brokers, then through 1; recovery from a killed NATS node and instance (CLUSTER_ARGS="-messages 20000")
	@$(BIN)/carebench cluster $(CLUSTER_ARGS)

bench-alerts: deps build ## device publish to alert at a NATS subscriber, under ingest load
	@$(BIN)/carebench alerts

bench-api: deps build ## readings and overview latency on a week of data, SSE fan-out
	@$(BIN)/carebench api

bench-web: deps build ## console pages' time (overview, resident day/week/month) on a week of data, their JavaScript, SOS to inbox row in chromium under ingest load
	@$(BIN)/carebench web $(WEB_ARGS)

bench-push: deps build ## Web Push: SOS press to encrypted push p99 < 1 s and 500 phones in < 2 s under bench-alerts' load, carehub's heap sampled flat (PUSH_ARGS="-duration 5m")
	@CAREHUB_PUSH_SLA=1 $(GO) test -count=1 -run TestFanOut500Phones -v ./internal/notify; a=$$?; \
	$(BIN)/carebench push $(PUSH_ARGS); b=$$?; exit $$((a | b))

bench-quality: build ## false alarms per resident-day and emergency detection vs SLA on homesim homes (in-process, simulated clock)
	@$(BIN)/carebench quality

security-check: deps build ## black-box attacks on a running carehub (flood, oversized CONNECT, NATS forgery, takeover, logins, export memory)
	@$(BIN)/carebench security

screenshots: deps ## the console's pages (registry included) and the phone app's (390 px) in Korean and English, as PNGs in screenshots/ (chromium, real NATS and InfluxDB)
	CAREHUB_SCREENSHOTS=$(CURDIR)/screenshots go test -count=1 -run TestBrowser ./web

clean: ## remove build output and local run data
	rm -rf $(BIN) .run
