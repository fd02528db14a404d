"""A new user's first commands: `make demo` / `make test` leave `mlops` in .venv, and both the README and make say
how to put it on PATH."""

import shutil
import subprocess

import pytest

from tests.conftest import REPO_ROOT


def test_readme_starts_with_the_two_commands_and_its_everyday_commands_start_by_activating_the_venv():
    readme = (REPO_ROOT / "README.md").read_text()
    first_block = readme.split("```bash\n", 1)[1].split("```", 1)[0].splitlines()
    assert [line.split()[:2] for line in first_block] == [["make", "demo"], ["make", "test"]]
    everyday = readme.split("## Everyday commands", 1)[1].split("```bash\n", 1)[1].splitlines()
    assert everyday[0].startswith("source .venv/bin/activate")
    assert ".venv/bin/mlops" in readme.split("## Everyday commands", 1)[1].split("```bash", 1)[0]


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_setup_prints_the_line_that_puts_mlops_on_path():
    installed = [".venv/.installed", ".tools/.installed", ".tools/checkov-venv/.installed"]  # never reinstall here
    result = subprocess.run(["make", "-s", "--no-print-directory", *(f"--old-file={f}" for f in installed), "setup"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "source .venv/bin/activate" in result.stderr and ".venv/bin/mlops" in result.stderr
