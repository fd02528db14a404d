import pytest

from stacks.constructs.functions import write_bundle

LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024


@pytest.mark.slow
def test_lambda_bundle_holds_handlers_shared_spec_and_dependencies_within_the_lambda_limit(tmp_path):
    write_bundle(tmp_path)
    assert (tmp_path / "lambdas/pipeline/handlers.py").exists()
    assert (tmp_path / "pipelines/spec.py").exists() and (tmp_path / "pipelines/naming.py").exists()
    assert (tmp_path / "aws_lambda_powertools").is_dir() and (tmp_path / "numpy").is_dir() and (tmp_path / "scipy").is_dir()
    assert not (tmp_path / "botocore").exists()  # the runtime provides it
    size = sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())
    assert size < LAMBDA_UNZIPPED_LIMIT, f"{size / 2**20:.0f} MiB"
