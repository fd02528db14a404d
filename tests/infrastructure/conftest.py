from __future__ import annotations

import json
import shutil
from pathlib import Path

import aws_cdk as cdk
import pytest

from stacks.app_builder import build_app
from tests.conftest import REPO_ROOT, once_per_session

CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def new_app(**extra_context) -> cdk.App:
    # Asset bundling (pip installs for the Lambda layer) is skipped in template tests.
    return cdk.App(context={**CONTEXT, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0123abc", **extra_context})


@pytest.fixture
def bundled_assembly_dir(tmp_path) -> Path:
    """A cdk.out for a test that synthesizes with bundled assets, removed after it: pytest keeps its last three runs'
    folders, and where the bundles cannot be linked (another file system) each such cdk.out holds half a gigabyte."""
    out = tmp_path / "cdk.out"
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="session")
def dev_app() -> cdk.App:
    return build_app(new_app(env="dev"))


@pytest.fixture(scope="session")
def serving_dev_app() -> cdk.App:
    """dev as it is in cdk.json, except that it serves production traffic (`serves: prod`): the model stack as every
    serving environment has it (cdk.json's dev is the training account, which serves nothing)."""
    environments = {**CONTEXT["mlops:environments"], "dev": {**CONTEXT["mlops:environments"]["dev"], "serves": "prod"}}
    return build_app(new_app(env="dev", **{"mlops:environments": environments}))


def template_of(app: cdk.App, stack_name: str) -> cdk.assertions.Template:
    return cdk.assertions.Template.from_stack(app.node.find_child(stack_name))


@pytest.fixture(scope="session")
def whole_app_templates(tmp_path_factory) -> dict:
    """Every stack of every environment in cdk.json synthesized once per session (with cdk-nag), into a temp
    cloud assembly: stack name -> template path. Bundling skipped: the external validators need no assets."""
    def synthesize() -> dict[str, str]:
        outdir = tmp_path_factory.mktemp("whole-app-cdk.out")
        app = cdk.App(outdir=str(outdir),
                      context={**CONTEXT, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0123abc"})
        return {stack.stack_name: stack.template_full_path for stack in build_app(app).synth().stacks}

    return {name: Path(path) for name, path in once_per_session(tmp_path_factory, "whole-app", synthesize).items()}
