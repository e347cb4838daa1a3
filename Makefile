# Two commands on a fresh machine: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv test lint demo bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "interp needs Python >= 3.11 (PYTHON=$(PYTHON))"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadfile tests

lint: $(STAMP)
	$(VENV)/bin/ruff check interp experiments benchmarks tests

demo: $(STAMP)
	$(PY) -m experiments.demo --workdir runs/demo

bench: $(STAMP)
	$(PY) -m benchmarks.synthparts

clean:
	rm -rf $(VENV) runs .pytest_cache

# Attribution vs Captum (benchmarks/attribution.py): its own venv with torch (CPU) and captum beside the interp stack.
BENCH_VENV := .bench-venv
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): pyproject.toml requirements.lock benchmarks/requirements-captum.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install -q --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install -q -r requirements.lock
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps -r benchmarks/requirements-captum.txt
	$(BENCH_VENV)/bin/python -m pip install -q --no-deps -e .
	$(BENCH_VENV)/bin/python -m pip check
	touch $(BENCH_STAMP)

.PHONY: bench-captum
bench-captum: $(BENCH_STAMP)
	$(BENCH_VENV)/bin/python -m benchmarks.attribution --memory

# Feature visualization vs Lucent (benchmarks/featviz.py): its own venv with torch (CPU), kornia and Lucent beside the interp stack.
# pip check must pass except for the requirements torch-lucent declares but never imports (see requirements-lucent.txt).
LUCENT_VENV := .bench-lucent-venv
LUCENT_STAMP := $(LUCENT_VENV)/.installed

$(LUCENT_STAMP): pyproject.toml requirements.lock benchmarks/requirements-lucent.txt
	$(PYTHON) -m venv $(LUCENT_VENV)
	$(LUCENT_VENV)/bin/python -m pip install -q --upgrade pip
	$(LUCENT_VENV)/bin/python -m pip install -q -r requirements.lock
	$(LUCENT_VENV)/bin/python -m pip install -q --no-deps -r benchmarks/requirements-lucent.txt
	$(LUCENT_VENV)/bin/python -m pip install -q --no-deps -e .
	! $(LUCENT_VENV)/bin/python -m pip check | grep -v -E '^(No broken requirements found|torch-lucent 0\.1\.8 requires (coverage|coveralls|future|pytest-mock|scikit-learn|torchvision),)'
	touch $(LUCENT_STAMP)

.PHONY: bench-lucent
bench-lucent: $(LUCENT_STAMP)
	$(LUCENT_VENV)/bin/python -m benchmarks.featviz
