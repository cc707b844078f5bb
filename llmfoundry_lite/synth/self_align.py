"""Self-align mode of ``run_synthesis`` (``model=PATH``): the model writes bodies, the mined tests judge them.

StarCoder2-Instruct's self-alignment, on this stage's pairs. The targets (``self_align.targets``)
are the pairs whose own body did not pass tests (``untested``: kept untested ones and those
dropped as ``failed_tests`` / ``tests_timed_out`` / ``untested``) or every pair (``all``). A
target whose tests cannot run (``Pair.untestable`` set, or not Python) is not sampled and is
counted under ``without_tests`` by its reason; so with ``targets=untested`` only the pairs whose
original body failed or timed out are actually sampled.

For each remaining target the model continues the prompt's code block (``code_of_prompt``: the
used imports, the ``def`` line(s), the docstring) as a code model continues a file, ``k`` times
(temperature + top-p, KV cache, ``eval/generation.py``; see ``load_sampler`` for the prompt's last
newline). A continuation is cut at its first line that starts in column 0 (the function has ended;
HumanEval's stops ``\\ndef``, ``\\nclass``, ``\\nif``, ``\\nprint``, ``\\n#``, ... are all of this
form) or at EOS. Before anything runs, a sample is skipped when it is empty, repeats an earlier
sample of the pair or the pair's own body (known to fail, or already a row), when code + sample
does not compile, when the function it makes fails a per-function check of
``checks.drop_reason`` (``trivial_body``, ``unsafe_api``, ...), or when it reads names the
program does not define (``free_names``). The rest run as code + sample + the pair's tests, in
the verification stage's sandbox with its limits and ``workers`` (``verify.run_programs``).

At most one row per target is added: its first passing sample in sampling order, as
``origin: self-aligned`` with ``response`` = that body, ``source_id`` = the pair's plus
``#sample<i>``, and the pair's split group, tests and prompt. It is placed right after its pair
(or where its dropped pair was); the repository split runs after this stage over all rows, so it
lands on its group's side. Original pairs and their counts (``kept + dropped == seen``) are
untouched. Each target's generator is seeded from ``self_align.seed`` and its ``source_id``, so
rows depend on the seed, model, input and ``batch_size``, never on ``workers`` nor on which
other pairs are targeted.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from llmfoundry_lite.eval.execution import stderr_progress
from llmfoundry_lite.sandbox import Sandbox
from llmfoundry_lite.synth.checks import drop_reason
from llmfoundry_lite.synth.config import SynthConfig
from llmfoundry_lite.synth.extract import code_of_prompt, extract_functions, parse_module
from llmfoundry_lite.synth.verify import build_program, free_names, run_programs

if TYPE_CHECKING:
    from llmfoundry_lite.synth.pairs import Pair

ORIGIN = "self-aligned"
Sampler = Callable[[str, int], list[str]]
"""``sampler(code, seed)``: ``self_align.k`` raw continuations of a prompt's code block."""
_COLUMN_0 = re.compile(r"^\S", re.MULTILINE)


def cut_body(text: str) -> str:
    """A continuation cut where the function ends (its first line starting in column 0), trailing blanks off."""
    match = _COLUMN_0.search(text)
    body = (text[:match.start()] if match else text).rstrip()
    return body + "\n" if body else ""


def pair_seed(seed: int, source_id: str) -> int:
    """The sampling seed of one pair: stable across runs, machines and the other pairs of the input."""
    digest = hashlib.sha256(f"{seed}\0{source_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def load_sampler(cfg: SynthConfig) -> tuple[Sampler, Callable[[str], bool]]:
    """The model sampler of ``cfg.model`` and whether a prompt overflows its context (torch loads here).

    The model is given the code block without its final newline: the tokenizer merges a newline with
    the next line's indentation (``"\\n    "`` is one token), so a prompt ending in ``"\\n"`` would
    ask for a token split the model never saw. A continuation that does not start with that newline
    (it went on with the docstring's line) is returned as an empty body."""
    from llmfoundry_lite.eval.config import GenerationConfig
    from llmfoundry_lite.eval.generation import sample_texts
    from llmfoundry_lite.finetune.load import load_model

    assert cfg.model is not None
    sa = cfg.self_align
    model, tokenizer = load_model(cfg.model, sa.device)
    gen = GenerationConfig(n_samples=sa.k, temperature=sa.temperature, top_p=sa.top_p,
                           max_new_tokens=sa.max_new_tokens, batch_size=sa.batch_size, device=sa.device)

    def stop(new_tokens: list[int]) -> bool:
        return _COLUMN_0.search(tokenizer.decode(new_tokens)) is not None

    def prompt_ids(code: str) -> list[int]:
        return tokenizer.encode(code.removesuffix("\n"), add_special_tokens=False).ids

    def sample(code: str, seed: int) -> list[str]:
        import torch

        generator = torch.Generator(device=sa.device).manual_seed(seed)
        texts = sample_texts(model, tokenizer, prompt_ids(code), sa.k, gen, stop, generator)
        return [t[1:] if t.startswith("\n") else "" for t in texts]  # back to continuations of ``code``

    def over_context(code: str) -> bool:
        return len(prompt_ids(code)) + sa.max_new_tokens > model.cfg.max_seq_len

    return sample, over_context


def _without_tests(pair: Pair) -> str | None:
    """Why a target is not sampled: its ``untestable`` reason, or ``not_python`` (the tests run Python only)."""
    if pair.untestable is not None:
        return pair.untestable
    return "not_python" if pair.language != "Python" else None


def _sample_check(code: str, body: str, pair: Pair, cfg: SynthConfig) -> str | None:
    """Why a sampled body is not run (see the module docstring), or None."""
    if not body:
        return "empty"
    program = code + body
    try:
        fns = extract_functions(program, parse_module(program))
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "does_not_compile"
    if len(fns) != 1:
        return "does_not_compile"
    reason = drop_reason(fns[0], cfg)
    if reason is not None:
        return reason
    return "free_names" if free_names(build_program(program, pair.tests)) else None


def self_align_pairs(candidates: Sequence[Pair], kept: Sequence[Pair], cfg: SynthConfig, sandbox: Sandbox,
                     sampler: Sampler | None = None,
                     over_context: Callable[[str], bool] | None = None) -> tuple[list[Pair], dict]:
    """``kept`` with the self-aligned rows inserted, and ``stats.json``'s ``self_align`` section.

    ``candidates``: the pairs given to verification (in input order), ``kept``: what it kept.
    ``sampler`` (default: ``load_sampler(cfg)``) is a parameter so a test can inject one; ``over_context``
    (from ``load_sampler`` too) says whether a prompt + ``max_new_tokens`` exceeds the model's context."""
    start = time.perf_counter()
    sandbox.close()  # pre-started sandboxes would idle through model loading and sampling
    sa = cfg.self_align
    if sampler is None:
        sampler, over_context = load_sampler(cfg)
    load_s = time.perf_counter() - start
    progress = stderr_progress("self-align: instructions done")
    kept_ids = {p.source_id: p for p in kept}
    if sa.targets == "all":
        targets = list(candidates)
    else:
        targets = [p for p in candidates if kept_ids.get(p.source_id, p).origin != "verified"]
    without: Counter = Counter()
    rejected: Counter = Counter()
    runs: list[tuple[int, int, str]] = []  # (target index, sample index, body) in sampling order
    sampled = drawn = too_long = 0
    for t, pair in enumerate(targets):
        progress(t, len(targets))
        reason = _without_tests(pair)
        if reason is not None:
            without[reason] += 1
            continue
        code = code_of_prompt(pair.prompt)
        too_long += bool(over_context and over_context(code))
        texts = sampler(code, pair_seed(sa.seed, pair.source_id))
        sampled += 1
        drawn += len(texts)
        seen: set[str] = set()
        for i, text in enumerate(texts):
            body = cut_body(text)
            why = ("duplicate" if body in seen else "same_as_original" if body == pair.response
                   else _sample_check(code, body, pair, cfg))
            seen.add(body)
            if why is None:
                runs.append((t, i, body))
            else:
                rejected[why] += 1
    progress(len(targets), len(targets))
    sample_s = time.perf_counter() - start - load_s
    programs = [build_program(code_of_prompt(targets[t].prompt) + body, targets[t].tests) for t, _, body in runs]
    results = run_programs(programs, sandbox, cfg.workers)
    chosen: dict[str, Pair] = {}
    for (t, i, body), result in zip(runs, results, strict=True):
        pair = targets[t]
        if result.passed and pair.source_id not in chosen:
            chosen[pair.source_id] = replace(pair, response=body, program=code_of_prompt(pair.prompt) + body,
                                             source_id=f"{pair.source_id}#sample{i}", untestable=None, origin=ORIGIN)
    merged: list[Pair] = []
    next_kept = 0
    for pair in candidates:  # kept is a subsequence of candidates: walk both in input order
        if next_kept < len(kept) and kept[next_kept].source_id == pair.source_id:
            merged.append(kept[next_kept])
            next_kept += 1
        if pair.source_id in chosen:
            merged.append(chosen.pop(pair.source_id))
    if next_kept != len(kept) or chosen:
        raise RuntimeError("self-align: the kept pairs are not a subsequence of the verified ones")
    timed_out = sum(r.result == "timed out" for r in results)
    passed = sum(r.passed for r in results)
    stats = {
        "model": cfg.model, "targets": sa.targets, "k": sa.k, "temperature": sa.temperature, "top_p": sa.top_p,
        "seed": sa.seed, "instructions_targeted": len(targets), "without_tests": dict(sorted(without.items())),
        "sampled": sampled, "prompts_over_context": too_long, "samples": drawn,
        "samples_skipped_by_reason": dict(sorted(rejected.items())), "samples_run": len(results),
        "samples_passed": passed, "samples_failed": len(results) - passed - timed_out,
        "samples_timed_out": timed_out, "rows_added": sum(p.origin == ORIGIN for p in merged),
        "seconds": {"load": round(load_s, 3), "sample": round(sample_s, 3),
                    "run": round(time.perf_counter() - start - load_s - sample_s, 3)},
    }
    return merged, stats
