import aws_cdk as cdk
import pytest
from aws_cdk import aws_s3 as s3

from stacks.app_builder import build_app
from tests.infrastructure.conftest import new_app


@pytest.mark.slow
def test_whole_app_synthesizes_cdk_nag_clean_for_every_environment():
    app = build_app(new_app())
    assembly = app.synth()
    names = {stack.stack_name for stack in assembly.stacks}
    assert {"mlops-dev-registry", "mlops-staging-registry", "mlops-prod-registry"} <= names


def test_an_unacknowledged_finding_fails_synthesis():
    app = build_app(new_app(env="dev"))
    insecure = cdk.Stack(app, "Insecure")
    s3.Bucket(insecure, "NoLogsNoTls")
    with pytest.raises(Exception, match=r"(?s)ValidationFailed.*AwsSolutions-S10"):
        app.synth()
