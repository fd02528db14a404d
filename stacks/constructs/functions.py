"""Lambda functions of the platform: one code asset (handlers + pip-installed dependencies, no Docker),
each function with its own least-privilege role, KMS-encrypted log group and environment, X-Ray tracing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_logs as logs
from constructs import Construct


REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = REPO_ROOT / "lambdas"
REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
SHARED_PIPELINE_MODULES = ("__init__.py", "spec.py", "naming.py", "instances.py")
RUNTIME = lambda_.Runtime.PYTHON_3_14
CACHE = REPO_ROOT / ".build" / "lambda-dependencies"
# The runtime ships boto3/botocore; test suites of numpy/scipy are dead weight against the 250 MB limit.
PRUNED = ("boto3", "botocore", "s3transfer", "bin")


def install_dependencies() -> Path:
    """pip-installs lambdas/requirements.txt for the Lambda platform once per requirements hash."""
    digest = hashlib.sha256(REQUIREMENTS.read_bytes() + RUNTIME.name.encode()).hexdigest()[:16]
    target = CACHE / digest
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        version = RUNTIME.name.removeprefix("python")
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(target), "--requirement", str(REQUIREMENTS), "--only-binary=:all:",
                        "--implementation", "cp", "--python-version", version,
                        "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64"], check=True)
        prune(target)
        (target / ".complete").touch()
    return target


def prune(target: Path) -> None:
    for name in PRUNED:
        shutil.rmtree(target / name, ignore_errors=True)
    for tests in [p for p in target.rglob("tests") if p.is_dir() and p.parent.name in {"numpy", "scipy"} | {
            q.name for q in (target / "scipy").iterdir() if q.is_dir()}]:
        shutil.rmtree(tests, ignore_errors=True)
    for cache in target.rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def write_bundle(output_dir: Path) -> None:
    shutil.copytree(install_dependencies(), output_dir, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".complete", "__pycache__"))
    shutil.copytree(LAMBDAS_DIR, output_dir / "lambdas", dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "requirements.txt"))
    (output_dir / "pipelines").mkdir(exist_ok=True)
    for name in SHARED_PIPELINE_MODULES:
        shutil.copy2(REPO_ROOT / "pipelines" / name, output_dir / "pipelines" / name)


@jsii.implements(ILocalBundling)
class _LocalBundling:
    def try_bundle(self, output_dir: str, *, image, **_options) -> bool:
        write_bundle(Path(output_dir))
        return True


def handler_code() -> lambda_.Code:
    return lambda_.Code.from_asset(str(LAMBDAS_DIR), exclude=["__pycache__", "*.pyc"], bundling=BundlingOptions(
        image=DockerImage.from_registry("none"), local=_LocalBundling()))  # never pulled: local bundling only


class PlatformFunction(Construct):
    """One handler: its own role (logs, X-Ray, what the caller grants), KMS-encrypted environment and logs."""

    def __init__(self, scope: Construct, construct_id: str, *, handler: str, key: kms.IKey, code: lambda_.Code,
                 environment: dict[str, str], timeout: Duration = Duration.minutes(1), memory_mb: int = 512,
                 description: str = "") -> None:
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", encryption_key=key, retention=logs.RetentionDays.ONE_YEAR,
                                       removal_policy=RemovalPolicy.RETAIN)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
                             description=f"{construct_id}: {description}"[:1000])
        self.function = lambda_.Function(
            self, "Function", runtime=RUNTIME, handler=handler, code=code, role=self.role, timeout=timeout,
            memory_size=memory_mb, architecture=lambda_.Architecture.X86_64, environment={
                "POWERTOOLS_SERVICE_NAME": construct_id, "POWERTOOLS_METRICS_NAMESPACE": "MLOps", **environment},
            environment_encryption=key, tracing=lambda_.Tracing.ACTIVE, log_group=self.log_group,
            description=description[:256],
        )
        self.log_group.grant_write(self.role)
