from __future__ import annotations

import json

import aws_cdk as cdk
import pytest

from stacks.app_builder import build_app
from tests.conftest import REPO_ROOT

CONTEXT = json.loads((REPO_ROOT / "cdk.json").read_text())["context"]


def new_app(**extra_context) -> cdk.App:
    # Asset bundling (pip installs for the Lambda layer) is skipped in template tests.
    return cdk.App(context={**CONTEXT, "aws:cdk:bundling-stacks": [], "mlops:git_commit": "0123abc", **extra_context})


@pytest.fixture(scope="session")
def dev_app() -> cdk.App:
    return build_app(new_app(env="dev"))


def template_of(app: cdk.App, stack_name: str) -> cdk.assertions.Template:
    return cdk.assertions.Template.from_stack(app.node.find_child(stack_name))
