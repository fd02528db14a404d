"""Import an artifact's own serving code (code/inference.py and what lies beside it) in isolation.

A champion trained by older code, the challenger just trained, and in the local mode every served model of
every model folder load into one process: each must see its own `inference`, `modelkit` and helper modules,
never another's. The modules of the code directory are imported with it first on sys.path and with any
same-named modules set aside, and taken out again afterwards (the loaded inference module keeps its
references). Serving code should import its modules at the top, not inside functions.
"""

from __future__ import annotations

import importlib.util
import sys
import threading
import uuid
from pathlib import Path

_LOCK = threading.Lock()


def _local_names(code_dir: Path) -> set:
    names = {p.stem for p in code_dir.glob("*.py")}
    names |= {p.name for p in code_dir.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    return names


def _owned(module_name: str, names: set) -> bool:
    return module_name.split(".", 1)[0] in names


class ServingCode:
    """inference.py of one artifact, loaded with its model: predict(rows) -> prediction records."""

    def __init__(self, model_dir: Path, code_dir: Path | None = None) -> None:
        self.model_dir = Path(model_dir)
        code_dir = Path(code_dir or self.model_dir / "code")
        entry = code_dir / "inference.py"
        if not entry.is_file():
            raise FileNotFoundError(f"{entry} does not exist: the artifact carries no serving code")
        names = _local_names(code_dir)
        with _LOCK:
            saved = {k: sys.modules.pop(k) for k in list(sys.modules) if _owned(k, names)}
            sys.path.insert(0, str(code_dir))
            try:
                spec = importlib.util.spec_from_file_location(f"inference_{uuid.uuid4().hex}", entry)
                self.module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(self.module)
                self.model = self.module.model_fn(str(self.model_dir))
            finally:
                sys.path.remove(str(code_dir))
                for name in [k for k in list(sys.modules) if _owned(k, names)]:
                    del sys.modules[name]
                sys.modules.update(saved)

    def predict(self, rows: list) -> list:
        return self.module.predict_fn(rows, self.model)

    def handle(self, body: bytes, content_type: str, accept: str, environment: dict | None = None) -> tuple:
        """One InvokeEndpoint request, as the serving container runs it; environment: the container's variables
        that modelkit reads per request (its model identity), applied to this request only."""
        identity = getattr(getattr(self.module, "serving", None), "REQUEST_IDENTITY", None)
        name = (environment or {}).get(getattr(self.module.serving, "IDENTITY_VARIABLE", "")) if identity else None
        token = identity.set(name) if identity is not None and name else None
        try:
            rows = self.module.input_fn(body, content_type)
            return self.module.output_fn(self.module.predict_fn(rows, self.model), accept)
        finally:
            if token is not None:
                identity.reset(token)
