"""Handler configuration: the model's validated spec and resource names.

A per-model function has them in its environment. A control-plane function acting for a model has them from the
model's record (lambdas/shared/tenancy.py), which `model_settings` puts in place of the environment's for as long as it
acts for that model; names the record does not hold (the function's own settings) still come from the environment.
"""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Iterator, Mapping

from pipelines.spec import ModelSpec

_MODEL_SETTINGS: ContextVar[Mapping[str, str] | None] = ContextVar("model_settings", default=None)


@contextmanager
def model_settings(settings: Mapping[str, str]) -> Iterator[None]:
    token = _MODEL_SETTINGS.set(settings)
    try:
        yield
    finally:
        _MODEL_SETTINGS.reset(token)


def model_spec() -> ModelSpec:
    return _parsed_spec(setting("MODEL_SPEC"))


@lru_cache(maxsize=8)
def _parsed_spec(text: str) -> ModelSpec:
    return ModelSpec.model_validate(json.loads(text))


model_spec.cache_clear = _parsed_spec.cache_clear  # the callers that reset it (tests, the local glue) keep working


def setting(name: str) -> str:
    value = optional_setting(name, None)
    if value is None:
        raise RuntimeError(f"environment variable {name} is not set; the stack passes it to every function")
    return value


def optional_setting(name: str, default: str | None = "") -> str | None:
    acting = _MODEL_SETTINGS.get()
    if acting is not None and name in acting:
        return acting[name]
    return os.environ.get(name, default)
