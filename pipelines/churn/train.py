"""Churn: a binary classifier (tabular MLP in PyTorch), trained in the SageMaker training-container contract.

The same file runs in a SageMaker PyTorch container, on a local CPU and on a local GPU. What is shared by every
model (paths, hyperparameters, encoding, checkpoints, mixed precision, DDP, evaluation.json, the drift baseline,
the champion re-scored on the same rows) comes from modelkit; this file keeps the network and its loop.
- metrics: 'validation:auc=0.8512;' lines, read by the spec's regex (the champion's as 'champion:auc=...;')
- checkpoints: /opt/ml/checkpoints (SageMaker syncs it with S3); a restarted spot job resumes
- several GPUs or hosts: relaunches itself under torchrun and trains with DistributedDataParallel
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path

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
    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 3e-3
    hidden_units: int = 64
    seed: int = 7
    validation_share: float = 0.2
    precision: str = "auto"  # auto | fp32 | bf16 | fp16
    keep_checkpoints: int = 2


def build_model(width: int, hidden_units: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, 1),
    )


def loss_fn(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return nn.functional.binary_cross_entropy_with_logits(logits.squeeze(-1), labels)


def write_model(paths: contract.Paths, model: nn.Module, state: dict, hp: Hyperparameters) -> None:
    paths.model.mkdir(parents=True, exist_ok=True)
    module = torchloop.unwrap(model)
    torch.save({"state_dict": {k: v.cpu() for k, v in module.state_dict().items()},
                "width": data.width(state), "hidden_units": hp.hidden_units}, paths.model / "model.pt")
    (paths.model / "preprocessing.json").write_text(json.dumps(state, indent=2))


def run(paths: contract.Paths, hp: Hyperparameters) -> dict:
    task = contract.Task.of(contract.model_spec(HERE))
    rank, world_size, device = torchloop.init_distributed()
    torchloop.seed_everything(hp.seed)
    split = data.load_split(paths.train, task, hp.validation_share, hp.seed)
    model = torchloop.wrap_distributed(build_model(split.x_train.shape[1], hp.hidden_units).to(device), device, world_size)
    optimizer = torchloop.make_optimizer(model, hp.learning_rate, device)
    dtype = torchloop.autocast_dtype(hp.precision, device)
    scaler = torchloop.grad_scaler(device, dtype)
    start_epoch = torchloop.load_latest_checkpoint(paths.checkpoints, model, optimizer, scaler, device)
    if start_epoch:
        print(f"checkpoint: resumed from epoch {start_epoch}", flush=True)
    batches = torchloop.Batches(split.x_train, split.y_train, hp.batch_size, device, rank, world_size)
    interrupt_after = int(os.environ.get("MLOPS_SIMULATE_SPOT_INTERRUPTION_AFTER_EPOCH", "0"))

    started = time.perf_counter()
    history = tracking.History()
    for epoch in range(start_epoch + 1, hp.epochs + 1):
        loss = torchloop.train_epoch(model, optimizer, batches, hp.seed * 1000 + epoch, dtype, scaler, loss_fn)
        if rank == 0:
            history.log(epoch, **{"train:loss": loss})  # 'epoch=3; train:loss=0.412345;' and evaluation.json
            torchloop.save_checkpoint(paths.checkpoints, epoch, model, optimizer, scaler, hp.keep_checkpoints)
            print(f"checkpoint: saved epoch {epoch}", flush=True)
        torchloop.barrier(world_size)
        if epoch == interrupt_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: a spot reclaim, no clean-up

    report = {}
    if rank == 0:
        write_model(paths, model, split.state, hp)
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
