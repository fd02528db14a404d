# Everything installs itself: a project venv, Node 22, the CDK CLI and asl-validator (from npm, in .tools/),
# and checkov in a venv of its own (.tools/checkov-venv): its pinned dependencies would downgrade boto3,
# botocore, networkx and packaging in the project venv.
SHELL := /bin/bash
VENV  := .venv
TOOLS := .tools
PY    := $(VENV)/bin/python
NODE_TOOLS  := node@22 aws-cdk@2 asl-validator@4.0.0
CHECKOV     := checkov==3.3.30
CHECKOV_VENV := $(TOOLS)/checkov-venv
# Where `make synth` writes the cloud assembly, and extra `cdk synth` arguments (e.g. SYNTH_ARGS="-c env=dev").
CDK_OUT    ?= cdk.out
SYNTH_ARGS ?=
export PATH := $(CURDIR)/$(TOOLS)/node_modules/.bin:$(CURDIR)/$(VENV)/bin:$(PATH)
export SAGEMAKER_SUPPRESS_V2_WARNING := 1
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: setup demo synth test test-fast bench clean

# `mlops` lives in the project venv: the line that puts it on your PATH is printed after every setup (to stderr,
# so `make ... | tee` logs stay clean), as the tools that install into a venv of their own do.
ACTIVATE_HINT := mlops is installed in $(VENV)/bin: run `source $(VENV)/bin/activate` once per shell (or call $(VENV)/bin/mlops)

setup: $(VENV)/.installed $(TOOLS)/.installed $(CHECKOV_VENV)/.installed
	@echo '$(ACTIVATE_HINT)' >&2

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	touch $@

$(TOOLS)/.installed: $(TOOLS)/.node-tools
	npm install --silent --no-audit --no-fund --prefix $(TOOLS) $(NODE_TOOLS)
	touch $@

$(CHECKOV_VENV)/.installed: $(TOOLS)/.checkov-version
	python3 -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q --disable-pip-version-check $(CHECKOV)
	touch $@

# Version stamps, rewritten as the Makefile is read only when a pinned tool list changes: existing checkouts
# reinstall exactly then (and `make -n` shows no install when nothing changed).
stamp = $(shell mkdir -p $(TOOLS); [ "$$(cat $(1) 2>/dev/null)" = "$(2)" ] || echo "$(2)" > $(1))
$(call stamp,$(TOOLS)/.node-tools,$(NODE_TOOLS))
$(call stamp,$(TOOLS)/.checkov-version,$(CHECKOV))

# The main job: every stack synthesized with cdk-nag (Lambda dependencies bundled with pip, no Docker),
# then one complete retraining lifecycle offline (embedded AWS emulation, local training and serving).
demo: synth
	mlops local up

# `cdk synth` (every stack, assets bundled) leaves a cloud assembly deployable as is: `cdk deploy --app cdk.out`.
# The stacks are listed from that assembly: a plain `cdk list` would synthesize again, without bundling, over it.
synth: setup
	cdk synth --quiet -o $(CDK_OUT) $(SYNTH_ARGS)
	@cdk list --app $(CDK_OUT)

# Parallel workers (pytest-xdist; `auto`: one per CPU); whole files go to one worker, so a module's lifecycle
# fixture runs once. `make test TEST_WORKERS=0` runs in one process.
TEST_WORKERS ?= auto
test: setup
	pytest -n $(TEST_WORKERS) --dist loadfile

test-fast: setup
	pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

bench: setup
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev,bench]'
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/drift.py
	$(PY) benchmarks/local_lifecycle.py
	$(PY) benchmarks/cold_start.py
	$(PY) benchmarks/scoped_session.py

clean:
	rm -rf cdk.out .build .local .pytest_cache
