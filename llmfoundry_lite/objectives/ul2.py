"""UL2 mixture of denoisers (Tay et al. 2022) in decoder-only layout.

One denoiser is drawn per sample; its source is the start of the packed context (end-of-text
tokens included, treated like any token), as long as fits ``max_seq_len`` once corrupted:

    [mode] inputs-with-sentinels <sep> targets <eos>   (then padding)

* R / X (span corruption, T5 style): ``round(m * rate)`` noise tokens in
  ``round(noise / mean_span)`` spans; the input keeps the other tokens with
  ``<|sentinel_i|>`` in place of span i, the targets are ``<|sentinel_i|> span_i`` in order.
  Only ``NUM_SENTINELS - 1`` sentinels are available (the last one is ``<sep>``): when more
  spans are asked for, there are that many longer spans instead (``ul2_spans_capped``).
* S (prefix LM): one span at the end of mean length ``m * rate`` (length uniform in
  ``[1, 2·m·rate - 1]``); inputs are the prefix, targets the continuation, no sentinel.

Loss is on the targets and the closing end-of-text only. The whole body is one segment
(``segment_ids`` 1, padding 0): end-of-text tokens copied into it from the source are data,
so the targets still see the mode token and every input. ``prefix_len`` (the length of
``[mode] inputs <sep>``) lets a prefix-LM model attend bidirectionally over the inputs.
Source tokens past the budget are not used by this sample (``tokens_dropped``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from llmfoundry_lite.objectives.fim import IGNORE_INDEX, content_length, next_token
from llmfoundry_lite.objectives.special_ids import SpecialIds

LAYOUT_OVERHEAD = 3
"""Mode token, ``<sep>`` and the closing end-of-text."""


@dataclass(frozen=True)
class Denoiser:
    """One UL2 denoiser: ``mode`` R, S or X; ``mean_span`` None means S (one span at the end)."""

    mode: str
    rate: float
    mean_span: float | None = None


UL2_MIXTURES: dict[str, list[tuple[Denoiser, float]]] = {
    # The paper's 7 denoisers, uniform.
    "ul2": [
        (Denoiser("R", 0.15, 3), 1.0),
        (Denoiser("R", 0.15, 8), 1.0),
        (Denoiser("S", 0.25), 1.0),
        (Denoiser("X", 0.5, 3), 1.0),
        (Denoiser("X", 0.5, 8), 1.0),
        (Denoiser("X", 0.15, 64), 1.0),
        (Denoiser("X", 0.5, 64), 1.0),
    ],
    # UL2R / U-PaLM: 50% S, 25% R (3, .15), 25% X split evenly over (32, .15) and (3, .5).
    "ul2r": [
        (Denoiser("S", 0.25), 0.5),
        (Denoiser("R", 0.15, 3), 0.25),
        (Denoiser("X", 0.15, 32), 0.125),
        (Denoiser("X", 0.5, 3), 0.125),
    ],
}


def noise_counts(m: int, rate: float, mean_span: float, max_spans: int) -> tuple[int, int, int]:
    """(noise tokens, spans, spans before capping) for ``m`` source tokens; every segment non-empty."""
    noise = min(max(round(m * rate), 1), m - 1)
    wanted = max(round(noise / mean_span), 1)
    return noise, min(wanted, max_spans, noise, m - noise), wanted


def source_length(n: int, max_seq_len: int, d: Denoiser, max_spans: int) -> int:
    """Longest source ``m <= n`` whose corrupted layout fits ``max_seq_len`` (0 if none)."""
    cap = min(n, max_seq_len - LAYOUT_OVERHEAD)
    if d.mean_span is None:
        return max(cap, 0)
    mean_span = d.mean_span

    def overflow(m: int) -> int:
        return m + 2 * noise_counts(m, d.rate, mean_span, max_spans)[1] + LAYOUT_OVERHEAD - max_seq_len

    m = cap
    while m >= 2 and overflow(m) > 0:
        m -= overflow(m)
    if m < 2:
        return 0
    while m < cap and overflow(m + 1) <= 0:  # stepping down by the overflow can overshoot by a span or two
        m += 1
    return m


def random_segmentation(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """``parts`` positive lengths summing to ``total``, every such split equally likely."""
    if parts == 1:
        return np.array([total], dtype=np.int64)
    cuts = np.sort(rng.choice(total - 1, size=parts - 1, replace=False) + 1)
    return np.diff(np.concatenate([[0], cuts, [total]]))


class UL2:
    """The UL2 objective: ``ul2(tokens, rng) -> {"input_ids", "labels", "segment_ids", "prefix_len"}``.

    ``denoisers``: ``(denoiser, weight)`` pairs, e.g. ``UL2_MIXTURES["ul2"]``.
    """

    def __init__(self, denoisers: list[tuple[Denoiser, float]], special: SpecialIds, max_seq_len: int) -> None:
        self.denoisers = [d for d, _ in denoisers]
        weights = np.array([w for _, w in denoisers], dtype=np.float64)
        self.cum_probs = np.cumsum(weights / weights.sum())
        self.cum_probs[-1] = 1.0
        self.special = special
        self.sep = special.sentinels[-1]
        self.span_sentinels = np.asarray(special.sentinels[:-1], dtype=np.int64)
        self.max_seq_len = max_seq_len
        self.counts: Counter[str] = Counter()
        """Running tallies (per process): denoisers used, spans capped, tokens dropped."""

    def __call__(self, tokens: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
        d = self.denoisers[int(np.searchsorted(self.cum_probs, rng.random(), side="right"))]
        n = content_length(tokens, self.special.pad)
        m = source_length(n, self.max_seq_len, d, len(self.span_sentinels))
        if m < 2:  # a (padded) sample with almost no content: nothing to corrupt, train it as it is
            self.counts["ul2_too_short"] += 1
            return {**next_token(tokens, self.special.pad, self.special.eos), "prefix_len": np.array(0, dtype=np.int64)}
        source = tokens[:m].astype(np.int64)
        self.counts[f"denoiser_{d.mode}"] += 1
        self.counts["tokens_dropped"] += n - m
        if d.mean_span is None:
            inputs, targets = self._s_split(source, d.rate, rng)
        else:
            inputs, targets = self._corrupt(source, d.rate, d.mean_span, rng)
        return self._layout(d.mode, inputs, targets)

    def _s_split(self, source: np.ndarray, rate: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        mean = max(round(len(source) * rate), 1)
        span = int(rng.integers(1, min(2 * mean - 1, len(source) - 1) + 1))
        self.counts["noise_tokens"] += span
        self.counts["source_tokens"] += len(source)
        return source[: len(source) - span], source[len(source) - span :]

    def _corrupt(
        self, source: np.ndarray, rate: float, mean_span: float, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        m = len(source)
        noise, spans, wanted = noise_counts(m, rate, mean_span, len(self.span_sentinels))
        if spans < wanted:
            self.counts["ul2_spans_capped"] += 1
        noise_len = random_segmentation(noise, spans, rng)
        keep_len = random_segmentation(m - noise, spans, rng)
        # Segments alternate keep, noise, keep, noise, ... (T5 order): span i starts after keep i.
        span_start = np.cumsum(keep_len) + np.cumsum(noise_len) - noise_len
        is_noise = np.zeros(m, dtype=bool)
        is_noise[np.repeat(span_start - np.cumsum(noise_len) + noise_len, noise_len) + np.arange(noise)] = True
        sentinels = self.span_sentinels[:spans]
        # inputs: kept tokens, with each span's first token replaced by its sentinel and the rest dropped
        marked = source.copy()
        marked[span_start] = sentinels
        keep = ~is_noise
        keep[span_start] = True
        inputs = marked[keep]
        # targets: sentinel i then span i, for every span in order
        targets = np.empty(noise + spans, dtype=np.int64)
        sentinel_at = np.cumsum(noise_len + 1) - (noise_len + 1)
        targets[sentinel_at] = sentinels
        span_token = np.ones(noise + spans, dtype=bool)
        span_token[sentinel_at] = False
        targets[span_token] = source[is_noise]
        self.counts["noise_tokens"] += noise
        self.counts["source_tokens"] += m
        self.counts["spans"] += spans
        return inputs, targets

    def _layout(self, mode: str, inputs: np.ndarray, targets: np.ndarray) -> dict[str, np.ndarray]:
        sp = self.special
        prefix = np.concatenate([[sp.ul2_modes[mode]], inputs, [self.sep]]).astype(np.int64)
        body = np.concatenate([prefix, targets, [sp.eos]]).astype(np.int64)
        if len(body) > self.max_seq_len:
            raise RuntimeError(f"UL2 produced {len(body)} tokens > max_seq_len={self.max_seq_len}")
        input_ids = np.full(self.max_seq_len, sp.pad, dtype=np.int64)
        input_ids[: len(body)] = body
        labels = np.full(self.max_seq_len, IGNORE_INDEX, dtype=np.int64)
        labels[len(prefix) : len(body)] = body[len(prefix) :]
        segment_ids = np.zeros(self.max_seq_len, dtype=np.int64)
        segment_ids[: len(body)] = 1
        return {"input_ids": input_ids, "labels": labels, "segment_ids": segment_ids,
                "prefix_len": np.array(len(prefix), dtype=np.int64)}
