# Larder: common tasks. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help demo test test-quick build validate deploy bench fmt lint

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

demo: ## Run Larder end to end on this machine (installs what is missing on Debian)
	scripts/demo.sh

test: ## Every check and test, installing the test peers first (what CI runs)
	scripts/test.sh

test-quick: ## Unit tests of the larder crate only
	cargo test -p larder

fmt: ## Format the code
	cargo fmt --all

lint: ## Format check and clippy
	cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings

build: ## Release binaries for Lambda (arm64, provided.al2023) in target/lambda/
	cargo lambda build --release --arm64

validate: ## Lint the SAM template
	cfn-lint infra/template.yaml

deploy: build ## Deploy with SAM (uses infra/samconfig.toml; prompts the first time)
	cd infra && sam deploy --guided

bench: ## Benchmarks side by side with Feast and raw Redis (see BENCHMARKS.md)
	bench/run-all.sh
