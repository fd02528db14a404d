"""The lifecycle's and the CLI's output without noise: tables that never cut a header or value, output laid out wide
when it does not go to a terminal, MLflow's store setup silent, and no deprecated CDK call warning at every synth."""

import io
import logging
import re
import tempfile
from pathlib import Path

from rich.console import Console

from pipelines.console import NOT_A_TERMINAL_WIDTH, Table, output_console
from tests.conftest import REPO_ROOT

HEADERS = ("version", "status", "serves", "validation:accuracy", "validation:f1_macro", "git commit", "dataset version")


def rendered(width: int) -> str:
    table = Table(title="Model versions")
    for header in HEADERS:
        table.add_column(header)
    table.add_row("1", "Approved", "prod (wine-local-prod)", "0.9833", "0.9812", "abcdef123456", "a1b2c3d4e5f6")
    console = Console(file=io.StringIO(), width=width)
    console.print(table)
    return console.file.getvalue()


def columns_of(text: str) -> list[str]:
    """Each column's text, its folded pieces joined (the lines between the table's vertical rules)."""
    rows = [re.split(r"[│┃]", line)[1:-1] for line in text.splitlines() if line.count("│") + line.count("┃") > 2]
    return ["".join(piece.strip() for piece in column) for column in zip(*rows)]


def test_a_narrow_console_folds_headers_and_values_and_never_cuts_them():
    text = rendered(60)
    assert "…" not in text
    columns = columns_of(text)
    for header, value in zip(HEADERS, ("1", "Approved", "prod(wine-local-prod)", "0.9833", "0.9812", "abcdef123456",
                                       "a1b2c3d4e5f6")):
        assert any(c.startswith(header.replace(" ", "")) and c.endswith(value) for c in columns), (header, columns)


def test_output_that_is_not_a_terminal_is_laid_out_wide_unless_columns_says_otherwise(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    assert output_console().width == NOT_A_TERMINAL_WIDTH  # pytest's stdout is not a terminal
    monkeypatch.setenv("COLUMNS", "100")
    assert output_console().width == 100


def test_the_local_mlflow_stores_setup_logs_nothing_at_info(caplog):
    from pipelines.local import tracking

    tracking.quiet_store_setup()
    with caplog.at_level(logging.NOTSET):
        logging.getLogger("mlflow.store.db.utils").info("Creating initial MLflow database tables...")
        logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    assert not [r for r in caplog.records if r.levelno < logging.WARNING]


def test_no_stack_calls_the_deprecated_cfn_resource_add_dependency():
    """CfnResource.add_dependency (renamed add_resource_dependency) prints a deprecation warning at every synthesis,
    in `mlops local up` too; node.add_dependency and Stack.add_dependency are not deprecated."""
    calls = [f"{path.relative_to(REPO_ROOT)}:{number}: {line.strip()}"
             for path in sorted((REPO_ROOT / "stacks").rglob("*.py"))
             for number, line in enumerate(path.read_text().splitlines(), 1)
             if re.search(r"\b(?!node\b|self\b)\w+\.add_dependency\(", line)]
    assert calls == []


def test_rebinding_another_model_in_one_process_does_not_warn(recwarn):
    from lambdas.shared import observability

    observability.bind("churn", "a")
    observability.bind("houses", "b")  # the local mode runs many invocations in one process
    assert not [w for w in recwarn if "already been added" in str(w.message)]
    observability.metrics.dimension_set.pop("model", None)


def test_the_local_mode_synthesizes_on_the_projects_node_without_jsiis_old_node_banner():
    from pipelines.local.lifecycle import use_project_node

    environ = {"PATH": "/usr/bin"}
    use_project_node(environ)
    assert environ["JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION"] == "1"
    if (REPO_ROOT / ".tools/node_modules/.bin").is_dir():
        assert environ["PATH"].split(":")[0] == str(REPO_ROOT / ".tools/node_modules/.bin")
        use_project_node(environ)
        assert environ["PATH"].count(".tools") == 1


def _stderr_of(code: str) -> str:
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=REPO_ROOT, capture_output=True,
                          text=True, check=True).stderr


def test_a_handler_that_counted_nothing_flushes_without_powertools_warning():
    stderr = _stderr_of("from lambdas.shared.observability import metrics; metrics.flush_metrics()")
    assert "No application metrics to publish" not in stderr


def test_the_local_mlflow_server_imports_without_starlettes_deprecation_warning():
    stderr = _stderr_of("from pipelines.local import tracking; tracking.quiet_store_setup(); "
                        "import starlette.middleware.wsgi")  # what mlflow.server.fastapi_app imports first
    assert "starlette.middleware.wsgi is deprecated" not in stderr
