"""Which commit of this repository is running (lineage of runs, stacks and models)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def current_git_commit(directory: Path = REPO_ROOT) -> str | None:
    """HEAD of the checkout, or None outside a git checkout (a wheel install, a notebook without git)."""
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True, text=True,
                              check=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None
