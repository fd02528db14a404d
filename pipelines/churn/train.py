"""Churn model training following the SageMaker training-container contract.

The same file runs in a SageMaker PyTorch container, on a local CPU and on a local GPU:
- inputs: SM_CHANNEL_TRAIN (CSV files), /opt/ml/input/config/hyperparameters.json (or CLI flags)
- outputs: SM_MODEL_DIR (model.pt, preprocessing.json, code/, evaluation.json, model_card.md,
  statistics.json + constraints.json as the drift baseline), SM_OUTPUT_DATA_DIR (report, card)
- checkpoints: /opt/ml/checkpoints (SageMaker syncs it with S3); a restarted spot job resumes
- metrics: 'validation:auc=0.8512;' lines, read by the spec's regex
- several GPUs or hosts: relaunches itself under torchrun and trains with DistributedDataParallel
SM_ROOT (not a SageMaker variable) moves the whole /opt/ml layout, for local runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import evaluate  # noqa: E402
import features  # noqa: E402

try:
    import baseline  # bundled next to this file in the SageMaker source archive
except ImportError:  # running from the repository: the platform's own module
    sys.path.insert(0, str(HERE.parents[1]))
    from lambdas.drift import baseline

CATEGORICAL = ["contract", "payment_method", "region"]
LABEL = "churned"
SERVING_CODE = ("inference.py", "features.py")
# Data smaller than this lives on the accelerator for the whole run; larger data streams from pinned memory.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


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


@dataclass(frozen=True)
class Paths:
    train: Path
    model: Path
    output: Path
    checkpoints: Path
    hyperparameters: Path
    resource_config: Path

    @classmethod
    def from_environment(cls) -> Paths:
        root = Path(os.environ.get("SM_ROOT", "/opt/ml"))
        return cls(
            train=Path(os.environ.get("SM_CHANNEL_TRAIN", root / "input/data/train")),
            model=Path(os.environ.get("SM_MODEL_DIR", root / "model")),
            output=Path(os.environ.get("SM_OUTPUT_DATA_DIR", root / "output/data")),
            checkpoints=Path(os.environ.get("SM_CHECKPOINT_DIR", root / "checkpoints")),
            hyperparameters=root / "input/config/hyperparameters.json",
            resource_config=root / "input/config/resourceconfig.json",
        )


def parse_hyperparameters(paths: Paths, argv: list[str]) -> Hyperparameters:
    """Defaults < hyperparameters.json (SageMaker stores every value as a string) < command-line flags."""
    values = {}
    if paths.hyperparameters.exists():
        for key, raw in json.loads(paths.hyperparameters.read_text()).items():
            if key.startswith("sagemaker_"):
                continue
            try:
                values[key] = json.loads(raw) if isinstance(raw, str) else raw
            except json.JSONDecodeError:
                values[key] = raw
    parser = argparse.ArgumentParser()
    for name, default in asdict(Hyperparameters()).items():
        parser.add_argument(f"--{name}", type=type(default), default=None)
    flags, _ = parser.parse_known_args(argv)
    values.update({k: v for k, v in vars(flags).items() if v is not None})
    known = set(asdict(Hyperparameters()))
    unknown = sorted(set(values) - known)
    if unknown:
        raise SystemExit(f"unknown hyperparameters {unknown}; known: {sorted(known)}")
    defaults = Hyperparameters()
    return Hyperparameters(**{k: type(getattr(defaults, k))(v) for k, v in values.items()})


# ---------------------------------------------------------------- distribution

def cluster_shape(paths: Paths) -> tuple[list[str], str, int]:
    """(hosts, this host, GPUs per host) from SageMaker's variables or resourceconfig.json."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    current = os.environ.get("SM_CURRENT_HOST", "")
    if not hosts and paths.resource_config.exists():
        config = json.loads(paths.resource_config.read_text())
        hosts, current = config["hosts"], config["current_host"]
    gpus = int(os.environ.get("SM_NUM_GPUS", torch.cuda.device_count()))
    return hosts or ["localhost"], current or "localhost", gpus


def relaunch_under_torchrun(paths: Paths) -> int | None:
    """Several hosts or GPUs and not yet under torchrun: start torchrun with this script; None otherwise."""
    if "WORLD_SIZE" in os.environ:
        return None
    hosts, current, gpus = cluster_shape(paths)
    if len(hosts) == 1 and gpus <= 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(hosts)}",
               f"--node_rank={hosts.index(current)}", f"--nproc_per_node={max(gpus, 1)}",
               f"--master_addr={hosts[0]}", "--master_port=29500", str(Path(__file__).resolve()), *sys.argv[1:]]
    print(f"distributed: relaunching {len(hosts)} host(s) x {max(gpus, 1)} process(es)", flush=True)
    return subprocess.call(command)


def init_distributed() -> tuple[int, int, torch.device]:
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank)
        device = torch.device("cuda", local_rank)
    else:
        device = torch.device("cpu")
    if world_size > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return rank, world_size, device


# ---------------------------------------------------------------- data and model

class Batches:
    """Shuffled mini-batches: the data stays on the device when it fits, else streams from pinned memory."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int, device: torch.device,
                 rank: int = 0, world_size: int = 1) -> None:
        self.batch_size, self.device, self.rank, self.world_size = batch_size, device, rank, world_size
        x_tensor, y_tensor = torch.from_numpy(x), torch.from_numpy(y)
        resident = device.type == "cuda" and x_tensor.nbytes + y_tensor.nbytes < DEVICE_RESIDENT_BYTES
        if resident:
            self.x, self.y = x_tensor.to(device), y_tensor.to(device)
        elif device.type == "cuda":
            self.x, self.y = x_tensor.pin_memory(), y_tensor.pin_memory()
        else:
            self.x, self.y = x_tensor, y_tensor
        self.on_device = self.x.device.type == device.type

    def epoch(self, seed: int):
        generator = torch.Generator().manual_seed(seed)
        order = torch.randperm(len(self.x), generator=generator)[self.rank::self.world_size]
        if self.on_device:
            order = order.to(self.device)
        for start in range(0, len(order), self.batch_size):
            index = order[start:start + self.batch_size]
            xb, yb = self.x[index], self.y[index]
            if not self.on_device:
                xb, yb = xb.to(self.device, non_blocking=True), yb.to(self.device, non_blocking=True)
            yield xb, yb


def build_model(width: int, hidden_units: int) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, hidden_units), nn.ReLU(),
        nn.Linear(hidden_units, 1),
    )


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    if precision == "fp32" or device.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def make_optimizer(model: nn.Module, learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=device.type == "cuda")


def train_epoch(model, optimizer, batches: Batches, seed: int, dtype: torch.dtype | None, scaler) -> float:
    """One pass; returns the mean loss. Mixed precision when dtype is set (GradScaler for fp16)."""
    model.train()
    loss_fn = nn.BCEWithLogitsLoss()
    total = torch.zeros((), device=batches.device)
    steps = 0
    for xb, yb in batches.epoch(seed):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=batches.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(xb).squeeze(-1), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach()
        steps += 1
    return float(total) / max(steps, 1)  # one host sync per epoch, not per step


@torch.no_grad()
def predict_probabilities(model: nn.Module, x: np.ndarray, device: torch.device) -> np.ndarray:
    model.eval()
    logits = model(torch.from_numpy(x).to(device)).squeeze(-1).float()
    return torch.sigmoid(logits).cpu().numpy()


# ---------------------------------------------------------------- checkpoints

def save_checkpoint(directory: Path, epoch: int, model: nn.Module, optimizer, scaler, keep: int) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"checkpoint-epoch{epoch:04d}.pt"
    temporary = path.with_suffix(".tmp")
    torch.save({"epoch": epoch, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict()}, temporary)
    os.replace(temporary, path)  # a job killed mid-write never leaves a torn checkpoint
    for old in sorted(directory.glob("checkpoint-epoch*.pt"))[:-keep]:
        old.unlink()
    return path


def load_latest_checkpoint(directory: Path, model: nn.Module, optimizer, scaler, device) -> int:
    """The epoch of the newest readable checkpoint (0 when none); restores model, optimizer and scaler."""
    for path in sorted(directory.glob("checkpoint-epoch*.pt"), reverse=True):
        try:
            state = torch.load(path, map_location=device, weights_only=True)
        except Exception as error:  # a corrupt file must not stop a resumed spot job
            print(f"checkpoint: skipping unreadable {path.name}: {error}", flush=True)
            continue
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scaler.load_state_dict(state["scaler"])
        return int(state["epoch"])
    return 0


# ---------------------------------------------------------------- the job

def split(rows: int, share: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    order = np.random.default_rng(seed).permutation(rows)
    cut = int(rows * (1 - share))
    return order[:cut], order[cut:]


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def write_artifacts(paths: Paths, model, state: dict, hp: Hyperparameters, metrics: dict, details: dict,
                    train_columns: dict) -> None:
    paths.model.mkdir(parents=True, exist_ok=True)
    module = model.module if hasattr(model, "module") else model
    torch.save({"state_dict": {k: v.cpu() for k, v in module.state_dict().items()},
                "width": features.width(state), "hidden_units": hp.hidden_units}, paths.model / "model.pt")
    (paths.model / "preprocessing.json").write_text(json.dumps(state, indent=2))
    code = paths.model / "code"
    code.mkdir(exist_ok=True)
    for name in SERVING_CODE:
        shutil.copy2(HERE / name, code / name)
    statistics, constraints = baseline.compute(train_columns, state["features"], state["categorical"])
    (paths.model / "statistics.json").write_text(json.dumps(statistics))
    (paths.model / "constraints.json").write_text(json.dumps(constraints))
    for directory in (paths.model, paths.output):
        evaluate.write_report(directory, metrics, details)
        evaluate.write_model_card(directory, metrics, details)


def run(paths: Paths, hp: Hyperparameters) -> dict:
    rank, world_size, device = init_distributed()
    seed_everything(hp.seed)
    columns = features.read_channel(paths.train)
    feature_names = [c for c in columns if c != LABEL]
    train_index, validation_index = split(len(columns[LABEL]), hp.validation_share, hp.seed)
    train_columns = {k: [v[i] for i in train_index] for k, v in columns.items()}
    validation_columns = {k: [v[i] for i in validation_index] for k, v in columns.items()}
    state = features.fit(train_columns, feature_names, [c for c in CATEGORICAL if c in columns], LABEL)
    x_train, y_train = features.transform(train_columns, state), features.labels_of(train_columns, LABEL)
    x_valid, y_valid = features.transform(validation_columns, state), features.labels_of(validation_columns, LABEL)

    model = build_model(x_train.shape[1], hp.hidden_units).to(device)
    if world_size > 1:
        model = nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    optimizer = make_optimizer(model, hp.learning_rate, device)
    dtype = autocast_dtype(hp.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    start_epoch = load_latest_checkpoint(paths.checkpoints, model, optimizer, scaler, device)
    if start_epoch:
        print(f"checkpoint: resumed from epoch {start_epoch}", flush=True)
    batches = Batches(x_train, y_train, hp.batch_size, device, rank, world_size)
    interrupt_after = int(os.environ.get("MLOPS_SIMULATE_SPOT_INTERRUPTION_AFTER_EPOCH", "0"))

    started = time.perf_counter()
    for epoch in range(start_epoch + 1, hp.epochs + 1):
        loss = train_epoch(model, optimizer, batches, hp.seed * 1000 + epoch, dtype, scaler)
        if rank == 0:
            print(f"epoch={epoch}; train:loss={loss:.6f};", flush=True)
            save_checkpoint(paths.checkpoints, epoch, model, optimizer, scaler, hp.keep_checkpoints)
            print(f"checkpoint: saved epoch {epoch}", flush=True)
        if world_size > 1:
            dist.barrier()
        if epoch == interrupt_after:
            os.kill(os.getpid(), signal.SIGKILL)  # test hook: a spot reclaim, no clean-up

    result = {}
    if rank == 0:
        metrics = evaluate.classification_metrics(y_valid, predict_probabilities(model, x_valid, device))
        evaluate.print_metrics(metrics)
        details = {"model": "churn", "train_rows": len(y_train), "validation_rows": len(y_valid),
                   "device": str(device), "precision": str(dtype or torch.float32).removeprefix("torch."),
                   "world_size": world_size, "epochs_completed": hp.epochs, "resumed_from_epoch": start_epoch,
                   "hyperparameters": asdict(hp), "train_seconds": round(time.perf_counter() - started, 3)}
        write_artifacts(paths, model, state, hp, metrics, details, train_columns)
        result = {"metrics": metrics, **details}
    if world_size > 1:
        dist.destroy_process_group()
    return result


def main(argv: list[str] | None = None) -> int:
    paths = Paths.from_environment()
    code = relaunch_under_torchrun(paths)
    if code is not None:
        return code
    run(paths, parse_hyperparameters(paths, sys.argv[1:] if argv is None else argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
