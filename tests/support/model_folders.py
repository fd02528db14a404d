"""Model folders for tests: a copy of an example model under another name."""

from __future__ import annotations

import shutil
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[2] / "pipelines"


def copy_model_folder(root: Path, name: str, source: str = "churn") -> Path:
    """root/name: the example model `source`'s folder, its spec naming `name` (and its dataset prefix)."""
    shutil.copytree(EXAMPLES / source, root / name, ignore=shutil.ignore_patterns("data", "__pycache__"))
    spec = root / name / "model.yaml"
    spec.write_text(spec.read_text().replace(source, name))
    return root / name
