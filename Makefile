# Everything installs itself: a project venv, Node 22 and the CDK CLI (both from npm, in .tools/).
SHELL := /bin/bash
VENV  := .venv
TOOLS := .tools
PY    := $(VENV)/bin/python
export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup demo synth test test-fast bench clean

setup: $(VENV)/.installed $(TOOLS)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

$(TOOLS)/.installed:
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) node@22 aws-cdk@2
	touch $@

# The main job: every stack synthesized with cdk-nag (Lambda dependencies bundled with pip, no Docker),
# then one complete retraining lifecycle offline (embedded AWS emulation, local training and serving).
demo: synth
	mlops local up

synth: setup
	cdk synth --all --quiet
	@cdk list

test: setup
	pytest

test-fast: setup
	pytest -m "not slow"

bench: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/drift.py
	$(PY) benchmarks/local_lifecycle.py

clean:
	rm -rf cdk.out .build .local .pytest_cache
