# drkit's build. `make demo` and `make test` are the two commands a fresh machine
# needs; both install what they use through `make deps` (idempotent, a quick no-op
# once everything is there).

SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
GO ?= go
BIN := $(CURDIR)/bin

# Pinned tools, installed from the Go module proxy into ./bin (git-ignored).
MINIO_VERSION       := v0.0.0-20260212201848-7aac2a2c5b7c
VERSITYGW_VERSION   := v1.8.0
STATICCHECK_VERSION := v0.8.2
HELM_VERSION        := v3.17.3
# FerretDB stands in for MongoDB (no mongod here); its version is pinned in
# internal/testenv/ferretdb/go.mod, a module of its own.
FERRETDB_VERSION    := v1.24.2

# Debian packages the tests and benchmarks run: real servers and anchor tools.
APT_PACKAGES := postgresql mariadb-server mariadb-client mydumper redis-server prometheus pgbackrest rclone prometheus-postgres-exporter prometheus-mysqld-exporter systemd time bc curl

GO_TOOLS := $(BIN)/.minio-$(MINIO_VERSION) $(BIN)/.versitygw-$(VERSITYGW_VERSION) $(BIN)/.staticcheck-$(STATICCHECK_VERSION) $(BIN)/.helm-$(HELM_VERSION) $(BIN)/.ferretdb-test-$(FERRETDB_VERSION)

# -p 1: one package at a time per stream. Tests that bound real time (commits
# lost at a kill within 2 x flush_interval, a lease taken over within its TTL)
# need the CPU a server would have; on 2 cores two such packages side by side
# starve each other.
TEST_FLAGS ?= -race -p 1 -timeout 20m

# make test runs the packages in two streams, since most of a test's time is
# spent waiting on servers: the heavy packages (long outages, alert rules,
# many servers) beside all the light ones, then the SOLO packages (kills
# under load, zero RPO, three drd holding a lease) alone.
MODULE     := github.com/drkit/drkit
HEAVY_PKGS := storage/s3 deploy binlog/mysql binlog/postgres snapshots/redis
SOLO_PKGS  := snapshots/mysql snapshots/postgres
# Tests of the SOLO packages that bound no real time (generous waits on
# metrics): they run at the end of the heavy stream, and the solo run skips them.
UNTIMED    := ^(TestSyncStallIsVisible|TestSemiSyncFallbackIsVisible)$$

.PHONY: all deps deps-apt deps-demo apt-install deps-go build test lint bench bench-storage bench-postgres bench-mysql bench-redis bench-mongodb bench-monitor demo clean

all: build

## deps: install missing Debian packages and the pinned Go tools
deps: deps-apt deps-go

# The demo needs only PostgreSQL (server, client, pgbench) and drkit itself.
DEMO_APT_PACKAGES := postgresql python3

deps-apt:
	@$(MAKE) --no-print-directory apt-install PKGS="$(APT_PACKAGES)"

## deps-demo: what make demo needs, nothing more (no MinIO, versitygw, helm, ...)
deps-demo:
	@$(MAKE) --no-print-directory apt-install PKGS="$(DEMO_APT_PACKAGES)"

apt-install:
	@missing=""; \
	for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' "$$p" 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=""; [ "$$(id -u)" -eq 0 ] || sudo="sudo"; \
	  echo "deps: installing$$missing"; \
	  $$sudo apt-get update -qq; \
	  DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq --no-install-recommends $$missing; \
	fi

deps-go: $(GO_TOOLS)

# A stamp per pinned version: changing a pin reinstalls, an unchanged one is a no-op.
$(BIN)/.minio-$(MINIO_VERSION):
	@echo "deps: go install minio@$(MINIO_VERSION) (a few minutes the first time)"
	GOBIN=$(BIN) $(GO) install github.com/minio/minio@$(MINIO_VERSION)
	@touch $@

$(BIN)/.versitygw-$(VERSITYGW_VERSION):
	@echo "deps: go install versitygw@$(VERSITYGW_VERSION)"
	GOBIN=$(BIN) $(GO) install github.com/versity/versitygw/cmd/versitygw@$(VERSITYGW_VERSION)
	@touch $@

# helm lints and renders deploy/helm in `make test`.
$(BIN)/.helm-$(HELM_VERSION):
	@echo "deps: go install helm@$(HELM_VERSION)"
	GOBIN=$(BIN) $(GO) install helm.sh/helm/v3/cmd/helm@$(HELM_VERSION)
	@touch $@

# ./bin/ferretdb-test ADDR DIR: FerretDB's embeddable package with SQLite,
# built from its own module so its dependencies stay out of drkit's.
$(BIN)/.ferretdb-test-$(FERRETDB_VERSION): internal/testenv/ferretdb/go.mod internal/testenv/ferretdb/main.go
	@echo "deps: build ferretdb-test (FerretDB $(FERRETDB_VERSION))"
	cd internal/testenv/ferretdb && $(GO) build -buildvcs=false -o $(BIN)/ferretdb-test .
	@touch $@

$(BIN)/.staticcheck-$(STATICCHECK_VERSION):
	@echo "deps: go install staticcheck@$(STATICCHECK_VERSION)"
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	@touch $@

## build: build drd and drctl into ./bin
build:
	$(GO) build -o $(BIN)/drd ./cmd/drd
	$(GO) build -o $(BIN)/drctl ./cmd/drctl

## test: deps, lint, then every test against real servers. The test binaries
## are compiled two at a time first: with -p 1 (one test binary at a time,
## the servers they start would fight over 2 cores) go test also compiles one
## package at a time. The light packages' output follows the heavy ones'.
test: deps lint
	$(GO) test $(filter -race,$(TEST_FLAGS)) -p 2 -count=1 -run '^$$' ./... >/dev/null
	@# The drd and drctl the tests run (testenv.Binary), built before the two
	@# streams: an up-to-date go build -o only touches its output.
	$(GO) build -o $(BIN)/test/drd ./cmd/drd
	$(GO) build -o $(BIN)/test/drctl ./cmd/drctl
	@light_pkgs=$$($(GO) list ./... | grep -vxF $(foreach p,$(HEAVY_PKGS) $(SOLO_PKGS),-e $(MODULE)/$(p))); \
	light_log=$$(mktemp); \
	$(GO) test $(TEST_FLAGS) $$light_pkgs >"$$light_log" 2>&1 & light_pid=$$!; \
	heavy=0; $(GO) test $(TEST_FLAGS) $(addprefix ./,$(HEAVY_PKGS)) || heavy=$$?; \
	$(GO) test $(TEST_FLAGS) -run '$(UNTIMED)' $(addprefix ./,$(SOLO_PKGS)) || heavy=$$?; \
	light=0; wait $$light_pid || light=$$?; cat "$$light_log"; rm -f "$$light_log"; \
	solo=0; $(GO) test $(TEST_FLAGS) -skip '$(UNTIMED)' $(addprefix ./,$(SOLO_PKGS)) || solo=$$?; \
	if [ $$heavy -ne 0 ] || [ $$light -ne 0 ] || [ $$solo -ne 0 ]; then echo "make test: FAIL (heavy $$heavy, light $$light, solo $$solo)"; exit 1; fi

## lint: gofmt, go vet and staticcheck must all be clean; no built binary tracked
lint: $(BIN)/.staticcheck-$(STATICCHECK_VERSION)
	@big=""; while IFS= read -r -d '' f; do \
	  [ -f "$$f" ] && [ "$$(stat -c %s "$$f")" -gt 1048576 ] || continue; \
	  if [ -x "$$f" ] || [ "$$(head -c 4 "$$f" | tr -d '\000')" = "$$(printf '\177ELF')" ]; then big="$$big $$f"; fi; \
	done < <(git ls-files -z 2>/dev/null); \
	if [ -n "$$big" ]; then echo "tracked executables over 1 MB:$$big (build output belongs in bin/, which git ignores: git rm --cached them)"; exit 1; fi
	@unformatted="$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './bin/*'))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/staticcheck ./...

## bench: side-by-side benchmarks against the anchor tools, reported as ratios
bench: bench-storage bench-postgres bench-mysql bench-redis bench-mongodb bench-monitor bench-outscale bench-ha bench-sync

## bench-storage: drkit vs rclone uploading 1 GiB and 4 GiB to a loopback MinIO
bench-storage: deps build
	bench/storage.sh

## bench-postgres: drkit vs pgBackRest and pg_basebackup on a pgbench database (SCALE=60)
bench-postgres: deps build
	bench/postgres.sh

## bench-mysql: drkit vs mariadb-dump, mariadb-binlog on a sysbench-like database (TABLES=8 ROWS=500000 TXNS=100000)
bench-mysql: deps build
	bench/mysql.sh

## bench-mongodb: drctl backup and restore MB/s and drd's exposure under load, on FerretDB (DOCS=200000 SIZE=1000 LOAD=30)
bench-mongodb: deps build
	bench/mongodb.sh

## bench-redis: drd's capture cost and exposure under redis-benchmark, drctl backup vs redis-cli --rdb, restore rate (KEYS=10000000 VALUE=100 OPS=1000000)
bench-redis: deps build
	bench/redis.sh

## bench-monitor: alert latency with shipped defaults; drd's idle CPU/RSS with 4 clusters vs the exporters
bench-monitor: deps build
	bench/monitor.sh

## bench-outscale: the OOS hop of an OUTSCALE copy, drkit vs rclone copyto between two MinIOs (SIZE_MIB=4096)
bench-outscale: deps build
	bench/outscale.sh $(SIZE_MIB)

## bench-ha: drd.ha lease failover, SIGKILL of the holder to the first binlog chunk from the new one, 10 kills (p50/p99)
bench-ha: deps build
	DRKIT_BENCH_HA=1 $(GO) test -count=1 -v -timeout 20m -run TestLeaseFailoverTime ./snapshots/mysql/ | grep -E 'round|lease failover|FAIL|ok'

## bench-sync: pgbench with drd's zero-RPO modes (off, remote_write, remote_durable; file:// and MinIO) beside a synchronous standby
bench-sync: deps build
	DRKIT_BENCH_SYNC=1 $(GO) test -count=1 -v -timeout 20m -run TestSyncCommitBench ./snapshots/postgres/ | grep -E 'tps|case|anchor|drd sync|FAIL|ok'

## demo: the main job on the embedded default (file:// regions, throwaway PostgreSQL)
demo: deps-demo build
	deploy/demo/demo.sh

clean:
	rm -rf $(BIN)/drd $(BIN)/drctl
