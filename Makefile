# Two entry points for a newcomer: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# torch and torchvision, one matching pair (an unmatched pair fails to import torchvision).
TORCH_PAIR := torch==2.14.1 torchvision==0.29.1
# Where that pair comes from. Empty: PyPI, whose Linux wheels bundle CUDA (about 4 GB of the
# venv's 5.9 GB). No NVIDIA GPU? `make demo TORCH_INDEX=https://download.pytorch.org/whl/cpu`
# on a fresh clone (or after `make clean`) installs the CPU-only build of the same pair.
TORCH_INDEX ?=

.PHONY: setup system system-demo demo test lint docs bench bench-evidence device-wheels device-rehearsal clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# the pinned pair first (README, "Two commands"), then the project, which keeps it
	$(BIN)/pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_PAIR)
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages, installed when missing and apt-get can run: the demo needs only Fashion-MNIST;
# the tests also use Chromium (dashboard screenshot test) and PostgreSQL (many-workers test).
system-demo:
	bash scripts/system-packages demo

system:
	bash scripts/system-packages test

demo: setup system-demo
	$(BIN)/nas check studies/demo.yaml
	$(BIN)/nas search studies/demo.yaml
	$(BIN)/nas front studies/demo.yaml --plot studies/demo_front.png
	$(BIN)/nas export studies/demo.yaml --pick knee -o best.yaml

lint: setup
	$(BIN)/ruff check nas tests benchmarks

# -n $(TEST_WORKERS) --dist loadfile: pytest-xdist, one worker per core of the 2-core CI machines, each test
# file whole on one worker (its module fixtures built once); tests/conftest.py gives each worker one
# torch thread. --durations=30: the slowest tests, printed after every run (where CI time goes).
TEST_WORKERS ?= 2
test: setup system lint
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=30

# The documentation site (mkdocs.yml, docs/) into build/site; --strict fails on any warning.
docs: setup
	$(BIN)/pip install -q -e '.[docs]'
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

# The figures the README quotes; each script prints them and writes benchmarks/results/*.json.
bench: setup system-demo
	$(BIN)/python benchmarks/baseline_flops.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/proxy_accuracy.py
	$(BIN)/python benchmarks/trial_overhead.py
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/proxy_fidelity.py
	$(BIN)/python benchmarks/cli_startup.py
	$(BIN)/python benchmarks/latency_table.py

# Issue 8's evidence on real data (hours of CPU; every script resumes where it stopped): the
# folder DATA holds what shared/data/stage-datasets.sh DATA MIRRORS tiny-imagenet built.
DATA ?= /work/data
bench-evidence: setup
	$(BIN)/python benchmarks/attention_signal.py --data $(DATA) --tasks tin100 --threads 1
	$(BIN)/python benchmarks/rung_fidelity.py --data $(DATA)
	$(BIN)/python benchmarks/equal_compute.py --data $(DATA)
	$(BIN)/python benchmarks/latency_front.py --data $(DATA)
	$(BIN)/python benchmarks/designer_front.py --data $(DATA)

# The GPU check (docs/gpu.md): the wheels and data a device session carries, and the check's
# CPU rehearsal (the test suite runs it too).
device-wheels: setup
	scripts/device-wheels
	scripts/device-wheels --check

device-rehearsal: setup
	$(BIN)/python benchmarks/gpu_check.py --device cpu --quick --out build/gpu_check

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
