"""Lambda functions of the platform: one code asset per handler module, carrying only the first-party modules it
imports and the requirements of its group (pip-installed arm64 wheels, no Docker); each function with its own
least-privilege role, KMS-encrypted log group and environment, X-Ray tracing.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import weakref
import zipfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, Duration, ILocalBundling, RemovalPolicy, Stack
from aws_cdk import aws_iam as iam, aws_kms as kms, aws_lambda as lambda_, aws_logs as logs
from constructs import Construct

from stacks.nag import acknowledge


REPO_ROOT = Path(__file__).resolve().parents[2]
LAMBDAS_DIR = REPO_ROOT / "lambdas"
FIRST_PARTY = ("lambdas", "pipelines")
BASE_REQUIREMENTS = LAMBDAS_DIR / "requirements.txt"
# Only the drift function needs numpy, scipy.special and orjson (lambdas/drift/requirements.txt), and the quality
# check numpy (lambdas/quality/requirements.txt: its bootstrap and training's metrics).
GROUP_REQUIREMENTS = {"lambdas.drift": LAMBDAS_DIR / "drift" / "requirements.txt",
                      "lambdas.quality": LAMBDAS_DIR / "quality" / "requirements.txt"}
# 3.13, not 3.14: the bundles ship bytecode compiled by a CPython of the runtime's version found on the build machine
# (/var/task is read-only, so without .pyc files every cold start compiles every module it imports: half of a
# handler's import time, benchmarks/cold_start.py), and CPython 3.14 cannot be installed offline here.
RUNTIME = lambda_.Runtime.PYTHON_3_13
# Graviton: every dependency publishes manylinux aarch64 wheels, and arm64 Lambda costs 20% less per GB-second.
ARCHITECTURE = lambda_.Architecture.ARM_64
PLATFORM_TAGS = {"arm64": ("manylinux2014_aarch64", "manylinux_2_28_aarch64"),
                 "x86_64": ("manylinux2014_x86_64", "manylinux_2_28_x86_64")}
# Unzipped size budgets (MB), kept by tests/infrastructure/test_lambda_bundle.py; Lambda's own limit is 250 MB.
BUDGET_MB = {"lambdas.drift": 240, "lambdas.quality": 90}  # quality: numpy ~55 MB over the base
DEFAULT_BUDGET_MB = 25
CACHE = REPO_ROOT / ".build" / "lambda-dependencies"
BUILD_RECORDS = (".complete", ".zipped-bytes")  # what a build folder holds about itself, never deployed
BUNDLES = REPO_ROOT / ".build" / "lambda-bundles"
# The runtime ships boto3, botocore and their dependencies.
RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "dateutil", "urllib3", "six.py", "bin")
# Of scipy, the drift engine uses scipy.special alone (tests/unit/test_drift_statistics.py proves the import set),
# which loads scipy.linalg for one of its extension modules: the other subpackages, and the BLAS/LAPACK/Fortran libraries in scipy.libs only they load, are dead weight.
# Of pyarrow, the drift function's Arrow reader (lambdas/drift/arrow_reader.py) loads these extension modules alone;
# the others (datasets, Parquet, Flight, file systems, ...) and the libraries only they link are dead weight.
PYARROW_EXTENSIONS = ("lib", "_compute", "_csv", "_json")
PYARROW_SOURCES = ("include", "src", "tests")
SCIPY_UNUSED = ("cluster", "constants", "datasets", "differentiate", "fft", "fftpack", "integrate", "interpolate", "io",
                "misc", "ndimage", "odr", "optimize", "signal", "sparse", "spatial", "stats")


@dataclass(frozen=True)
class Bundle:
    """What one handler module's code asset holds: its first-party import closure and its group's requirements."""

    module: str
    files: tuple[str, ...]
    requirements: Path

    @property
    def budget_mb(self) -> int:
        return next((mb for group, mb in BUDGET_MB.items() if self.module.startswith(group + ".")), DEFAULT_BUDGET_MB)

    @property
    def name(self) -> str:
        return self.module.removeprefix("lambdas.").replace(".", "-")

    def digest(self, platform: str = "arm64", python_version: str | None = None) -> str:
        version = python_version or runtime_version()
        compiler = bytecode_compiler(version)
        content = hashlib.sha256(f"{self.module}|{platform}|{version}|pyc={compiler is not None}".encode() + _pruning_rules())
        for path in (*requirement_files(self.requirements), *(REPO_ROOT / f for f in self.files)):
            content.update(path.read_bytes())
        return content.hexdigest()

    def write(self, output_dir: Path, platform: str = "arm64", python_version: str | None = None) -> None:
        link_tree(self.build(platform, python_version), output_dir, ignore=shutil.ignore_patterns(*BUILD_RECORDS))

    def zipped_bytes(self, platform: str = "arm64", python_version: str | None = None) -> int:
        """The bundle as a deployment package (a deflated zip, as the CDK uploads it): what Lambda's code storage
        counts for each function using it. Measured once per build."""
        built = self.build(platform, python_version)
        record = built / ".zipped-bytes"
        if not record.exists():
            with tempfile.TemporaryDirectory() as folder:
                archive = Path(folder) / "code.zip"
                with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as package:
                    for path in sorted(p for p in built.rglob("*") if p.is_file() and p.name not in BUILD_RECORDS):
                        package.write(path, path.relative_to(built))
                written = built.parent / f"{built.name}{record.name}.{os.getpid()}"  # beside the bundle, not in it
                written.write_text(str(archive.stat().st_size))
                os.replace(written, record)  # whole or absent for a reader in another process
        return int(record.read_text())

    def build(self, platform: str = "arm64", python_version: str | None = None) -> Path:
        """The bundle, assembled once per digest under .build/: its group's dependencies (compiled once, linked),
        then its first-party files and their bytecode."""
        version = python_version or runtime_version()
        target = BUNDLES / self.digest(platform, version)[:16]
        with built_once(target):
            if not (target / ".complete").exists():
                shutil.rmtree(target, ignore_errors=True)
                link_tree(install_dependencies(self.requirements, platform, version), target,
                          ignore=shutil.ignore_patterns(*BUILD_RECORDS))
                for relative in self.files:
                    (target / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(REPO_ROOT / relative, target / relative)
                compile_bytecode(target, version, [target / relative for relative in self.files])
                (target / ".complete").touch()
        return target


def runtime_version() -> str:
    return RUNTIME.name.removeprefix("python")


@cache
def bytecode_compiler(version: str) -> str | None:
    """A CPython `version` on this machine (LAMBDA_BYTECODE_PYTHON, python3.13 on PATH, or pyenv's), or None."""
    candidates = [os.environ.get("LAMBDA_BYTECODE_PYTHON"), shutil.which(f"python{version}"),
                  *sorted(map(str, Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}")))]
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                               capture_output=True, text=True)
        if probe.returncode == 0 and probe.stdout.strip() == version:
            return candidate
    return None


def compile_bytecode(target: Path, version: str, files: list[Path] | None = None) -> None:
    """.pyc files beside every module under target (or beside the given files), valid whatever the files' times
    after unzipping (unchecked-hash): Lambda imports them instead of compiling at each cold start. Without a
    matching CPython the bundle ships sources only."""
    compiler = bytecode_compiler(version)
    if compiler is None:
        print(f"warning: no CPython {version} found (set LAMBDA_BYTECODE_PYTHON): Lambda bundles ship without "
              "bytecode and compile their modules at each cold start", file=sys.stderr)
        return
    sources = [str(f) for f in files if f.suffix == ".py"] if files is not None else [str(target)]
    if sources:
        subprocess.run([compiler, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                        *sources], check=True, stdout=subprocess.DEVNULL)


def link_tree(source: Path, target: Path, ignore=None) -> None:
    """source's files under target as hard links where the file system allows, copies where not. A bundle is mostly
    its group's dependencies, unchanged: linked, the eight bundles of a synthesis and the assets staged in each
    cdk.out cost their first-party files alone on disk, not half a gigabyte each. Nothing writes into a linked file
    in place (compileall and the CDK replace files, never rewrite them)."""
    shutil.copytree(source, target, copy_function=_link_or_copy, dirs_exist_ok=True, ignore=ignore)


def _link_or_copy(source: str, destination: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(destination)  # never write through a link into the file it shares
    try:
        os.link(source, destination)
    except OSError:  # another file system, or one without hard links
        shutil.copy2(source, destination)


def bundle_for(handler: str) -> Bundle:
    """The bundle of a handler path such as lambdas.approval.handlers.decide_handler."""
    return _bundle(handler.rsplit(".", 1)[0])


@cache
def _bundle(module: str) -> Bundle:
    files = import_closure(module)
    group = next((g for g in GROUP_REQUIREMENTS if any(f.startswith(g.replace(".", "/") + "/") for f in files)), None)
    return Bundle(module, files, GROUP_REQUIREMENTS.get(group, BASE_REQUIREMENTS))


def import_closure(module: str) -> tuple[str, ...]:
    """Every first-party file (with its packages' __init__.py) that `module` imports, directly or not, at module
    level or inside a function: the handler's bundle must hold them all and need hold nothing else."""
    seen: set[str] = set()
    pending = [module]
    while pending:
        name = pending.pop()
        for path in _module_files(name):
            relative = path.relative_to(REPO_ROOT).as_posix()
            if relative in seen:
                continue
            seen.add(relative)
            pending.extend(_first_party_imports(path, name))
    return tuple(sorted(seen))


def _module_files(name: str) -> list[Path]:
    parts = name.split(".")
    files = [REPO_ROOT.joinpath(*parts[:i], "__init__.py") for i in range(1, len(parts))]
    module = REPO_ROOT.joinpath(*parts)
    files.append(module / "__init__.py" if module.is_dir() else module.with_suffix(".py"))
    return [f for f in files if f.exists()]


def _first_party_imports(path: Path, name: str) -> list[str]:
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            found.append(base)
            found.extend(f"{base}.{alias.name}" for alias in node.names)  # `from pipelines import naming`
    return [n for n in found if n.split(".")[0] in FIRST_PARTY and _module_files(n)]


def requirement_files(requirements: Path) -> list[Path]:
    """A requirements file and those it includes with `-r`."""
    files = [requirements]
    for line in requirements.read_text().splitlines():
        if line.startswith(("-r ", "--requirement ")):
            files.extend(requirement_files(requirements.parent / line.split(maxsplit=1)[1]))
    return files


def install_dependencies(requirements: Path, platform: str = "arm64", python_version: str | None = None) -> Path:
    """pip-installs a requirements file for the Lambda platform (or another one, for benchmarks) once per content
    hash, prunes what the runtime provides or no handler loads, and compiles it once for every bundle linking it."""
    version = python_version or runtime_version()
    content = b"".join(p.read_bytes() for p in requirement_files(requirements)) + _pruning_rules()
    compiled = bytecode_compiler(version) is not None
    target = CACHE / hashlib.sha256(content + f"{platform}|{version}|pyc={compiled}".encode()).hexdigest()[:16]
    with built_once(target):
        if not (target / ".complete").exists():
            shutil.rmtree(target, ignore_errors=True)
            pip_install(requirements, target, platform, version)
            prune(target)
            compile_bytecode(target, version)
            (target / ".complete").touch()
    return target


@contextlib.contextmanager
def built_once(target: Path):
    """Holds an exclusive lock on target's build: two syntheses at once (parallel test workers, two shells) would
    otherwise remove and rebuild the same folder under each other. The lock is released when its process ends."""
    target.parent.mkdir(parents=True, exist_ok=True)
    with open(target.parent / f"{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@cache
def _pruning_rules() -> bytes:
    """What prune() does, so that changing it rebuilds the cached dependencies and bundles."""
    import inspect

    return "".join(inspect.getsource(f) for f in (remove_runtime_provided, prune, prune_pyarrow, prune_unlinked_libraries)).encode() \
        + repr((RUNTIME_PROVIDED, SCIPY_UNUSED, PYARROW_EXTENSIONS, PYARROW_SOURCES)).encode()


def pip_install(requirements: Path, target: Path, platform: str, python_version: str) -> None:
    """Binary wheels only, for the given platform and Python: nothing is compiled and no Docker is needed."""
    platforms = [arg for tag in PLATFORM_TAGS[platform] for arg in ("--platform", tag)]
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--target", str(target), "--requirement", str(requirements), "--only-binary=:all:",
                    "--implementation", "cp", "--python-version", python_version, *platforms], check=True)


def remove_runtime_provided(target: Path) -> None:
    for name in RUNTIME_PROVIDED:
        path = target / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)


def prune(target: Path) -> None:
    remove_runtime_provided(target)
    if (target / "scipy").is_dir():
        for name in SCIPY_UNUSED:
            shutil.rmtree(target / "scipy" / name, ignore_errors=True)
        prune_unlinked_libraries(list((target / "scipy").rglob("*.so")), list((target / "scipy.libs").glob("*")))
    if (target / "pyarrow").is_dir():
        prune_pyarrow(target / "pyarrow")
    for tests in [p for p in target.rglob("tests") if p.is_dir() and p.parent.parent.name in {target.name, "scipy"}]:
        shutil.rmtree(tests, ignore_errors=True)
    for cache_dir in target.rglob("__pycache__"):
        shutil.rmtree(cache_dir, ignore_errors=True)


def prune_pyarrow(package: Path) -> None:
    extensions = [path for path in package.glob("*.so") if ".cpython-" in path.name or ".abi3." in path.name]
    for extension in extensions:
        if extension.name.split(".")[0] not in PYARROW_EXTENSIONS:
            extension.unlink()
    for name in PYARROW_SOURCES:
        shutil.rmtree(package / name, ignore_errors=True)
    for source in [*package.rglob("*.pyx"), *package.rglob("*.pxd"), *package.rglob("*.pxi")]:
        source.unlink()
    kept = [path for path in extensions if path.exists()]
    prune_unlinked_libraries(kept, [path for path in package.glob("lib*.so*") if path not in extensions])


def prune_unlinked_libraries(binaries: list[Path], libraries: list[Path]) -> None:
    """Removes the shared libraries (auditwheel's <wheel>.libs, or those a package ships beside its modules) that no
    kept binary loads, directly or through another kept library: a library is needed when its file name, NUL-ended,
    is in a needing binary (its ELF NEEDED entry), which holds on every platform without an ELF reader. Wheels differ
    here: scipy 1.18's scipy.special needs none of them, older builds link OpenBLAS; pyarrow's modules need libarrow
    and libarrow_python, not the copies of the latter under other names."""
    candidates = [lib for lib in libraries if lib not in binaries]
    needing = [path.read_bytes() for path in binaries]
    kept: set[Path] = set()
    while added := [lib for lib in candidates if lib not in kept and any(b"\0" + lib.name.encode() + b"\0" in b for b in needing)]:
        kept.update(added)
        needing = [lib.read_bytes() for lib in added]
    for lib in set(candidates) - kept:
        lib.unlink()


@jsii.implements(ILocalBundling)
class _LocalBundling:
    def __init__(self, bundle: Bundle) -> None:
        self.bundle = bundle

    def try_bundle(self, output_dir: str, *, image, **_options) -> bool:
        self.bundle.write(Path(output_dir))
        return True


_CODE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # stack -> {module: Code}: one asset per stack


def handler_code(scope: Construct, handler: str) -> lambda_.Code:
    bundle = bundle_for(handler)
    codes = _CODE.setdefault(Stack.of(scope), {})
    if bundle.module not in codes:
        codes[bundle.module] = lambda_.Code.from_asset(
            str(LAMBDAS_DIR), asset_hash_type=AssetHashType.CUSTOM, asset_hash=bundle.digest(),
            bundling=BundlingOptions(image=DockerImage.from_registry("none"),  # never pulled: local bundling only
                                     local=_LocalBundling(bundle)))
    return codes[bundle.module]


class PlatformFunction(Construct):
    """One handler: its own role (logs, X-Ray, what the caller grants), KMS-encrypted environment and logs."""

    def __init__(self, scope: Construct, construct_id: str, *, handler: str, key: kms.IKey,
                 environment: dict[str, str], timeout: Duration = Duration.minutes(1), memory_mb: int = 512,
                 description: str = "", role_path: str | None = None, function_name: str | None = None) -> None:
        """role_path: the role's IAM path (naming.RELEASE_WRITER_PATH marks the roles a bucket policy lets write
        releases). function_name: only for the control plane's functions, which other stacks invoke by name."""
        super().__init__(scope, construct_id)
        self.log_group = logs.LogGroup(self, "Logs", encryption_key=key, retention=logs.RetentionDays.ONE_YEAR,
                                       removal_policy=RemovalPolicy.RETAIN)
        self.role = iam.Role(self, "Role", assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"), path=role_path,
                             description=f"{construct_id}: {description}"[:1000])
        self.function = lambda_.Function(
            self, "Function", runtime=RUNTIME, handler=handler, code=handler_code(self, handler), role=self.role, timeout=timeout,
            memory_size=memory_mb, architecture=ARCHITECTURE, environment={
                "POWERTOOLS_SERVICE_NAME": construct_id, "POWERTOOLS_METRICS_NAMESPACE": "MLOps", **environment},
            environment_encryption=key, tracing=lambda_.Tracing.ACTIVE, log_group=self.log_group,
            description=description[:256], function_name=function_name,
        )
        self.log_group.grant_write(self.role)
        acknowledge(self.function, {"AwsSolutions-L1": f"{RUNTIME.name}, one version behind the newest, so the bundle "
                                    "ships compiled bytecode (see RUNTIME in stacks/constructs/functions.py)"})
