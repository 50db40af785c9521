# Two commands on a fresh clone:  `make demo`  and  `make test`.
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: setup python lakefs demo test dev bench down clean

setup: python lakefs  ## Python env from requirements.lock + lakeFS v1.84.0 built once per machine

python:
	@bash scripts/setup-python.sh

lakefs: python
	@$(BIN)/dataops-cv lakefs build >/dev/null

demo: setup  ## start local lakeFS, materialize the demo end to end, print main's new commit
	$(BIN)/dataops-cv demo

test: setup  ## run the tests (they start their own lakeFS)
	@bash scripts/run-tests.sh

dev: setup  ## lakeFS + Dagster UI on http://127.0.0.1:3000
	$(BIN)/dataops-cv dev

bench: setup
	$(BIN)/python benchmarks/isolation/bench.py

down:
	-$(BIN)/dataops-cv lakefs down

clean: down
	rm -rf .dataops-cv .venv
