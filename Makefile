# Two commands on a fresh machine: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install bench bench-postgres clean

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

## make bench: the benchmark suite (tables printed, JSON in benchmarks/results/); BENCH_ARGS=--quick for a smoke run
bench: $(STAMP)
	$(PY) -m benchmarks $(BENCH_ARGS)

## make bench-postgres: install and start a local PostgreSQL 15 (root, Debian) and run the suite side by side
PG_DSN ?= postgresql://gitaudit:gitaudit@127.0.0.1:5432/gitaudit_bench
bench-postgres: $(STAMP)
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
	pg_ctlcluster 15 main start || true
	su postgres -c "psql -qc \"ALTER SYSTEM SET shared_buffers = '1GB'\" -c \"ALTER SYSTEM SET work_mem = '64MB'\""
	pg_ctlcluster 15 main restart
	su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='gitaudit'\" | grep -q 1 || psql -qc \"CREATE ROLE gitaudit LOGIN PASSWORD 'gitaudit'\""
	su postgres -c "psql -tAc \"SELECT 1 FROM pg_database WHERE datname='gitaudit_bench'\" | grep -q 1 || createdb -O gitaudit gitaudit_bench"
	$(PY) -m benchmarks --postgres $(PG_DSN) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) data build *.egg-info .pytest_cache .coverage htmlcov
