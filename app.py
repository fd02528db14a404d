#!/usr/bin/env python3
"""CDK entry point: one registry stack per environment and one stack per model per environment."""

import sys

import aws_cdk as cdk

from pipelines.spec import SpecError
from stacks.app_builder import build_app

app = cdk.App()
try:
    build_app(app)
except SpecError as error:
    print(f"\nInvalid configuration, nothing was synthesized:\n{error}\n", file=sys.stderr)
    sys.exit(2)
app.synth()
