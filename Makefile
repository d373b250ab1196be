# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	touch $(STAMP)

install: $(STAMP)

## make run: start the embedded server and run a real git workload through it
run: $(STAMP)
	$(VENV)/bin/gitaudit run-demo

## make test: the whole suite, with coverage (fails below 90%)
test: $(STAMP)
	$(PY) -m pytest --cov --cov-report=term $(PYTEST_ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache .coverage htmlcov
