"""Handler configuration from the environment: the model's validated spec and resource names."""

from __future__ import annotations

import json
import os
from functools import lru_cache

from pipelines.spec import ModelSpec


@lru_cache(maxsize=1)
def model_spec() -> ModelSpec:
    return ModelSpec.model_validate(json.loads(os.environ["MODEL_SPEC"]))


def setting(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError:
        raise RuntimeError(f"environment variable {name} is not set; the stack passes it to every function") from None
