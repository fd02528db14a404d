"""`make synth` leaves a cloud assembly deployable as is (`cdk deploy --app cdk.out`): the assets in it are
the bundled ones (Lambda code with its pip-installed dependencies, the training source as sourcedir.tar.gz),
not raw source folders that a second, bundling-skipped synthesis (a plain `cdk list`) would write over them.
"""

from __future__ import annotations

import json
import subprocess
import tarfile

import pytest

from stacks.constructs.training import SHARED_TRAINING_MODULES
from tests.conftest import REPO_ROOT
from tests.support.validators import synthesized_templates


@pytest.mark.slow
def test_make_synth_leaves_a_deployable_assembly_with_bundled_assets(bundled_assembly_dir):
    out = bundled_assembly_dir
    # The Makefile's own synth (setup taken as done: the tests run after it), one environment to keep it short.
    result = subprocess.run(["make", "--no-print-directory", "-o", "setup", "synth", f"CDK_OUT={out}",
                             "SYNTH_ARGS=-c env=dev"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"make synth failed:\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"

    stacks = synthesized_templates(out)
    assert {"mlops-dev-registry", "mlops-dev-control", "mlops-dev-churn"} <= set(stacks)
    listed = set(result.stdout.split())
    assert set(stacks) <= listed, f"make synth did not list the assembly's stacks: {result.stdout[-2000:]}"

    model_stacks = [name for name in stacks if not name.endswith(("-registry", "-control"))]
    assert model_stacks
    # Every function is the control plane's: its code assets are bundled folders with their dependencies.
    control = json.loads(stacks["mlops-dev-control"].read_text())
    code_paths = {(resource["Metadata"]["aws:asset:path"], resource["Properties"]["Handler"])
                  for resource in control["Resources"].values()
                  if resource["Type"] == "AWS::Lambda::Function" and "aws:asset:path" in resource.get("Metadata", {})}
    assert code_paths, "mlops-dev-control: no Lambda function with an asset"
    for path, handler in code_paths:
        code = out / path
        assert code.is_dir(), f"mlops-dev-control: Lambda asset {path} is not a staged folder"
        module = code / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")
        assert module.is_file(), f"mlops-dev-control: {path}: the handler module of {handler} is missing"
        assert (code / "aws_lambda_powertools").is_dir(), (
            f"mlops-dev-control: Lambda asset {path} has no pip-installed dependencies: the assembly was synthesized "
            f"without bundling (was it overwritten by a second synthesis?)")
    for stack in model_stacks:
        template = json.loads(stacks[stack].read_text())
        assert not [r for r in template["Resources"].values() if r["Type"] == "AWS::Lambda::Function"], stack
        assets = json.loads((out / f"{stack}.assets.json").read_text())["files"]
        archives = [asset["source"] for asset in assets.values()
                    if asset["source"]["packaging"] == "file" and not asset["source"]["path"].endswith(".template.json")]
        assert archives, f"{stack}: no file asset: the training source was zipped from its folder, not bundled"
        for source in archives:
            archive = out / source["path"]
            assert source["path"].endswith(".tar.gz") and archive.is_file() and tarfile.is_tarfile(archive), source
            with tarfile.open(archive) as tar:
                names = set(tar.getnames())
            assert set(SHARED_TRAINING_MODULES) <= names and any(n.endswith(".py") for n in names - set(SHARED_TRAINING_MODULES)), names
