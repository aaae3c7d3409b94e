# faultline — the commands CI and developers run. `make test` is the README's test command.
CARGO ?= cargo
STORE ?= store

.PHONY: build release test gate run lint fmt bench bench-detection repro-check nightly soak soak-durable clean external-check

build:
	$(CARGO) build --workspace --bins

release:
	$(CARGO) build --workspace --bins --release

test: build
	$(CARGO) test --workspace -- --test-threads=2

# The correctness gate: a fixed matrix with fixed seeds (a few minutes); exit 0 only when every
# entry showed what it must. Writes $(STORE)/suite-ci/{junit.xml,summary.md,index.html}.
gate: build
	target/debug/faultline suite ci --store $(STORE)/suite-ci

# A 30-second demonstration: 3 brokers, acks=all, every fault.
run: build
	target/debug/faultline test --nodes 3 --acks all --nemesis all --time-limit 30s --store $(STORE)

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# Every benchmark, its JSON lines gathered into bench/results.json with the machine, date and
# load (scripts/collect-bench.sh; RUNS=3 for min/median/max). BENCHMARKS.md has the table.
bench: release
	RUNS=$(or $(RUNS),1) scripts/collect-bench.sh

# How often random faults find each known loss: 7 configurations (unclean election, acks=1 and
# durable under Kafka 4.1 and 3.7; 0.10.2's HW truncation) x 10 seeds x 60 s, about 80 min.
bench-detection: release
	target/release/faultline suite detection --seeds 10 --run-time 60s --store $(STORE)/detection
	scripts/record-figures.sh detection $(STORE)/detection/detection.json

# Every scenario 20 times with different seeds: each must reproduce 20 of 20.
repro-check: build
	@for s in $$(target/debug/faultline list | sed -n '/^scenarios/,$$p' | tail -n +2 | awk '{print $$1}'); do \
	  ok=0; for seed in $$(seq 1 20); do \
	    target/debug/faultline repro $$s --seed $$seed --store $(STORE)/repro-check >/dev/null 2>&1 && ok=$$((ok+1)); \
	  done; echo "$$s: reproduced $$ok of 20"; \
	done

# Random chaos for DURATION (default 8h), as a nightly job would run it.
DURATION ?= 8h
nightly: release
	target/release/faultline suite nightly --duration $(DURATION) --store $(STORE)/nightly

clean:
	$(CARGO) clean

# False positives: the durable configuration under every fault package, 50 seeds x 60 s each
# (hours; not CI). SEEDS, RUN_SECONDS, PACKAGES and JOBS shorten it.
soak-durable: release
	STORE=$(STORE) scripts/soak-durable.sh

# A 10-minute run with every fault at a high rate: harness and node memory, open files and
# threads sampled from /proc; fails if the harness grew. DURATION shortens it.
soak: release
	STORE=$(STORE) scripts/soak.sh

# Kafka-protocol systems under faults, each by its system file (docs/systems.md): faultline-node
# by its file, Tansu 0.6.0 on SQLite (kill, pause, partition; power loss with FUSE) and three
# Tansu brokers on PostgreSQL. Tansu runs say SKIPPED when tansu is not installed
# (scripts/install-tansu.sh installs it and PostgreSQL). Not CI: Tansu's build takes 15-25 min.
external-check: build
	STORE=$(STORE) scripts/external-check.sh
