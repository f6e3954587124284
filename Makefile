# mediabox: the README's commands. `make run` serves on the embedded default (SQLite and
# files under ./data); `make test` runs every test (see scripts/test.sh for PostgreSQL).
.PHONY: run test lint check-deps bench build

run:
	cargo run --bin mediabox -- serve

build:
	cargo build --workspace --all-targets

test:
	./scripts/test.sh

lint: check-deps
	./scripts/build-app.sh --check
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings

check-deps:
	./scripts/check-deps.sh

bench:
	./bench/run.sh
