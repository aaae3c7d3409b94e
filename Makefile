# faultline — the commands CI and developers run. `make test` is the README's test command.
CARGO ?= cargo

.PHONY: build test lint fmt bench gate clean

build:
	$(CARGO) build --workspace --bins

test: build
	$(CARGO) test --workspace -- --test-threads=2

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

bench:
	$(CARGO) bench --workspace

clean:
	$(CARGO) clean
