# Two entry points for a newcomer: `make demo` and `make test`. Both create .venv when missing.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup system demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch and torchvision as one matching pair first (see README, "Set-up").
	$(BIN)/pip install -q torch==2.14.1 torchvision==0.29.1
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

# Debian packages: Fashion-MNIST (demo, tests), Chromium (dashboard screenshot test),
# PostgreSQL (many-workers test). Installed when missing and apt-get can run.
system:
	bash scripts/system-packages

demo: setup system
	$(BIN)/nas check studies/demo.yaml
	$(BIN)/nas search studies/demo.yaml
	$(BIN)/nas front studies/demo.yaml --plot studies/demo_front.png
	$(BIN)/nas export studies/demo.yaml --pick knee -o best.yaml

lint: setup
	$(BIN)/ruff check nas tests benchmarks

test: setup system lint
	$(BIN)/pytest -q

# The figures the README quotes; each script prints them and writes benchmarks/results/*.json.
bench: setup system
	$(BIN)/python benchmarks/baseline_flops.py
	$(BIN)/python benchmarks/trainer_throughput.py
	$(BIN)/python benchmarks/proxy_accuracy.py
	$(BIN)/python benchmarks/trial_overhead.py
	$(BIN)/python benchmarks/search_quality.py
	$(BIN)/python benchmarks/proxy_fidelity.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
