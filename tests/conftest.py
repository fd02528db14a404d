"""Nothing in the tests may reach AWS: fake credentials and a fixed region, set before boto3 loads."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

for variable in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
    os.environ.pop(variable, None)
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    "POWERTOOLS_TRACE_DISABLED": "true",
    "POWERTOOLS_METRICS_NAMESPACE": "mlops-tests",
    "POWERTOOLS_SERVICE_NAME": "mlops-tests",
    "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    "JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION": "1",
})
# jsii (the CDK) runs on the project's Node 22, not the machine's end-of-life Node 20.
_local_node = REPO_ROOT / ".tools" / "node_modules" / ".bin"
if _local_node.is_dir() and str(_local_node) not in os.environ["PATH"].split(os.pathsep):
    os.environ["PATH"] = f"{_local_node}{os.pathsep}{os.environ['PATH']}"


def once_per_session(tmp_path_factory, name: str, produce):
    """produce()'s JSON-able result, computed once per test session even across parallel workers (pytest-xdist,
    `make test`): the first worker to ask computes it under a lock in the session's shared temp folder, the others
    wait and read it. Without workers it is just produce()."""
    import json

    from stacks.constructs.functions import built_once  # the cross-process lock the Lambda bundle builds take

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return produce()
    result = tmp_path_factory.getbasetemp().parent / f"{name}.json"
    with built_once(result):
        if not result.exists():
            result.write_text(json.dumps(produce()))
    return json.loads(result.read_text())


def _default_sessions_share_parsed_models() -> None:
    """moto resets boto3's default session at every mock start and stop, and each new default session parses AWS's
    service models again (about 10 ms per client, thousands of clients in the suite): the tests' default sessions
    share one loader, as the platform's own new sessions do (lambdas/shared/sessions.py). Nothing else changes."""
    import boto3

    from lambdas.shared.sessions import new_session

    def setup_default_session(**arguments) -> None:
        boto3.DEFAULT_SESSION = new_session(**arguments)

    boto3.setup_default_session = setup_default_session


_default_sessions_share_parsed_models()
