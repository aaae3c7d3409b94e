# faultline — the commands CI and developers run. `make test` is the README's test command.
CARGO ?= cargo
STORE ?= store

.PHONY: build release test gate run lint fmt bench bench-detection repro-check nightly soak clean

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

bench:
	$(CARGO) bench --workspace

# How often random faults find each known loss (10 seeds x 60 s per configuration, ~45 min).
bench-detection: release
	target/release/faultline suite detection --seeds 10 --run-time 60s --store $(STORE)/detection

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
