"""A model folder as the platform ships and runs it: the SageMaker source archive, and the local mode's data maker.

The source archive (`sourcedir.tar.gz`, the training job's `code` channel) is built the same way for synthesis
and for the local mode: the model folder (no data/, no caches), the shared model kit (`modelkit/`), the drift
baseline writer (`baseline.py`) and the validated spec (`mlops_spec.json`, environment overrides applied).
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import inspect
import io
import tarfile
import uuid
from pathlib import Path
from types import ModuleType

from pipelines.spec import LOCAL_MODE_FILES, REPO_ROOT, ModelSpec, SpecError, check_model_folder

KIT_DIR = REPO_ROOT / "pipelines" / "modelkit"
SPEC_JSON = "mlops_spec.json"  # modelkit.contract.SPEC_JSON
# Files the training container needs beside the model folder: the drift-baseline writer.
SHARED_TRAINING_MODULES = {"baseline.py": REPO_ROOT / "lambdas" / "drift" / "baseline.py"}
EXCLUDED = ("data", "__pycache__", ".ipynb_checkpoints")


def archive_members(model_dir: Path, spec: ModelSpec | None) -> list[tuple[str, bytes]]:
    """(name in the archive, bytes) of everything packed, in a stable order."""
    members: list[tuple[str, bytes]] = []
    for path in sorted(Path(model_dir).rglob("*")):
        relative = path.relative_to(model_dir)
        if path.is_file() and not any(part in EXCLUDED for part in relative.parts) and relative.parts[0] != "modelkit":
            members.append((str(relative), path.read_bytes()))
    for path in sorted(KIT_DIR.rglob("*.py")):
        members.append((f"modelkit/{path.relative_to(KIT_DIR)}", path.read_bytes()))
    for name, path in SHARED_TRAINING_MODULES.items():
        members.append((name, path.read_bytes()))
    if spec is not None:
        members.append((SPEC_JSON, spec.model_dump_json(indent=1).encode()))
    return members


def write_source_archive(model_dir: Path, archive: Path, spec: ModelSpec | None = None) -> Path:
    """sourcedir.tar.gz as the SageMaker SDK builds it, byte-for-byte the same for the same inputs (no times,
    owners or file names in the tar or gzip headers)."""
    with open(archive, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed, \
            tarfile.open(fileobj=compressed, mode="w") as tar:
        for name, body in archive_members(model_dir, spec):
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), 0o644
            tar.addfile(info, io.BytesIO(body))
    return archive


def source_fingerprint(model_dir: Path, spec: ModelSpec | None = None) -> str:
    """A hash of everything packed (the kit and the spec included), so a change to any of them is a new asset."""
    digest = hashlib.sha256()
    for name, body in archive_members(model_dir, spec):
        digest.update(name.encode() + b"\0" + hashlib.sha256(body).digest())
    return digest.hexdigest()


def load_dataset_module(model_dir: Path, spec: ModelSpec) -> ModuleType:
    """The folder's make_dataset.py (the local mode's data), imported under a name of its own (two models' makers
    never shadow each other); SpecError naming what the file lacks."""
    check_model_folder(model_dir, spec, local_mode=True)
    path = Path(model_dir) / "make_dataset.py"
    loader_spec = importlib.util.spec_from_file_location(f"make_dataset_{spec.name.replace('-', '_')}_{uuid.uuid4().hex[:8]}",
                                                         path)
    module = importlib.util.module_from_spec(loader_spec)
    try:
        loader_spec.loader.exec_module(module)
    except Exception as error:
        raise SpecError(f"{path}: cannot be imported ({type(error).__name__}: {error}); fix: run it on its own "
                        "(python make_dataset.py) and correct it") from None
    problems = []
    for name, wanted in (("generate", ("rows", "seed", "shift")), ("write_csv", ("columns", "path"))):
        function = getattr(module, name, None)
        if not callable(function):
            problems.append(f"no function {name}{wanted}")
            continue
        parameters = list(inspect.signature(function).parameters)
        if len(parameters) < len(wanted):
            problems.append(f"{name} takes {tuple(parameters)}, the local mode calls {name}{wanted}")
    if problems:
        raise SpecError(f"{path}: " + "; ".join(problems) + f"; fix: {LOCAL_MODE_FILES['make_dataset.py']}")
    return module
