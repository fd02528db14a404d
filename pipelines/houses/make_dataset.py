"""Deterministic synthetic house sales (no download): the same seed gives the same bytes.

Prices (thousands of dollars) follow what drives real sale prices: living area with diminishing returns, the
neighbourhood's price level, condition, age (with a premium for renovated old houses), distance to the centre,
school rating and garages, with multiplicative noise. `shift` moves the market: newer and larger houses, more
sales in the outer neighbourhoods, and 18% price inflation, so the drift hook has something real to find and a
champion trained before the shift is beaten on the new data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pipelines.modelkit.data import dataset_cli, write_csv_columns

NEIGHBOURHOODS = {  # name: (price per sqft^0.85 index, share before the shift, share after, km to the centre)
    "old-town": (1.45, 0.18, 0.08, 1.5), "riverside": (1.30, 0.17, 0.12, 3.0), "hillcrest": (1.15, 0.20, 0.15, 6.0),
    "lakeview": (1.25, 0.10, 0.20, 9.0), "suburbs": (0.95, 0.25, 0.35, 14.0), "industrial": (0.75, 0.10, 0.10, 5.0),
}
CONDITIONS = {"poor": 0.82, "fair": 0.93, "good": 1.0, "excellent": 1.12}
NUMERIC = ["living_area_sqft", "lot_size_sqft", "bedrooms", "bathrooms", "year_built", "garage_spaces",
           "distance_km", "school_rating"]
CATEGORICAL = ["neighbourhood", "condition"]
LABEL = "price_k"
COLUMNS = NUMERIC + CATEGORICAL + [LABEL]


def generate(rows: int, seed: int = 7, shift: float = 0.0) -> dict:
    rng = np.random.default_rng(seed)
    names = list(NEIGHBOURHOODS)
    share = np.array([(1 - shift) * NEIGHBOURHOODS[n][1] + shift * NEIGHBOURHOODS[n][2] for n in names])
    hood = rng.choice(len(names), size=rows, p=share / share.sum())
    level = np.array([NEIGHBOURHOODS[n][0] for n in names])[hood]
    centre_km = np.array([NEIGHBOURHOODS[n][3] for n in names])[hood]
    area = np.clip(rng.lognormal(np.log(1700 * (1 + 0.25 * shift)), 0.35, rows), 450, 7000).round()
    bedrooms = np.clip(np.round(area / 650 + rng.normal(0, 0.7, rows)), 1, 7).astype(int)
    bathrooms = np.clip(np.round((bedrooms * 0.6 + rng.normal(0.4, 0.5, rows)) * 2) / 2, 1, 5)
    year = np.clip(np.round(rng.normal(1978 + 22 * shift, 22, rows)), 1890, 2025).astype(int)
    lot = np.clip(rng.lognormal(np.log(4000 + 350 * centre_km), 0.45, rows), 800, 60000).round()
    garages = rng.choice(4, size=rows, p=[0.2, 0.35, 0.35, 0.1])
    distance = np.clip(centre_km + rng.normal(0, 1.5, rows), 0.2, 40).round(1)
    school = np.clip(np.round(rng.normal(6.0 + 0.1 * (centre_km - 6), 1.8, rows)), 1, 10).astype(int)
    condition_names = list(CONDITIONS)
    condition = rng.choice(len(condition_names), size=rows, p=[0.08, 0.27, 0.45, 0.20])
    age = 2025 - year
    renovated = (age > 60) & (condition >= 2)
    price = (0.42 * level * area ** 0.85 * np.array(list(CONDITIONS.values()))[condition]
             * (1 - 0.0025 * np.minimum(age, 80) + 0.12 * renovated) * np.exp(-0.012 * distance)
             * (1 + 0.03 * (school - 6)) * (1 + 0.04 * garages) * (1 + 0.01 * np.log(lot / 4000))
             * (1 + 0.18 * shift) * rng.lognormal(0, 0.08, rows))
    return {
        "living_area_sqft": area, "lot_size_sqft": lot, "bedrooms": bedrooms, "bathrooms": bathrooms,
        "year_built": year, "garage_spaces": garages, "distance_km": distance, "school_rating": school,
        "neighbourhood": np.array(names)[hood], "condition": np.array(condition_names)[condition],
        LABEL: price.round(1),
    }


def write_csv(columns: dict, path: Path, include_label: bool = True) -> Path:
    return write_csv_columns(columns, [c for c in COLUMNS if include_label or c != LABEL], path)


if __name__ == "__main__":
    dataset_cli(generate, write_csv, __doc__, Path(__file__).parent / "data" / "train.csv")
