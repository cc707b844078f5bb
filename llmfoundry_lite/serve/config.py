"""Typed ``scripts/serve.py`` settings: parsed once from the command line, checked, then read-only."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields

BACKEND_NAMES = ("ours", "ct2")
"""Valid ``--backend`` values (``server.BACKENDS`` dispatches on them)."""
CT2_COMPUTE_TYPES = ("int8", "int8_float32", "float32")
"""CTranslate2 compute types offered on CPU."""


@dataclass(frozen=True)
class ServeConfig:
    """What ``scripts/serve.py`` serves and how."""

    model: str
    """HF export (directory with config.json), Composer checkpoint (.pt or sharded dir) or training save folder."""
    host: str = "127.0.0.1"
    """Interface to listen on; the default keeps the server local."""
    port: int = 8000
    """TCP port."""
    backend: str = "ours"
    """``ours``: this package's Transformer with continuous batching; ``ct2``: CTranslate2 conversion."""
    model_name: str | None = None
    """The id clients pass as ``model``; None means the model directory's name."""
    max_batch: int = 8
    """Sequences decoded together (KV-cache slots); also the largest ``n`` one request may ask for."""
    max_waiting: int = 256
    """Requests queued beyond the running batch; more are refused with 429 so latency stays bounded."""
    device: str = "auto"
    """``auto`` (CUDA when present, else CPU), ``cpu`` or ``cuda``; CUDA runs bf16 where supported."""
    ct2_dir: str | None = None
    """Where the CTranslate2 conversion is kept; None means ``<model>.ct2-<compute type>`` beside the model."""
    ct2_compute_type: str = "int8"
    """CTranslate2 weights/compute type on CPU."""
    log_level: str = "info"
    """uvicorn's log level."""

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"unknown --backend {self.backend!r}; choose from {sorted(BACKEND_NAMES)}")
        if self.ct2_compute_type not in CT2_COMPUTE_TYPES:
            raise ValueError(f"unknown --ct2-compute-type {self.ct2_compute_type!r}; choose from {list(CT2_COMPUTE_TYPES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown --device {self.device!r}; choose from ['auto', 'cpu', 'cuda']")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")
        for name in ("max_batch", "max_waiting"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")


def parse_args(argv: list[str]) -> ServeConfig:
    """A ``ServeConfig`` from command-line flags (one ``--flag`` per field; unknown flags are errors)."""
    p = argparse.ArgumentParser(prog="scripts/serve.py", description="OpenAI-style completions server")
    docs = {f.name: f for f in fields(ServeConfig)}
    p.add_argument("--model", required=True, help="HF export, Composer checkpoint or training save folder")
    for name, f in docs.items():
        if name == "model":
            continue
        kind = int if f.type in ("int", int) else str
        choices = {"backend": BACKEND_NAMES, "ct2_compute_type": CT2_COMPUTE_TYPES}.get(name)
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=f.default, choices=choices,
                       help=f"default {f.default}")
    args = p.parse_args(argv)
    try:
        return ServeConfig(**vars(args))
    except ValueError as err:
        p.error(str(err))
        raise  # unreachable: p.error exits
