"""Prompt-lookup speculative decoding: the same tokens as plain greedy, in fewer steps when text repeats.

Two models: ``tiny`` (random, wide init) rarely repeats itself, so its drafts are mostly rejected and
the few accepted ones exercise the cache bookkeeping in between; ``copier`` is ``tiny`` with every
attention output zeroed, so its next token depends on the last token only, and a prompt that holds
its continuation (seed + continuation + seed) is copied: drafts are accepted.
"""

from __future__ import annotations

import copy
import threading

import httpx
import pytest
import torch

from llmfoundry_lite.models.hf_export import export_hf
from llmfoundry_lite.serve.app import build_app
from llmfoundry_lite.serve.config import parse_args
from llmfoundry_lite.serve.engine import ContinuousEngine
from llmfoundry_lite.serve.job import Job, SamplingParams
from llmfoundry_lite.serve.server import build_ours
from llmfoundry_lite.serve.slots import SlotCache, prefill, verify
from llmfoundry_lite.serve.speculate import NgramDrafter, Speculation
from llmfoundry_lite.tokenizer.io import encode_texts
from tests.serve.conftest import PROMPTS, live_server


@pytest.fixture(scope="module")
def copier(tiny):
    model, tok = tiny
    copy_ = copy.deepcopy(model)
    with torch.no_grad():
        for block in copy_.blocks:
            block.attn.o_proj.weight.zero_()
    return copy_, tok


def run_jobs(engine: ContinuousEngine, prompts: list[list[int]], params: list[SamplingParams],
             n: int = 1) -> list[tuple[list[int], str, str]]:
    """Submit all jobs at once (one mixed batch) → (tokens, text, finish reason) per choice, in order."""
    out: dict[tuple[int, int], tuple[list[int], list[str], list[str]]] = {}
    done = threading.Semaphore(0)

    def sink_for(j: int):
        def sink(d) -> None:
            toks, text, finish = out.setdefault((j, d.index), ([], [], []))
            toks.extend(d.token_ids)
            text.append(d.text)
            if d.finish_reason is not None:
                finish.append(d.finish_reason)
                done.release()
        return sink

    for j, (ids, p) in enumerate(zip(prompts, params, strict=True)):
        engine.submit(Job(ids, n, p, sink_for(j)))
    for _ in range(len(prompts) * n):
        assert done.acquire(timeout=60), "engine did not finish"
    return [(t, "".join(x), f[0]) for _, (t, x, f) in sorted(out.items())]


@pytest.fixture(scope="module")
def engines(tiny, copier):
    """Plain and speculative engines on both models (4 slots: requests queue and join mid-flight)."""
    made = {(name, spec is not None): ContinuousEngine(m, tok, 4, 64, spec)
            for name, (m, tok) in (("tiny", tiny), ("copier", copier)) for spec in (None, Speculation())}  # fmt: skip
    yield made
    for e in made.values():
        e.close()


def copy_prompts(engine: ContinuousEngine, tok, max_tokens: int) -> tuple[list[list[int]], list[list[int]]]:
    """seed + the model's greedy continuation + seed, and that continuation, for each of ``PROMPTS``."""
    seeds = [encode_texts(tok, [p])[0] for p in PROMPTS]
    conts = [t for t, _, _ in run_jobs(engine, seeds, [SamplingParams(max_tokens)] * len(seeds))]
    return [s + c + s for s, c in zip(seeds, conts, strict=True)], conts


def test_drafter_copies_what_followed_the_latest_longest_match():
    d = NgramDrafter(Speculation(max_draft=3, max_ngram=3, min_ngram=2), [1, 2, 3, 4, 9, 2, 3, 5, 6, 7])
    assert d.draft(3) == []  # suffix (6, 7) / (5, 6, 7) never occurred before
    d.extend([1, 2, 3])
    assert d.draft(3) == [4, 9, 2]  # the longest suffix wins: (1, 2, 3) at the start, not the later (2, 3)
    d.extend([5])
    assert d.draft(2) == [6, 7] and d.draft(0) == []
    d.extend([8])
    assert d.draft(3) == []  # (5, 8) is new; a single token is shorter than min_ngram
    d1 = NgramDrafter(Speculation(max_draft=4, max_ngram=2, min_ngram=1), [4, 1, 2, 8])
    assert d1.draft(4) == [] and (d1.extend([4]) or d1.draft(4)) == [1, 2, 8, 4]
    with pytest.raises(ValueError, match="speculative-min-ngram"):
        Speculation(max_ngram=2, min_ngram=3)


def test_a_copy_that_reaches_the_present_goes_on_repeating():
    # Inside a loop the latest occurrence of the suffix is one period back: the copy runs into the
    # present after 3 tokens and goes on with itself, so the draft is as long as asked.
    d = NgramDrafter(Speculation(max_draft=8, max_ngram=2, min_ngram=2), [7, 1, 2, 3, 1, 2, 3, 1, 2])
    assert d.draft(8) == [3, 1, 2, 3, 1, 2, 3, 1]
    d = NgramDrafter(Speculation(max_draft=8, max_ngram=3, min_ngram=1), [5, 0, 0])  # period 1
    assert d.draft(5) == [0, 0, 0, 0, 0]
    d = NgramDrafter(Speculation(max_draft=8, max_ngram=2, min_ngram=2), [4, 1, 2, 8, 9, 1, 2])
    assert d.draft(8) == [8, 9, 1, 2, 8, 9, 1, 2]  # period 4, from further back


def test_drafter_sizes_drafts_by_the_last_outcome_and_backs_off_after_whole_misses():
    d = NgramDrafter(Speculation(max_draft=4, max_ngram=2, min_ngram=1, max_backoff=5), [1, 2, 3, 4, 5, 1, 2])
    assert d.draft(9) == [3, 4, 5, 1]
    d.kept(2, 4)  # cut short after 2: the next draft is 3 long
    assert d.draft(9) == [3, 4, 5]
    d.kept(3, 3)  # kept whole: twice as long, up to max_draft
    assert d.draft(9) == [3, 4, 5, 1] and d.draft(2) == [3, 4]
    pauses = []
    for _ in range(3):  # whole misses: 1, 3, then 7 steps capped at max_backoff
        d.kept(0, 1)
        pauses.append([d.draft(9) for _ in range(7)].index([3]))
    assert pauses == [1, 3, 5]
    d.kept(1, 1)  # a kept draft ends the pauses
    assert d.draft(9) == [3, 4]


def test_verify_gives_each_row_the_logits_of_an_unbatched_forward(tiny):
    model, tok = tiny
    prompts = [encode_texts(tok, [p])[0] for p in PROMPTS[:3]]
    cache = SlotCache(model, slots=4)
    prefill(model, cache, prompts, [2, 0, 1])
    before = list(cache.lengths)
    rows = [[7, 11, 5], [3], [9, 9], None]  # slots 0, 1, 2 hold prompts 1, 2, 0; ragged rows; slot 3 is free
    logits = verify(model, cache, rows)
    assert cache.lengths == before  # the caller advances over what it keeps
    with torch.no_grad():
        for slot, prompt in ((0, prompts[1]), (1, prompts[2]), (2, prompts[0])):
            full = model(torch.tensor([prompt + rows[slot]]))[0, len(prompt) :]
            torch.testing.assert_close(logits[slot, : len(rows[slot])], full, atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="context window"):
        cache.lengths[0] = model.cfg.max_seq_len - 2
        verify(model, cache, [[1, 2, 3]])


def test_speculative_greedy_equals_plain_on_a_random_model(engines, tiny):
    """Repetitive and plain prompts, stops, max_tokens, and seeded sampled choices in the same batch."""
    _, tok = tiny
    prompts = [encode_texts(tok, [p])[0] for p in PROMPTS]
    prompts += [p * 3 for p in prompts[:3]]  # repeated code: drafts are proposed from the prompt
    params = [SamplingParams(m, stop=s) for m, s in zip([60, 1, 2, 33, 60, 17, 60, 9, 40], [(), (), (), ("e",), (),
              (" (", "\n"), (), (), ("in",)], strict=True)]  # fmt: skip
    params[4] = SamplingParams(50, temperature=0.9, seed=5)
    plain = run_jobs(engines["tiny", False], prompts, params, n=2)
    spec = engines["tiny", True]
    before = spec.counts.copy()
    assert run_jobs(spec, prompts, params, n=2) == plain
    assert {r for _, _, r in plain} == {"stop", "length"}
    assert spec.counts["spec_drafted"] > before["spec_drafted"]
    assert spec.counts["spec_accepted"] > before["spec_accepted"]  # a few, so later steps read kept drafts


def test_copied_continuation_is_accepted_and_ends_exactly_like_plain(engines, copier):
    _, tok = copier
    plain, spec = engines["copier", False], engines["copier", True]
    prompts, conts = copy_prompts(plain, tok, 40)
    params = [SamplingParams(40)] * len(prompts)
    steps, before = plain.counts["steps"], spec.counts.copy()
    got = run_jobs(spec, prompts, params)
    assert got == run_jobs(plain, prompts, params)
    assert [t for t, _, _ in got] == conts  # the copier copies
    accepted = spec.counts["spec_accepted"] - before["spec_accepted"]
    assert accepted >= sum(map(len, conts)) // 2
    assert spec.counts["steps"] - before["steps"] < (plain.counts["steps"] - steps) / 2
    # Ends inside a run of accepted drafts: max_tokens, a stop string, EOS, the context window.
    mid = conts[0][len(conts[0]) // 2 :]
    stop = tok.decode(mid[3:5])
    ctx = plain.max_seq_len
    long_prompt = (prompts[0] * 9)[: ctx - 30]
    ends = [(prompts[0], SamplingParams(m)) for m in (1, 2, 7, 23)] + [(prompts[0], SamplingParams(40, stop=(stop,))),
            (long_prompt, SamplingParams(30))]  # fmt: skip
    want = run_jobs(plain, *map(list, zip(*ends, strict=True)))
    assert run_jobs(spec, *map(list, zip(*ends, strict=True))) == want
    assert [len(t) for t, _, _ in want[:4]] == [1, 2, 7, 23] and len(want[-1][0]) == 30
    assert want[4][2] == "stop" and stop not in want[4][1]
    eos, real_eos = mid[4], plain.eos_id  # an end-of-text id the copier emits mid-draft: both stop there
    for engine in (plain, spec):
        engine.eos_id = eos
    try:
        eos_runs = [run_jobs(e, prompts[:1], [SamplingParams(40)]) for e in (plain, spec)]
    finally:
        for engine in (plain, spec):
            engine.eos_id = real_eos
    assert eos_runs[0] == eos_runs[1] and eos_runs[0][0][0][-1] == eos and eos_runs[0][0][2] == "stop"


def test_serve_flags_choose_speculation_and_the_server_answers_the_same(copier, tmp_path):
    model, tok = copier
    assert parse_args(["--model", "m"]).speculation() == Speculation()  # on by default
    assert parse_args(["--model", "m", "--speculative", "none"]).speculation() is None
    cfg = parse_args(["--model", "m", "--speculative-draft", "3", "--speculative-ngram", "4"])
    assert cfg.speculation() == Speculation(max_draft=3, max_ngram=4, min_ngram=2)
    for bad in (["--speculative", "medusa"], ["--speculative-draft", "0"], ["--speculative-min-ngram", "5"]):
        with pytest.raises(SystemExit):
            parse_args(["--model", "m", *bad])
    path = str(export_hf(model, tok, tmp_path / "copier"))
    seed = encode_texts(tok, [PROMPTS[0]])[0]
    texts, accepted = [], []
    for flag in ("none", "prompt-lookup"):
        engine, served = build_ours(parse_args(["--model", path, "--device", "cpu", "--speculative", flag]))
        with live_server(build_app(engine, served)) as url:
            body = {"model": served.name, "prompt": PROMPTS[0], "max_tokens": 30, "temperature": 0}
            cont = httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"]
            body["prompt"] = PROMPTS[0] + cont + PROMPTS[0]
            texts.append(httpx.post(f"{url}/v1/completions", json=body, timeout=60).json()["choices"][0]["text"])
        accepted.append(engine.counts["spec_accepted"])
        engine.close()
    assert texts[0] == texts[1] and len(encode_texts(tok, [texts[1]])[0]) > len(seed)
    assert accepted[0] == 0 and accepted[1] >= 10
