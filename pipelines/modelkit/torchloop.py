"""PyTorch training-loop plumbing shared by PyTorch model folders: distribution (torchrun relaunch, DDP), mixed
precision, device-resident batches, seeded determinism and spot-safe checkpoints. The model, its loss and its
optimizer stay in the model's train.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from .contract import Paths

# Data smaller than this lives on the accelerator for the whole run; larger data streams from pinned memory.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


# ---------------------------------------------------------------- distribution

def cluster_shape(paths: Paths) -> tuple:
    """(hosts, this host, GPUs per host) from SageMaker's variables or resourceconfig.json."""
    hosts = json.loads(os.environ.get("SM_HOSTS", "[]"))
    current = os.environ.get("SM_CURRENT_HOST", "")
    if not hosts and paths.resource_config.exists():
        config = json.loads(paths.resource_config.read_text())
        hosts, current = config["hosts"], config["current_host"]
    gpus = int(os.environ.get("SM_NUM_GPUS", torch.cuda.device_count()))
    return hosts or ["localhost"], current or "localhost", gpus


def relaunch_under_torchrun(paths: Paths, script: Path) -> int | None:
    """Several hosts or GPUs and not yet under torchrun: run `script` under torchrun; None otherwise."""
    if "WORLD_SIZE" in os.environ:
        return None
    hosts, current, gpus = cluster_shape(paths)
    if len(hosts) == 1 and gpus <= 1:
        return None
    command = [sys.executable, "-m", "torch.distributed.run", f"--nnodes={len(hosts)}",
               f"--node_rank={hosts.index(current)}", f"--nproc_per_node={max(gpus, 1)}",
               f"--master_addr={hosts[0]}", "--master_port=29500", str(Path(script).resolve()), *sys.argv[1:]]
    print(f"distributed: relaunching {len(hosts)} host(s) x {max(gpus, 1)} process(es)", flush=True)
    return subprocess.call(command)


def init_distributed() -> tuple:
    """(rank, world size, device); joins the process group when there are several processes."""
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


def wrap_distributed(model: nn.Module, device: torch.device, world_size: int) -> nn.Module:
    if world_size > 1:
        return nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
    return model


def unwrap(model: nn.Module) -> nn.Module:
    return model.module if hasattr(model, "module") else model


def barrier(world_size: int) -> None:
    if world_size > 1:
        dist.barrier()


def shutdown(world_size: int) -> None:
    if world_size > 1:
        dist.destroy_process_group()


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


# ---------------------------------------------------------------- batches and precision

class Batches:
    """Shuffled mini-batches: the data stays on the device when it fits, else streams from pinned memory; each
    process of a distributed job takes every world_size-th row of the epoch's order."""

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


def autocast_dtype(precision: str, device: torch.device):
    """None (fp32) on CPU or when asked; bf16 where the GPU has it, else fp16."""
    if precision == "fp32" or device.type != "cuda":
        return None
    if precision == "fp16":
        return torch.float16
    if precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def grad_scaler(device: torch.device, dtype) -> torch.amp.GradScaler:
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def make_optimizer(model: nn.Module, learning_rate: float, device: torch.device) -> torch.optim.Optimizer:
    return torch.optim.AdamW(model.parameters(), lr=learning_rate, fused=device.type == "cuda")


def train_epoch(model, optimizer, batches: Batches, seed: int, dtype, scaler, loss_fn) -> float:
    """One pass; returns the mean loss. Mixed precision when dtype is set (GradScaler for fp16); one host sync
    per epoch, not per step."""
    model.train()
    total = torch.zeros((), device=batches.device)
    steps = 0
    for xb, yb in batches.epoch(seed):
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast(device_type=batches.device.type, dtype=dtype, enabled=dtype is not None):
            loss = loss_fn(model(xb), yb)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        total += loss.detach()
        steps += 1
    return float(total) / max(steps, 1)


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
