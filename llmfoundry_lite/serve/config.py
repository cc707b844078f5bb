"""Typed ``scripts/serve.py`` settings: parsed once from the command line, checked, then read-only."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path

from llmfoundry_lite.serve.ab import ABSplit, parse_ab
from llmfoundry_lite.serve.fim import AUTO, FIM_TEMPLATES
from llmfoundry_lite.serve.limits import OpsSettings
from llmfoundry_lite.serve.speculate import Speculation

BACKEND_NAMES = ("ours", "ct2")
"""Valid ``--backend`` values (``server.BACKENDS`` dispatches on them)."""
CT2_COMPUTE_TYPES = ("int8", "int8_float32", "float32")
"""CTranslate2 compute types offered on CPU."""
SPECULATIVE_METHODS = ("prompt-lookup", "none")
"""Valid ``--speculative`` values (``speculate``)."""


@dataclass(frozen=True)
class ServeConfig:
    """What ``scripts/serve.py`` serves and how."""

    model: str
    """HF export (directory with config.json), Composer checkpoint (.pt or sharded dir), training save folder, or a
    registered MLflow model, ``models:/NAME/VERSION`` or ``models:/NAME@alias`` (``models/mlflow_registry.py``)."""
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
    speculative: str = "prompt-lookup"
    """``prompt-lookup``: greedy requests draft tokens by copying what followed their last n-gram earlier
    in prompt + completion, checked in one forward (same output, fewer steps); ``none``: one token a step."""
    speculative_draft: int = Speculation.max_draft
    """Most tokens drafted per step (``--backend ours``)."""
    speculative_ngram: int = Speculation.max_ngram
    """Longest n-gram looked up for a draft."""
    speculative_min_ngram: int = Speculation.min_ngram
    """Shortest n-gram looked up for a draft."""
    lora: tuple[str, ...] = ()
    """``--lora NAME=PATH``, repeatable: LoRA adapters of the base served beside it; a request's ``model``
    NAME picks one. PATH is a LoRA checkpoint of our fine-tuning or a peft adapter directory."""

    api_key: str | None = None
    """Bearer token every route but ``/health`` requires; None reads ``$LLMFOUNDRY_API_KEY``, and
    without either the API is open (a warning is logged when ``--host`` is not a loopback address)."""
    max_request_bytes: int = OpsSettings.max_request_bytes
    """Largest request body accepted (413 beyond): checked on ``Content-Length`` and while reading."""
    request_timeout_s: float = OpsSettings.request_timeout_s
    """Wall-clock limit of one request from arrival; past it the request is cancelled (504)."""
    stuck_after_s: float = OpsSettings.stuck_after_s
    """``/health`` answers 503 when work is waiting or running and no engine step finished this long."""
    drain_timeout_s: float = 60.0
    """On SIGTERM: stop accepting, let in-flight requests finish this long, then cancel the rest and exit."""
    log_prompts: bool = False
    """Put prompt and completion texts in the per-request log line (off: counts, latency and ids only)."""
    fim_template: str = AUTO
    """How ``suffix`` requests are laid out: ``auto`` picks the family whose FIM special tokens the tokenizer
    has (``serve/fim.py``); a family name forces it, and one whose tokens the tokenizer lacks fails at start-up."""
    log_dir: str = "logs/serve"
    """Where the server writes ``requests.log`` (one line per request) and, by default, its feedback store."""
    feedback_db: str | None = None
    """Where completions and feedback are recorded: a SQLAlchemy URL (``sqlite:///PATH``, or
    ``postgresql+psycopg://...`` for several replicas sharing one store); None means
    ``sqlite:///<log-dir>/feedback.sqlite``; ``none`` records nothing (and ``/v1/feedback`` is a 404)."""
    feedback_texts: bool = False
    """Also record prompt, suffix and completion texts and edits' kept text, PII-scrubbed (the filter
    stage's scrub): what ``data_prep/feedback_to_train.py`` needs. Off: counts, timings and ids only."""
    feedback_retention_days: float = 0.0
    """Records older than this are deleted (at start-up, then hourly); 0 keeps them forever."""
    ab: tuple[str, ...] = ()
    """``--ab NAME=WEIGHT``, repeatable: split requests that name no model, or the base's name, among
    these variants (the base and ``--lora`` adapters), sticky per ``user`` (``serve/ab.py``)."""
    ab_experiment: str = "ab"
    """Salt of the sticky user → variant hash; a new name reassigns every user."""

    def __post_init__(self) -> None:
        if self.backend not in BACKEND_NAMES:
            raise ValueError(f"unknown --backend {self.backend!r}; choose from {sorted(BACKEND_NAMES)}")
        if self.ct2_compute_type not in CT2_COMPUTE_TYPES:
            raise ValueError(f"unknown --ct2-compute-type {self.ct2_compute_type!r}; choose from {list(CT2_COMPUTE_TYPES)}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"unknown --device {self.device!r}; choose from ['auto', 'cpu', 'cuda']")
        if not 0 < self.port < 65536:
            raise ValueError(f"--port must be in 1..65535, got {self.port}")
        for name in ("max_batch", "max_waiting", "max_request_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        for name in ("request_timeout_s", "stuck_after_s", "drain_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if self.api_key is not None and not self.api_key.strip():
            raise ValueError("--api-key must not be empty")
        if self.speculative not in SPECULATIVE_METHODS:
            raise ValueError(f"unknown --speculative {self.speculative!r}; choose from {list(SPECULATIVE_METHODS)}")
        self.speculation()  # checks the --speculative-* numbers
        self.lora_specs()  # checks every --lora NAME=PATH
        if self.feedback_retention_days < 0:
            raise ValueError(f"--feedback-retention-days must be 0 (keep) or positive, got {self.feedback_retention_days}")
        if self.feedback_texts and self.feedback_url() is None:
            raise ValueError("--feedback-texts needs a feedback store; drop --feedback-db none")
        self.split()  # checks every --ab NAME=WEIGHT
        if self.fim_template != AUTO and self.fim_template not in FIM_TEMPLATES:
            raise ValueError(f"unknown --fim-template {self.fim_template!r}; choose from {[AUTO, *FIM_TEMPLATES]}")

    def ops(self, api_key: str | None) -> OpsSettings:
        """The app's operational limits; ``api_key`` is ``--api-key`` already resolved against the environment."""
        return OpsSettings(api_key, self.max_request_bytes, self.request_timeout_s, self.stuck_after_s, self.log_prompts)

    def feedback_url(self) -> str | None:
        """The feedback store's URL; None when recording is off (``--feedback-db none``)."""
        if self.feedback_db is None:
            return f"sqlite:///{Path(self.log_dir).resolve() / 'feedback.sqlite'}"
        return None if self.feedback_db.strip().lower() == "none" else self.feedback_db

    def split(self) -> ABSplit | None:
        """The ``--ab`` split; None without ``--ab``. Which names are served is checked when the app is built."""
        if not self.ab:
            return None
        return ABSplit(parse_ab(self.ab), self.ab_experiment)

    def speculation(self) -> Speculation | None:
        """The drafting settings for ``engine.ContinuousEngine``; None with ``--speculative none``."""
        if self.speculative == "none":
            return None
        return Speculation(self.speculative_draft, self.speculative_ngram, self.speculative_min_ngram)

    def lora_specs(self) -> dict[str, str]:
        """``--lora`` as adapter name → path; ValueError on a malformed value or a repeated name."""
        specs: dict[str, str] = {}
        for spec in self.lora:
            name, sep, path = spec.partition("=")
            if not sep or not name.strip() or not path.strip():
                raise ValueError(f"--lora takes NAME=PATH (the model id clients pass, then an adapter), got {spec!r}")
            if name.strip() in specs:
                raise ValueError(f"--lora names {name.strip()!r} twice; each adapter needs its own name")
            specs[name.strip()] = path.strip()
        if specs and self.backend != "ours":
            raise ValueError(f"--lora is served by --backend ours only, not {self.backend!r}")
        return specs


def parse_args(argv: list[str]) -> ServeConfig:
    """A ``ServeConfig`` from command-line flags (one ``--flag`` per field; unknown flags are errors)."""
    p = argparse.ArgumentParser(prog="scripts/serve.py", description="OpenAI-style completions server")
    docs = {f.name: f for f in fields(ServeConfig)}
    p.add_argument("--model", required=True,
                   help="HF export, Composer checkpoint, training save folder or models:/NAME/VERSION|@alias (MLflow)")
    for name, f in docs.items():
        if name == "model":
            continue
        if name == "lora":  # repeatable: one NAME=PATH per flag
            p.add_argument("--lora", action="append", default=[], metavar="NAME=PATH",
                           help="serve a LoRA adapter of the base as model NAME; repeatable")
            continue
        if name == "ab":
            p.add_argument("--ab", action="append", default=[], metavar="NAME=WEIGHT",
                           help="A/B split of requests naming no model among served variants; repeatable")
            continue
        flag = f"--{name.replace('_', '-')}"
        if f.type in ("bool", bool):
            p.add_argument(flag, action="store_true", help=f"default {f.default}")
            continue
        if name == "api_key":  # never echo a secret in --help
            p.add_argument(flag, default=None, help="default $LLMFOUNDRY_API_KEY, else no authentication")
            continue
        kind = {"int": int, int: int, "float": float, float: float}.get(f.type, str)
        choices = {"backend": BACKEND_NAMES, "ct2_compute_type": CT2_COMPUTE_TYPES,
                   "speculative": SPECULATIVE_METHODS, "fim_template": (AUTO, *FIM_TEMPLATES)}.get(name)
        p.add_argument(flag, type=kind, default=f.default, choices=choices,
                       help=f"default {f.default}")
    args = p.parse_args(argv)
    try:
        return ServeConfig(**{**vars(args), "lora": tuple(args.lora), "ab": tuple(args.ab)})
    except ValueError as err:
        p.error(str(err))
        raise  # unreachable: p.error exits
