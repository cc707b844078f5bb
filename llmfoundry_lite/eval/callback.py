"""``HumanEvalCallback``: pass@k on a fixed HumanEval subset every N training batches.

Registered by the trainer from the ``callbacks.humaneval`` YAML section, e.g.::

    callbacks:
      humaneval: {every_n_batches: 500, n_problems: 20, n_samples: 1, k: [1], languages: [python, js]}

Each language is the same first ``n_problems`` (translated ones only, for a language other than
Python: ``humaneval/<language>/problems`` says how many), sampled with the language's stop
tokens and run in a sandbox with its toolchain bound in.

Every rank takes part, so nothing waits on a collective while one rank generates alone:
under FSDP each parameter is all-gathered (in the same order on every rank) into a plain copy
of the decoder; under DDP / one process the replica itself is used. The problems are split
round-robin over ranks, each rank samples and executes its share in its own sandbox, and
the per-sample results are gathered to every rank, so all ranks log the same
``humaneval/pass@k`` (Composer's destinations write it once, from rank 0). Ranks wait for
each other only for the difference of their shares' times, which must stay below
``dist_timeout``. Each problem's samples are seeded by the problem's index, so the numbers
do not depend on how many ranks ran them. The tokenizer comes from ``tokenizer`` (a directory
with ``tokenizer.json``) or, by default, from the run's ``RunInfo`` callback.

At ``Event.FIT_START`` every rank runs each language's known-good solution in its own sandbox and the
outcome is all-reduced (a device tensor, through the trainer's device placement), so a rank whose
sandbox or toolchain is broken stops every rank at once instead of leaving them in a later gather.
Samples that could not be judged (``error: <cause>``) are left out of pass@k and logged as
``.../errors``; past ``max_error_rate`` of the gathered samples every rank raises the same error.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from typing import Any

import torch
from composer.core import Callback, State
from composer.loggers import Logger
from composer.utils import dist
from tokenizers import Tokenizer
from torch.distributed.tensor import DTensor

from llmfoundry_lite.config import load_config
from llmfoundry_lite.eval.config import GenerationConfig, HumanEvalCallbackConfig
from llmfoundry_lite.eval.execution import execute_samples, execute_translated, require_working
from llmfoundry_lite.eval.generation import sample_humaneval
from llmfoundry_lite.eval.infra import ErrorBudget, InfrastructureFailure, error_causes
from llmfoundry_lite.eval.languages import get_language, translate_all
from llmfoundry_lite.eval.passk import pass_at_k
from llmfoundry_lite.eval.problems import load_problems
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.sandbox import Sandbox, SandboxUnavailable
from llmfoundry_lite.tokenizer import load_tokenizer, text_safe


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """The bare decoder inside DDP / ComposerModel wrappers."""
    model = getattr(model, "module", model)  # DistributedDataParallel
    return getattr(model, "model", model)  # ComposerDecoder → Transformer


def full_decoder(decoder: torch.nn.Module) -> torch.nn.Module:
    """``decoder`` itself when its parameters are whole; under FSDP a plain copy with every
    parameter all-gathered. Collective under FSDP: every rank must call it."""
    params = dict(decoder.named_parameters())
    if not any(isinstance(p, DTensor) for p in params.values()):
        return decoder
    device = next(p.to_local().device for p in params.values() if isinstance(p, DTensor))
    # fork_rng: building the copy must not move the training run's random state (resume determinism)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.device(device):
        copy = Transformer(decoder.cfg)
    with torch.no_grad():
        for name, p in copy.named_parameters():  # same order on every rank: the all-gathers pair up
            source = params[name]
            p.copy_(source.full_tensor() if isinstance(source, DTensor) else source)
    return copy.eval()


def rank_share(problems: dict[str, dict], rank: int, world: int) -> dict[str, dict]:
    """Problems ``rank, rank + world, ...`` (round-robin, so every rank gets a similar load)."""
    return dict(list(problems.items())[rank::world])


class HumanEvalCallback(Callback):
    """Every ``every_n_batches`` batches: sample, execute in the sandbox, log pass@k."""

    def __init__(self, cfg: HumanEvalCallbackConfig | None = None, tokenizer: str | None = None, **options: Any):
        self.cfg = cfg if cfg is not None else load_config(HumanEvalCallbackConfig, flags=options or None)
        self.tokenizer_dir = tokenizer
        self._tokenizer: Tokenizer | None = None
        self._problems: dict[str, dict] | None = None
        self._translated: dict[str, dict] = {}  # language -> task_id -> Translated
        for name in self.cfg.languages:
            missing = [] if name == "python" else get_language(name).missing_tools()
            if missing:
                raise ValueError(f"humaneval.languages has {name!r}, which needs {', '.join(missing)} on PATH")
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

    def _problems_all(self) -> dict[str, dict]:
        if self._problems is None:
            self._problems = load_problems(limit=self.cfg.n_problems)
        return self._problems

    def problems_of(self, language: str) -> dict[str, dict]:
        """The problems of ``language`` among the first ``n_problems`` (``{"prompt": ...}`` when translated)."""
        if language == "python":
            return self._problems_all()
        if language not in self._translated:
            self._translated[language] = translate_all(self._problems_all(), language).translated
        return {task: {"prompt": t.prompt} for task, t in self._translated[language].items()}

    def sample_and_run(self, model: torch.nn.Module, tokenizer: Tokenizer, problems: dict[str, dict],
                       language: str = "python") -> list[dict]:
        """Samples for ``problems`` (of ``language``), executed in the sandbox; restores the model's
        train/eval mode. Problem i (its position among all ``n_problems``) samples with seed ``seed + i``.
        """
        index = {task: i for i, task in enumerate(self._problems_all())}
        gen = self.generation_config()
        lang = None if language == "python" else get_language(language)
        if lang is not None:
            gen = dataclasses.replace(gen, stop=list(lang.stop_tokens))
        was_training = model.training
        on_gpu = next(model.parameters()).is_cuda
        autocast = torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else contextlib.nullcontext()
        samples = []
        try:
            with autocast:
                for task, problem in problems.items():
                    seeded = dataclasses.replace(gen, seed=gen.seed + index[task])
                    cut = None if lang is None else lang.finish_completion
                    samples += sample_humaneval(model, tokenizer, {task: problem}, seeded, cut=cut)
        finally:
            model.train(was_training)
        if not samples:
            return []
        binds = () if lang is None else lang.binds()
        with Sandbox(self.cfg.sandbox, self.cfg.workers, binds) as sandbox:  # closed at once: none idle in training
            if lang is None:
                return execute_samples(problems, samples, sandbox, self.cfg.workers)
            return execute_translated(self._translated[language], samples, sandbox, lang, self.cfg.workers)

    def evaluate(self, model: torch.nn.Module, tokenizer: Tokenizer, language: str = "python") -> dict[str, float]:
        """pass@k of ``model`` on the first ``n_problems`` problems of ``language``, in this process alone."""
        return pass_at_k(self.sample_and_run(model, tokenizer, self.problems_of(language), language), self.cfg.k)

    def reference_failure(self) -> str | None:
        """Why this rank cannot score one of ``languages`` (its known-good solution did not pass), or None."""
        for language in self.cfg.languages:
            binds = () if language == "python" else get_language(language).binds()
            try:
                with Sandbox(self.cfg.sandbox, 1, binds) as sandbox:
                    require_working(language, sandbox)
            except (InfrastructureFailure, SandboxUnavailable) as err:
                return f"rank {dist.get_global_rank()}: {err}"
        return None

    def fit_start(self, state: State, logger: Logger) -> None:
        """Every rank checks its sandbox and toolchains; all stop together if any rank cannot score."""
        failure = self.reference_failure()
        failed = state.device.tensor_to_device(torch.tensor([int(failure is not None)], dtype=torch.int32))
        dist.all_reduce(failed, reduce_operation="MAX")
        if int(failed.item()):
            raise InfrastructureFailure(failure or "HumanEvalCallback: another rank cannot run the languages' known-good "
                                        "solutions in its sandbox (its error is in that rank's log); every rank stops")

    def batch_end(self, state: State, logger: Logger) -> None:
        batch = int(state.timestamp.batch)
        if batch == 0 or batch % self.cfg.every_n_batches:
            return
        start = time.monotonic()
        tokenizer = self._tokenizer_for(state)
        model = full_decoder(unwrap(state.model))  # every rank, in step
        metrics: dict[str, float] = {}
        for language in self.cfg.languages:  # the same order on every rank: the gathers pair up
            problems = self.problems_of(language)
            mine = rank_share(problems, dist.get_global_rank(), dist.get_world_size())
            ran = self.sample_and_run(model, tokenizer, mine, language)
            # Python objects: pickled onto the backend's device (NCCL: the current GPU), no tensor to move.
            results = [r for part in dist.all_gather_object(ran) for r in part]
            budget = ErrorBudget(len(results), self.cfg.max_error_rate)
            for result in results:  # the same gathered results on every rank: all ranks raise together
                budget.add(result)
            scores = pass_at_k(results, self.cfg.k) if results else {}  # no problem translated: nothing to score
            prefix = "humaneval/" if language == "python" else f"humaneval/{language}/"
            metrics[prefix + "errors"] = sum(error_causes(results).values())
            metrics.update({prefix + name: value for name, value in scores.items()})
            metrics[prefix + "samples"] = len(results)
            if language != "python":
                metrics[prefix + "problems"] = len(problems)
            if language == self.cfg.languages[0]:
                self.history.append((batch, scores))
        del model  # the gathered copy (FSDP) is freed before training resumes
        metrics["humaneval/seconds"] = time.monotonic() - start
        logger.log_metrics(metrics)
