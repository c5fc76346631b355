# The project's entry points. Each prepares .venv (pinned Ansible) first.
.PHONY: run plan test test-fast demo bench venv
SHELL := /bin/bash
INVENTORY ?= lab
ARGS ?=

venv:
	@scripts/bootstrap.sh

## Provision the machines of the inventory (default: this machine).
run: venv
	.venv/bin/ansible-playbook site.yml -i $(INVENTORY) $(ARGS)

## Show each host's plan and what would change, changing nothing.
plan: venv
	.venv/bin/ansible-playbook site.yml -i $(INVENTORY) --check --diff $(ARGS)

## Every test: yamllint, ansible-lint, syntax, pytest, molecule (container scenario).
test:
	@scripts/test.sh

## Everything but the container scenario.
test-fast:
	@scripts/test.sh --fast

## Provision a throwaway local container end to end and print its plan and report.
demo:
	@scripts/demo.sh

## Time first runs and no-op re-runs on 1, 2, 4 and 8 containers; table and plots in bench/ (ARGS=--quick: N=1,2).
bench:
	@scripts/bench.sh $(ARGS)
