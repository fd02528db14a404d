"""Deterministic synthetic churn data (no download): the same seed gives the same bytes.

`shift` moves the customer population (longer tenure, higher charges, more support calls, a
different contract mix) so the drift hook has something real to find.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.modelkit.data import dataset_cli, write_csv_columns

NUMERIC = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "num_products",
           "age", "usage_gb", "late_payments"]
CATEGORIES = {
    "contract": ["month-to-month", "one-year", "two-year"],
    "payment_method": ["card", "bank-transfer", "electronic-check", "mailed-check"],
    "region": ["north", "south", "east", "west"],
}
LABEL = "churned"
COLUMNS = NUMERIC + list(CATEGORIES) + [LABEL]


def generate(rows: int, seed: int = 7, shift: float = 0.0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    contract_p = np.array([0.5, 0.3, 0.2]) * (1 - shift) + np.array([0.15, 0.25, 0.6]) * shift
    contract = rng.choice(3, size=rows, p=contract_p / contract_p.sum())
    payment = rng.choice(4, size=rows, p=[0.35, 0.25, 0.3, 0.1])
    region = rng.choice(4, size=rows)
    tenure = np.clip(rng.gamma(2.0, 12.0 * (1 + shift), rows) + 12 * contract, 1, 120).round()
    monthly = np.clip(rng.normal(65 + 25 * shift, 20, rows), 15, 150).round(2)
    total = (tenure * monthly * rng.uniform(0.9, 1.05, rows)).round(2)
    calls = rng.poisson(1.5 + 2.0 * shift, rows)
    products = rng.integers(1, 5, rows)
    age = np.clip(rng.normal(45, 14, rows), 18, 90).round()
    usage = np.clip(rng.lognormal(3.0 + 0.5 * shift, 0.6, rows), 0, 2000).round(1)
    late = rng.poisson(0.4, rows)
    logit = (-1.2 - 0.045 * (tenure - 24) + 0.025 * (monthly - 65) + 0.45 * calls - 0.9 * contract
             + 0.6 * (payment == 2) + 0.5 * late - 0.2 * products + rng.normal(0, 0.6, rows))
    churned = (rng.uniform(size=rows) < 1 / (1 + np.exp(-logit))).astype(int)
    return {
        "tenure_months": tenure, "monthly_charges": monthly, "total_charges": total,
        "support_calls": calls, "num_products": products, "age": age, "usage_gb": usage,
        "late_payments": late,
        "contract": np.array(CATEGORIES["contract"])[contract],
        "payment_method": np.array(CATEGORIES["payment_method"])[payment],
        "region": np.array(CATEGORIES["region"])[region],
        LABEL: churned,
    }


def write_csv(columns: dict[str, np.ndarray], path: Path, include_label: bool = True) -> Path:
    return write_csv_columns(columns, [c for c in COLUMNS if include_label or c != LABEL], path)


if __name__ == "__main__":
    dataset_cli(generate, write_csv, __doc__, Path(__file__).parent / "data" / "train.csv")
