"""${name}: ${task} model (PyTorch MLP), trained in the SageMaker training-container contract (from `mlops new`).

Runs in SageMaker's PyTorch container, on a local CPU and on a local GPU. Checkpoints, mixed precision, DDP,
encoding, evaluation.json with the champion re-scored on the same rows and the drift baseline come from modelkit;
this file keeps the network, whose head and loss follow the spec's task type (binary: one logit with
binary cross-entropy; multiclass: one logit per class with cross-entropy; regression: the standardized target
with mean squared error).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
try:
    import modelkit  # noqa: F401  packed beside this file in the source archive
except ImportError:  # a checkout: pipelines/modelkit
    sys.path.insert(0, str(HERE.parent))
from modelkit import contract, data, finish, torchloop, tracking  # noqa: E402


@dataclass
class Hyperparameters:
    epochs: int = 20
    batch_size: int = 256
    learning_rate: float = 3e-3
    hidden_units: int = 64
    seed: int = 7
    validation_share: float = 0.2
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    keep_checkpoints: int = 2


def outputs(task: contract.Task, state: dict) -> int:
    return len(state["classes"]) if task.type == "multiclass" else 1


def build_model(width: int, hidden_units: int, out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(width, hidden_units), nn.ReLU(), nn.Linear(hidden_units, hidden_units), nn.ReLU(),
                         nn.Linear(hidden_units, out))


def loss_for(task: contract.Task):
    if task.type == "multiclass":
        return lambda logits, labels: nn.functional.cross_entropy(logits, labels)
    if task.type == "binary":
        return lambda logits, labels: nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), labels)
    return lambda output, target: nn.functional.mse_loss(output.squeeze(-1), target)


def run(paths: contract.Paths, hp: Hyperparameters) -> dict:
    task = contract.Task.of(contract.model_spec(HERE))
    rank, world_size, device = torchloop.init_distributed()
    torchloop.seed_everything(hp.seed)
    split = data.load_split(paths.train, task, hp.validation_share, hp.seed)
    target = split.y_train
    if task.type == "regression":  # the network learns the standardized target; serving undoes it
        split.state["target_mean"], split.state["target_std"] = float(target.mean()), float(target.std()) or 1.0
        target = ((target - split.state["target_mean"]) / split.state["target_std"]).astype(np.float32)
    model = build_model(split.x_train.shape[1], hp.hidden_units, outputs(task, split.state)).to(device)
    model = torchloop.wrap_distributed(model, device, world_size)
    optimizer = torchloop.make_optimizer(model, hp.learning_rate, device)
    dtype = torchloop.autocast_dtype(hp.precision, device)
    scaler = torchloop.grad_scaler(device, dtype)
    start_epoch = torchloop.load_latest_checkpoint(paths.checkpoints, model, optimizer, scaler, device)
    if start_epoch:
        print(f"checkpoint: resumed from epoch {start_epoch}", flush=True)
    batches = torchloop.Batches(split.x_train, target, hp.batch_size, device, rank, world_size)
    interrupt_after = int(os.environ.get("MLOPS_SIMULATE_SPOT_INTERRUPTION_AFTER_EPOCH", "0"))
    started, loss_fn = time.perf_counter(), loss_for(task)
    history = tracking.History()
    for epoch in range(start_epoch + 1, hp.epochs + 1):
        loss = torchloop.train_epoch(model, optimizer, batches, hp.seed * 1000 + epoch, dtype, scaler, loss_fn)
        if rank == 0:
            history.log(epoch, **{"train:loss": loss})  # 'epoch=3; train:loss=0.412345;' and evaluation.json
            torchloop.save_checkpoint(paths.checkpoints, epoch, model, optimizer, scaler, hp.keep_checkpoints)
        torchloop.barrier(world_size)
        if epoch == interrupt_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: a spot reclaim, no clean-up
    report = {}
    if rank == 0:
        paths.model.mkdir(parents=True, exist_ok=True)
        network = torchloop.unwrap(model)
        torch.save({"state_dict": {k: v.cpu() for k, v in network.state_dict().items()}, "width": data.width(split.state),
                    "hidden_units": hp.hidden_units, "outputs": outputs(task, split.state)}, paths.model / "model.pt")
        (paths.model / "preprocessing.json").write_text(json.dumps(split.state, indent=2))
        report = finish.finish(paths, task, HERE, split, {
            "framework": f"pytorch {torch.__version__}", "device": str(device),
            "precision": str(dtype or torch.float32).removeprefix("torch."), "world_size": world_size,
            "epochs_completed": hp.epochs, "resumed_from_epoch": start_epoch, "hyperparameters": contract.as_dict(hp),
            "train_seconds": round(time.perf_counter() - started, 3)}, history=history)
    torchloop.shutdown(world_size)
    return report


def main(argv: list | None = None) -> int:
    paths = contract.Paths.from_environment()
    code = torchloop.relaunch_under_torchrun(paths, Path(__file__))
    if code is not None:
        return code
    run(paths, contract.read_hyperparameters(paths, Hyperparameters(), sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
