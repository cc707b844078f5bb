"""UL2: exact layouts, reconstruction of the source, corruption rates, sentinel cap, masks."""

from __future__ import annotations

import numpy as np
import pytest

from llmfoundry_lite.objectives.ul2 import UL2, UL2_MIXTURES, Denoiser, noise_counts, random_segmentation, source_length
from tests.objectives.conftest import contexts, padded


def only(d: Denoiser, special, max_seq_len: int) -> UL2:
    return UL2([(d, 1.0)], special, max_seq_len)


def test_x_denoiser_exact_layout(special):
    # 4 tokens at rate .5, mean span 3: 2 noise tokens in 1 span, so the segmentation is forced.
    L = 16
    tokens = padded([100, 101, 102, 103], L, special.pad)
    out = only(Denoiser("X", 0.5, 3), special, L)(tokens, np.random.default_rng(0))
    s0, sep = special.sentinels[0], special.sentinels[-1]
    body = [special.ul2_modes["X"], 100, 101, s0, sep, s0, 102, 103, special.eos]
    assert out["input_ids"].tolist() == body + [special.pad] * (L - len(body))
    assert out["labels"].tolist() == [-100] * 5 + [s0, 102, 103, special.eos] + [-100] * (L - len(body))
    assert int(out["prefix_len"]) == 5
    assert out["segment_ids"].tolist() == [1] * len(body) + [0] * (L - len(body))
    assert out["segment_ids"].dtype == np.int64


def test_s_denoiser_exact_layout(special):
    # 4 tokens at rate .25: mean continuation 1 token, drawn from [1, 1].
    L = 12
    tokens = padded([200, 201, 202, 203], L, special.pad)
    out = only(Denoiser("S", 0.25), special, L)(tokens, np.random.default_rng(0))
    sep = special.sentinels[-1]
    body = [special.ul2_modes["S"], 200, 201, 202, sep, 203, special.eos]
    assert out["input_ids"].tolist() == body + [special.pad] * (L - len(body))
    assert out["labels"].tolist() == [-100] * 5 + [203, special.eos] + [-100] * (L - len(body))


def reconstruct(out: dict, special) -> tuple[str, list[int], list[int]]:
    """Undo the corruption: (mode, source tokens in order, span lengths)."""
    ids = out["input_ids"].tolist()
    p = int(out["prefix_len"])
    mode = {v: k for k, v in special.ul2_modes.items()}[ids[0]]
    sep = special.sentinels[-1]
    assert ids[p - 1] == sep
    end = int(np.flatnonzero(out["input_ids"] != special.pad)[-1])  # the closing end-of-text
    assert ids[end] == special.eos
    inputs, targets = ids[1 : p - 1], ids[p:end]
    if mode == "S":
        return mode, inputs + targets, [len(targets)]
    sentinels = set(special.sentinels[:-1])
    spans: dict[int, list[int]] = {}
    current = None
    for t in targets:
        if t in sentinels:
            current = t
            spans[t] = []
        else:
            spans[current].append(t)
    source: list[int] = []
    for t in inputs:
        source += spans[t] if t in sentinels else [t]
    return mode, source, [len(v) for v in spans.values()]


def test_reconstruction_and_masks_over_the_mixture(special, stream):
    L = 256
    ul2 = UL2(UL2_MIXTURES["ul2"], special, L)
    inner_eos = 0
    for k, tokens in enumerate(contexts(stream, L, 80, 113)):
        out = ul2(tokens, np.random.default_rng(k))
        ids, labels, p = out["input_ids"], out["labels"], int(out["prefix_len"])
        mode, source, _ = reconstruct(out, special)
        assert source == tokens[: len(source)].tolist()
        assert ids.shape == labels.shape == (L,)
        assert np.all(labels[:p] == -100) and np.all(labels[ids == special.pad] == -100)
        targets = slice(p, int(np.flatnonzero(ids != special.pad)[-1]) + 1)
        assert np.array_equal(labels[targets], ids[targets]) and ids[targets][-1] == special.eos
        # one segment for the whole body, whatever end-of-text tokens the source put inside it
        assert out["segment_ids"].tolist() == [1] * targets.stop + [0] * (L - targets.stop)
        inner_eos += int(np.sum(ids[: targets.stop - 1] == special.eos))
    assert inner_eos > 0  # some bodies do carry document boundaries from their source
    assert set(k for k in ul2.counts if k.startswith("denoiser_")) == {"denoiser_R", "denoiser_S", "denoiser_X"}


@pytest.mark.parametrize("denoiser", [d for d, _ in UL2_MIXTURES["ul2"]], ids=lambda d: f"{d.mode}-{d.mean_span}")
def test_body_with_inner_end_of_text_is_one_segment(special, denoiser):
    L = 64
    tokens = padded(([300, 301, 302, 303, 304, special.eos] * 6)[:-1], L, special.pad)
    out = only(denoiser, special, L)(tokens, np.random.default_rng(1))
    end = int(np.flatnonzero(out["input_ids"] != special.pad)[-1]) + 1
    assert np.sum(out["input_ids"][: end - 1] == special.eos) >= 3
    assert out["segment_ids"].tolist() == [1] * end + [0] * (L - end)


@pytest.mark.parametrize(
    "denoiser", [d for d, _ in UL2_MIXTURES["ul2"]], ids=lambda d: f"{d.mode}-{d.mean_span}-{d.rate}"
)
def test_corruption_rate_and_span_length(special, stream, denoiser):
    L = 512
    ul2 = only(denoiser, special, L)
    lengths: list[int] = []
    for k, tokens in enumerate(contexts(stream, L, 40, 389)):
        _, source, spans = reconstruct(ul2(tokens, np.random.default_rng(k)), special)
        lengths += spans
    rate = ul2.counts["noise_tokens"] / ul2.counts["source_tokens"]
    assert abs(rate - denoiser.rate) < 0.02
    expected_span = denoiser.mean_span if denoiser.mean_span is not None else denoiser.rate * (L - 3)
    if ul2.counts["ul2_spans_capped"] == 0:
        assert abs(np.mean(lengths) / expected_span - 1) < 0.2


def test_spans_are_capped_at_the_available_sentinels(special, stream):
    L = 1024
    ul2 = only(Denoiser("X", 0.5, 3), special, L)
    out = ul2(contexts(stream, L, 1, 1)[0], np.random.default_rng(0))
    _, source, spans = reconstruct(out, special)
    assert len(spans) == len(special.sentinels) - 1 == 99
    assert ul2.counts["ul2_spans_capped"] == 1
    assert abs(sum(spans) / len(source) - 0.5) < 0.01


def test_source_length_is_the_longest_that_fits():
    d = Denoiser("R", 0.15, 3)
    for L in (32, 100, 2048):
        m = source_length(10_000, L, d, 99)
        assert m + 2 * noise_counts(m, d.rate, 3, 99)[1] + 3 <= L
        assert (m + 1) + 2 * noise_counts(m + 1, d.rate, 3, 99)[1] + 3 > L
    assert source_length(20, 2048, d, 99) == 20  # short content is used whole


def test_ul2r_preset_draws_half_s(special, stream):
    ul2 = UL2(UL2_MIXTURES["ul2r"], special, 64)
    samples = contexts(stream, 64, 800, 23)
    for k, tokens in enumerate(samples):
        ul2(tokens, np.random.default_rng(k))
    assert abs(ul2.counts["denoiser_S"] / len(samples) - 0.5) < 0.06
    assert abs(ul2.counts["denoiser_X"] / len(samples) - 0.25) < 0.05


def test_sample_with_no_content_to_corrupt_is_left_as_next_token(special):
    L = 16
    tokens = padded([special.eos], L, special.pad)
    ul2 = UL2(UL2_MIXTURES["ul2"], special, L)
    out = ul2(tokens, np.random.default_rng(0))
    assert out["input_ids"].tolist() == tokens.tolist()
    assert out["labels"].tolist() == [special.eos] + [-100] * (L - 1)
    assert int(out["prefix_len"]) == 0 and ul2.counts["ul2_too_short"] == 1
    assert out["segment_ids"].tolist() == [1] + [0] * (L - 1)  # the next-token layout


@pytest.mark.parametrize("total,parts", [(10, 4), (10, 9), (7, 7), (1000, 20)])
def test_random_segmentation_is_uniform_over_splits(total, parts):
    rng = np.random.default_rng(0)
    draws = [random_segmentation(total, parts, rng) for _ in range(3000)]
    assert all(len(d) == parts and d.sum() == total and d.min() >= 1 for d in draws)
    # every part has the same mean total/parts when all compositions are equally likely
    means = np.mean(draws, axis=0)
    assert np.allclose(means, total / parts, rtol=0.08)
    if (total, parts) == (10, 4):  # C(9, 3) = 84 compositions, each about 1/84 of the draws
        counts = np.unique(np.stack(draws), axis=0, return_counts=True)[1]
        assert len(counts) == 84 and counts.min() > 3000 / 84 * 0.4 and counts.max() < 3000 / 84 * 1.8
