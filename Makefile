# Larder: common tasks. `make` (or `make help`) lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash

.PHONY: help demo test test-quick mutants build validate deploy bench fmt lint

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-12s\033[0m %s\n", $$1, $$2}'

demo: ## Run Larder end to end on this machine (installs what is missing on Debian)
	scripts/demo.sh

test: ## Every check and test, installing the test peers first (what CI runs)
	scripts/test.sh

test-quick: ## Unit tests of the larder crate only
	cargo test -p larder

mutants: ## Mutation testing of the core modules, every mutant (about 2 hours; docs/testing.md)
	scripts/mutants.sh

fmt: ## Format the code
	cargo fmt --all

lint: ## Format check and clippy
	cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings

build: ## sam build: arm64 release bootstraps of the three functions (cargo lambda) in .aws-sam/build
	sam build

validate: ## Lint the template: cfn-lint, serverless rules, sam validate --lint, checkov (infra/lint.sh)
	infra/lint.sh

# What README's "Deploy" says: `sam build`, then `sam deploy --guided` the first time (it saves
# the answers in samconfig.toml as parameter_overrides) and `sam deploy` after that.
deploy: ## sam build, then sam deploy --guided (first time) or sam deploy (answers saved in samconfig.toml)
	sam build
	if grep -q '^parameter_overrides' samconfig.toml; then sam deploy; else sam deploy --guided; fi

bench: ## Benchmarks side by side with Feast and raw Redis (see BENCHMARKS.md)
	bench/run-all.sh
