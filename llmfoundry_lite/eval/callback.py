"""``HumanEvalCallback``: pass@k on a fixed HumanEval subset every N training batches.

Registered by the trainer from the ``callbacks.humaneval`` YAML section, e.g.::

    callbacks:
      humaneval: {every_n_batches: 500, n_problems: 20, n_samples: 1, k: [1]}

Runs on global rank 0 only, with the unwrapped model, and logs ``humaneval/pass@k`` (plus
``humaneval/seconds``) through Composer's logger. The tokenizer comes from ``tokenizer``
(a directory with ``tokenizer.json``) or, by default, from the run's ``RunInfo`` callback.
"""

from __future__ import annotations

import time
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist
from tokenizers import Tokenizer

from llmfoundry_lite.config import load_config
from llmfoundry_lite.eval.config import GenerationConfig, HumanEvalCallbackConfig
from llmfoundry_lite.eval.execution import execute_samples
from llmfoundry_lite.eval.generation import sample_humaneval
from llmfoundry_lite.eval.passk import pass_at_k
from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.eval.sandbox import Sandbox
from llmfoundry_lite.tokenizer import load_tokenizer, text_safe


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare decoder inside DDP / ComposerModel wrappers."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "model", model)  # ComposerDecoder → Transformer


class HumanEvalCallback(Callback):
    """Every ``every_n_batches`` batches: sample, execute in the sandbox, log pass@k."""

    def __init__(self, cfg: HumanEvalCallbackConfig | None = None, tokenizer: str | None = None, **options: Any):
        self.cfg = cfg if cfg is not None else load_config(HumanEvalCallbackConfig, flags=options or None)
        self.tokenizer_dir = tokenizer
        self._tokenizer: Tokenizer | None = None
        self._problems: dict[str, dict] | None = None
        self.history: list[tuple[int, dict[str, float]]] = []
        """(batch, scores) of every evaluation run so far."""

    def _tokenizer_for(self, state: State) -> Tokenizer:
        if self._tokenizer is None:
            if self.tokenizer_dir is not None:
                self._tokenizer = load_tokenizer(self.tokenizer_dir)
            else:
                stored = [getattr(cb, "tokenizer_json", None) for cb in state.callbacks]
                stored = [s for s in stored if s]
                if not stored:
                    raise ValueError("HumanEvalCallback needs a tokenizer: pass tokenizer=DIR or train with RunInfo")
                self._tokenizer = text_safe(Tokenizer.from_str(stored[0]))
        return self._tokenizer

    def generation_config(self) -> GenerationConfig:
        c = self.cfg
        return GenerationConfig(n_samples=c.n_samples, temperature=c.temperature, top_p=c.top_p,
                                max_new_tokens=c.max_new_tokens, batch_size=c.n_samples)  # fmt: skip

    def evaluate(self, model: torch.nn.Module, tokenizer: Tokenizer) -> dict[str, float]:
        """pass@k of ``model`` on the first ``n_problems`` problems; restores train/eval mode."""
        if self._problems is None:
            self._problems = load_problems(limit=self.cfg.n_problems)
        was_training = model.training
        try:
            samples = sample_humaneval(model, tokenizer, self._problems, self.generation_config())
        finally:
            model.train(was_training)
        with Sandbox(self.cfg.sandbox, self.cfg.workers) as sandbox:  # closed right away: no idle sandboxes during training
            results = execute_samples(self._problems, samples, sandbox, self.cfg.workers)
        return pass_at_k(results, self.cfg.k)

    def batch_end(self, state: State, logger: Logger) -> None:
        batch = int(state.timestamp.batch)
        if batch == 0 or batch % self.cfg.every_n_batches or dist.get_global_rank() != 0:
            return
        start = time.monotonic()
        scores = self.evaluate(unwrap(state.model), self._tokenizer_for(state))
        self.history.append((batch, scores))
        metrics = {f"humaneval/{name}": value for name, value in scores.items()}
        metrics["humaneval/seconds"] = time.monotonic() - start
        logger.log_metrics(metrics)
