"""`mlops local up --scenario quality`: after run 1, the served model is judged against ground truth, offline.

1. traffic from the population the model was trained on, whose true answers (the dataset maker's labels for the same
   rows) the data scientist puts as labels with `mlops labels put`'s own upload (their session, enforced IAM);
2. the quality check (the control plane's function, as the model's schedule invokes it) judges that window: quiet;
3. the world changes: more traffic, whose answers moved for a share of the rows (what the model learned is no longer
   right, while the inputs look the same: the drift hook sees nothing); their labels arrive;
4. the quality check finds the drop and starts run 2 through the model's retraining cooldown.

A label names the request's inference id (every answer carries one: pipelines/modelkit/serving.py), "<id>:<row>"
for a row of a request of several. Labels of requests the endpoint did not capture (it samples) join nothing and are
counted as unknown, as in AWS.
"""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta, timezone

import numpy as np

REQUESTS, ROWS_PER_REQUEST = 150, 20
CHANGED_SHARE = 0.6  # the share of answers the changed world moves


def traffic_with_truth(lifecycle, seed: int) -> dict[str, str]:
    """REQUESTS requests of the training population: {label id: the true answer} of every row sent."""
    truth: dict[str, str] = {}
    label = lifecycle.spec.dataset.label
    for request in range(REQUESTS):
        columns = lifecycle.dataset.generate(ROWS_PER_REQUEST, seed + request, 0.0)
        rows = [dict(zip(lifecycle.spec.dataset.features, values)) for values in
                zip(*(columns[name].tolist() for name in lifecycle.spec.dataset.features))]
        answer = json.loads(lifecycle._invoke(rows))
        ids = [f"{answer['inference_id']}:{row}" for row in range(len(rows))]
        truth.update(zip(ids, (str(value) for value in columns[label].tolist())))
    if lifecycle._shared:
        lifecycle._split_shared_capture()
    return truth


def changed_world(truth: dict[str, str], task_type: str, seed: int) -> dict[str, str]:
    """CHANGED_SHARE of the answers moved: a class becomes the other one, a number moves by half its spread."""
    rng = np.random.default_rng(seed)
    if task_type == "regression":
        values = np.array([float(v) for v in truth.values()])
        moved = values + np.where(rng.uniform(size=len(values)) < CHANGED_SHARE, values.std() * 1.5, 0.0)
        return dict(zip(truth, (f"{v:.4f}" for v in moved)))
    classes = sorted(set(truth.values()))
    return {key: (rng.choice([c for c in classes if c != value]) if rng.uniform() < CHANGED_SHARE and len(classes) > 1
                  else value) for key, value in truth.items()}


def put_labels(lifecycle, truth: dict[str, str]) -> dict:
    """What `mlops labels put MODEL labels.csv` does, as the data scientist: parsed against the task, uploaded."""
    from lambdas.quality import labels
    from pipelines.client import Pipelines
    from pipelines.labels_cli import upload

    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["inference_id", "label"])
    writer.writerows(truth.items())
    batch = labels.parse(text.getvalue(), lifecycle.spec.task)
    pipelines = Pipelines(env="local", session=lifecycle.data_scientist.session(lifecycle.region),
                          models_dir=lifecycle.models_dir)
    return {"location": upload(pipelines, lifecycle.model, batch), **batch.counts()}


def check(lifecycle) -> dict:
    """The model's quality schedule's event, as Scheduler sends it, at the moment the window holding this traffic is
    due: quality.label_delay_hours after its end (the labels just put arrived before it)."""
    quality = lifecycle.spec.quality
    due = datetime.now(timezone.utc) + timedelta(hours=quality.label_delay_hours, minutes=1)
    function = lifecycle.provisioned.function_named("QualityChecks")
    return lifecycle.dispatch.invoke(function.name, {"model": lifecycle.model, "execution_id": "local-quality-check",
                                                     "scheduled_time": due.strftime("%Y-%m-%dT%H:%M:%SZ")})
