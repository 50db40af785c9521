# Two commands on a fresh clone:  `make demo`  and  `make test`.
SHELL := /bin/bash
BIN := .venv/bin

.PHONY: setup python lakefs labelstudio demo test dev bench down clean

setup: python lakefs labelstudio  ## Python env + lakeFS v1.84.0 + Label Studio, once per machine

python:
	@bash scripts/setup-python.sh

lakefs: python
	@$(BIN)/dataops-cv lakefs build >/dev/null

labelstudio: python  ## Label Studio 1.23.2 in its own venv under ~/.cache/dataops-cv
	@$(BIN)/dataops-cv labelstudio install >/dev/null

demo: setup  ## start local lakeFS, materialize the demo end to end, print main's new commit
	$(BIN)/dataops-cv demo

test: setup  ## run the tests (they start their own lakeFS)
	@bash scripts/run-tests.sh

dev: setup  ## lakeFS + Dagster UI on http://127.0.0.1:3000
	$(BIN)/dataops-cv dev

bench: setup  ## the quick benchmarks (ingest takes ~5 min: run benchmarks/ingest/bench.py)
	$(BIN)/python benchmarks/isolation/bench.py
	$(BIN)/python benchmarks/checks/bench.py

down:
	-$(BIN)/dataops-cv lakefs down
	-$(BIN)/dataops-cv labelstudio down

clean: down
	rm -rf .dataops-cv .venv
