"""`mlops labels put MODEL FILE [--env ENV] [--output json]`: ground-truth labels for a model's captured predictions
(docs/models.md, "Ground truth and model quality").

The file (CSV with an `inference_id,label` header, JSON Lines, or Model Monitor ground-truth lines) is checked against
the model's task (lambdas/quality/labels.py); the accepted labels go, as Model Monitor's ground-truth JSON lines, to
`s3://<artifact bucket>/ground-truth/<model>/yyyy/mm/dd/hh/<uuid>.jsonl` (the hour of the upload) with the caller's
session (`--env local`: the running local server). Exit 2 when nothing valid was given; nothing is uploaded then.

Registered by pipelines/cli.py through its error handling: `labels_cli.register(app, command)`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from pathlib import Path

import typer
from botocore.exceptions import BotoCoreError, ClientError

from lambdas.quality import labels
from pipelines import naming
from pipelines.approvals_cli import EnvOption, Output, OutputOption

labels_app = typer.Typer(help="Ground-truth labels for captured predictions.", no_args_is_help=True)


def put_command(model: str = typer.Argument(..., help="The model the labels are for."),
                file: Path = typer.Argument(..., help="CSV (inference_id,label header), JSON Lines or Model Monitor "
                                                      "ground-truth lines."),
                env: str = EnvOption, output: Output = OutputOption) -> None:
    """Upload ground-truth labels: checked against the model's task, filed under ground-truth/<model>/yyyy/mm/dd/hh/."""
    from pipelines.cli import EXIT_USAGE, client, emit, fail
    from pipelines.client import model_dir
    from pipelines.spec import load_spec

    output = Output(output)
    spec = load_spec(model_dir(model))
    try:
        batch = labels.parse(read_label_file(file), spec.task)
    except labels.LabelFileError as error:
        fail(f"{file}: {error}", EXIT_USAGE, output.value, "invalid")
    counts = batch.counts()
    if not batch.accepted:
        fail(f"{file}: no valid labels ({describe(counts)}); nothing uploaded", EXIT_USAGE, output.value, "invalid")
    pipelines = client(env)
    try:
        location = upload(pipelines, model, batch)
    except (ClientError, BotoCoreError) as error:
        raise pipelines.explain(error) from None
    if output == Output.json:
        return emit({"model": model, "location": location, **counts})
    typer.echo(f"{model}: {describe(counts)}\nuploaded: {location}")
    for example in counts["examples"]:
        typer.echo(f"  - {example}")


def read_label_file(file: Path) -> str:
    """The file's text; a LabelFileError (one line) when it cannot be read at all."""
    try:
        return file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise labels.LabelFileError("no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise labels.LabelFileError(f"cannot be read as UTF-8 text ({type(error).__name__})") from None


def describe(counts: dict) -> str:
    return f"{counts['accepted']} accepted, {counts['duplicate']} duplicate, {counts['malformed']} malformed"


def upload(pipelines, model: str, batch: labels.LabelBatch) -> str:
    bucket = naming.artifact_bucket(pipelines.env, pipelines.check_account(), pipelines.region)
    key = labels.ground_truth_key(model, datetime.now(timezone.utc), uuid.uuid4().hex)
    pipelines.client("s3").put_object(Bucket=bucket, Key=key, Body=labels.ground_truth_jsonl(batch.accepted).encode(),
                                      ContentType="application/jsonlines")
    return f"s3://{bucket}/{key}"


def register(app: typer.Typer, command) -> None:
    """Adds `mlops labels put` to the CLI, through its error handling (command: one line and an exit code)."""
    app.add_typer(labels_app, name="labels")
    command(labels_app, "put")(put_command)
