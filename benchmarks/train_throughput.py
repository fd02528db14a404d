"""Samples/s of train.py's training loop vs a naive fp32 loop on the same data, side by side.

naive: torch DataLoader over CPU tensors (per-sample collation), a host->device copy per batch,
fp32, unfused Adam, loss.item() every step. train.py: data resident on the device (pinned
streaming when it does not fit), bf16/fp16 autocast on GPU, fused AdamW, one host sync per epoch.

    python benchmarks/train_throughput.py [--rows 200000] [--batch-size 1024] [--epochs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "pipelines" / "churn"))
import make_dataset  # noqa: E402
import train  # noqa: E402  (puts pipelines/ on the path for modelkit)
from modelkit import data as features, torchloop  # noqa: E402


def dataset(rows: int):
    columns = make_dataset.generate(rows, seed=1)
    names = [c for c in make_dataset.COLUMNS if c != make_dataset.LABEL]
    state = features.fit(columns, names, list(make_dataset.CATEGORIES), make_dataset.LABEL)
    return features.transform(columns, state), columns[make_dataset.LABEL].astype("float32")


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def naive_epoch(model, optimizer, loader, device) -> None:
    loss_fn = nn.BCEWithLogitsLoss()
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = loss_fn(model(xb).squeeze(-1), yb)
        loss.backward()
        optimizer.step()
        loss.item()


def measure(name, epoch_fn, rows, epochs, device) -> float:
    epoch_fn(0)  # warm-up: allocator, kernels, pinned buffers
    synchronize(device)
    started = time.perf_counter()
    for epoch in range(1, epochs + 1):
        epoch_fn(epoch)
    synchronize(device)
    throughput = rows * epochs / (time.perf_counter() - started)
    print(f"{name:>10}: {throughput:,.0f} samples/s")
    return throughput


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--hidden-units", type=int, default=256)
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    x, y = dataset(args.rows)
    print(f"device={device} ({torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}), rows={args.rows}, "
          f"width={x.shape[1]}, batch={args.batch_size}, hidden={args.hidden_units}")

    torch.manual_seed(0)
    naive_model = train.build_model(x.shape[1], args.hidden_units).to(device)
    naive_optimizer = torch.optim.Adam(naive_model.parameters(), lr=1e-3)
    loader = DataLoader(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)), batch_size=args.batch_size, shuffle=True)
    naive = measure("naive fp32", lambda e: naive_epoch(naive_model, naive_optimizer, loader, device),
                    args.rows, args.epochs, device)

    torch.manual_seed(0)
    model = train.build_model(x.shape[1], args.hidden_units).to(device)
    optimizer = torchloop.make_optimizer(model, 1e-3, device)
    dtype = torchloop.autocast_dtype("auto", device)
    scaler = torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)
    batches = torchloop.Batches(x, y, args.batch_size, device)
    fast = measure("train.py", lambda e: torchloop.train_epoch(model, optimizer, batches, e, dtype, scaler, train.loss_fn),
                   args.rows, args.epochs, device)

    result = {"device": str(device), "naive_samples_per_s": round(naive), "train_py_samples_per_s": round(fast),
              "ratio": round(fast / naive, 2), "precision": str(dtype or torch.float32).removeprefix("torch.")}
    print(f"ratio train.py / naive = {result['ratio']:.2f}x")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
