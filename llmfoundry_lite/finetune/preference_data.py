"""Preference data for DPO and KTO: completion-style rows, tokenized as the completion server saw them.

A row is paired, ``{"prompt": str, "chosen": str, "rejected": str}``, or unpaired,
``{"prompt": str, "completion": str, "label": bool}`` (true: desirable). There is no chat template: the
prompt is encoded raw, as ``/v1/completions`` encodes it (``tokenizer.io.encode_texts``, no specials; an
empty prompt is one end-of-text, a new document), and the continuation is encoded apart and follows it
directly, as the generated tokens followed the prompt. No end-of-text is appended: a served completion
usually ended at a stop sequence or ``max_tokens``, not because the model chose to stop, so teaching it
to stop there would be wrong. Only the continuation's tokens are scored.

An item holds two sequences that share a prompt, ``(2, L)``:
- DPO: prompt + chosen, prompt + rejected. Unpaired rows are counted ``unpaired_for_dpo``.
- KTO: prompt + completion, and prompt + *another row's* completion — the mismatched pair whose
  log-ratio estimates KTO's reference point (``preference.kto_loss``). A paired row becomes two
  unpaired rows, the chosen desirable and the rejected undesirable. The other row is the next one in a
  fixed permutation of the rows (seeded by ``shuffle_seed``), so the reference model scores the same
  mismatched pairs once (``preference.attach_reference``), as trl's KTOTrainer pairs each completion with
  its neighbour's.

Every row read is an item (a KTO pair, two) or counted under one of ``DROP_REASONS``:
``rows_read == paired + unpaired + sum(dropped)``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import Dataset

from llmfoundry_lite.finetune.data import BadRow, FinetuneDataConfig, data_files, read_rows, special_id
from llmfoundry_lite.models.loss import IGNORE_INDEX
from llmfoundry_lite.tokenizer.io import encode_texts
from llmfoundry_lite.tokenizer.special import EOS, PAD
from llmfoundry_lite.training.data import require_full_batch

if TYPE_CHECKING:
    from tokenizers import Tokenizer

DROP_REASONS = {
    "blank_line": "a JSONL line holding only whitespace",
    "not_json": "a JSONL line that does not parse as JSON (or is not UTF-8)",
    "not_an_object": "a row that is not a JSON object",
    "missing_keys": "neither prompt + chosen + rejected nor prompt + completion + label",
    "not_a_string": "a prompt, chosen, rejected or completion that is not a string",
    "not_a_bool": "a label that is not true or false",
    "empty_completion": "a chosen, rejected or completion that encodes to no tokens",
    "identical_pair": "chosen equal to rejected: nothing to prefer",
    "unpaired_for_dpo": "a completion + label row in DPO data (DPO needs pairs; use objective kto)",
    "too_long": "prompt + continuation over max_seq_len (with truncate_prompt: one token of prompt + it is)",
}
"""Why a row was dropped, by counter key."""


class BadPreferenceRow(ValueError):
    """A row that cannot become an item; ``reason`` is its ``DROP_REASONS`` key."""

    def __init__(self, reason: str) -> None:
        if reason not in DROP_REASONS:
            raise KeyError(f"undocumented drop reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreferenceRow:
    """One row's texts: ``continuations`` is (chosen, rejected), or (completion,) with ``label``."""

    prompt: str
    continuations: tuple[str, ...]
    label: bool | None = None


def parse_row(row: object) -> PreferenceRow:
    """The texts of a paired or unpaired row; ``BadPreferenceRow`` says why a row has none."""
    if not isinstance(row, dict):
        raise BadPreferenceRow("not_an_object")
    paired = row.get("chosen") is not None or row.get("rejected") is not None
    keys = ("prompt", "chosen", "rejected") if paired else ("prompt", "completion", "label")
    if any(row.get(k) is None for k in keys):
        raise BadPreferenceRow("missing_keys")
    if any(not isinstance(row[k], str) for k in keys if k != "label"):
        raise BadPreferenceRow("not_a_string")
    if paired:
        if row["chosen"] == row["rejected"]:
            raise BadPreferenceRow("identical_pair")
        return PreferenceRow(row["prompt"], (row["chosen"], row["rejected"]))
    if not isinstance(row["label"], bool):
        raise BadPreferenceRow("not_a_bool")
    return PreferenceRow(row["prompt"], (row["completion"],), row["label"])


@dataclass(frozen=True)
class ScoredSequence:
    """One scored sequence: prompt tokens then continuation tokens; ``start`` is the first continuation
    token (>= 1: the first token of a sequence is never scored, nothing before it predicts it)."""

    ids: tuple[int, ...]
    start: int


def fit(prompt: list[int], continuations: list[list[int]], cfg: FinetuneDataConfig) -> list[ScoredSequence]:
    """Prompt + each continuation within ``cfg.max_seq_len``: the same prompt tokens for all of them
    (``truncate_prompt`` cuts its start, keeping one token), else ``too_long``."""
    if any(not c for c in continuations):
        raise BadPreferenceRow("empty_completion")
    cut = len(prompt) + max(len(c) for c in continuations) - cfg.max_seq_len
    if cut > 0:
        if cfg.truncation == "drop" or cut >= len(prompt):
            raise BadPreferenceRow("too_long")
        prompt = prompt[cut:]
    return [ScoredSequence(tuple(prompt + c), len(prompt)) for c in continuations]


@dataclass
class Item:
    """Two sequences on one prompt: DPO (chosen, rejected); KTO (completion, mismatched completion)."""

    seqs: tuple[ScoredSequence, ScoredSequence]
    desirable: bool = True
    """KTO: the completion's label (DPO: always true)."""


def load_items(cfg: FinetuneDataConfig, tokenizer: Tokenizer, objective: str) -> tuple[list[Item], Counter[str], int]:
    """The items of ``cfg.data`` for ``objective`` (dpo, kto), dropped rows counted by reason, rows read."""
    eos_id = special_id(tokenizer, EOS)
    dropped: Counter[str] = Counter()
    units: list[tuple[list[int], list[int], bool]] = []  # KTO: (prompt ids, completion ids, desirable)
    items: list[Item] = []
    rows_read = 0
    for path in data_files(cfg.data):
        for raw in read_rows(path):
            rows_read += 1
            try:
                if isinstance(raw, BadRow):
                    raise BadPreferenceRow(raw.reason)
                row = parse_row(raw)
                if objective == "dpo" and row.label is not None:
                    raise BadPreferenceRow("unpaired_for_dpo")
                prompt = encode_texts(tokenizer, [row.prompt])[0] or [eos_id]  # as the server encodes it
                conts = encode_texts(tokenizer, list(row.continuations))
                seqs = fit(prompt, conts, cfg)  # checks every continuation fits before any is kept
                if objective == "dpo":
                    items.append(Item((seqs[0], seqs[1])))
                else:
                    labels = (row.label,) if row.label is not None else (True, False)
                    units.extend((prompt, c, lab) for c, lab in zip(conts, labels, strict=True))
            except BadPreferenceRow as bad:
                dropped[bad.reason] += 1
    if objective == "kto":
        items = kto_items(units, cfg)
    return items, dropped, rows_read


def kto_items(units: list[tuple[list[int], list[int], bool]], cfg: FinetuneDataConfig) -> list[Item]:
    """Each (prompt, completion, label) with its mismatched companion: the completion of the next unit in a
    permutation seeded by ``cfg.shuffle_seed``, cut at its end to fit (it only estimates the KL term)."""
    order = np.random.default_rng(cfg.shuffle_seed).permutation(len(units))
    items = []
    for k, i in enumerate(order):
        prompt, completion, desirable = units[i]
        main = fit(prompt, [completion], cfg)[0]
        p = list(main.ids[: main.start])
        other = units[order[(k + 1) % len(order)]][1][: cfg.max_seq_len - len(p)]
        items.append(Item((main, ScoredSequence(tuple(p + other), len(p))), desirable))
    return items


class PreferenceDataset(Dataset):
    """Items as the preference model reads them: ``input_ids`` and ``labels`` (2, L) (the continuation's
    tokens labelled, ``IGNORE_INDEX`` elsewhere, unshifted as in ``data.py``), ``ref_logps`` (2,) once
    ``reference`` is set, ``desirable``, ``sample_index`` and ``stream`` (0). ``collate`` pads a batch."""

    def __init__(self, cfg: FinetuneDataConfig, tokenizer: Tokenizer, objective: str) -> None:
        self.items, self.dropped, self.rows_read = load_items(cfg, tokenizer, objective)
        if not self.items:
            raise ValueError(f"data={cfg.data!r}: no usable {objective} rows; dropped {dict(self.dropped)}")
        self.objective, self.max_seq_len = objective, cfg.max_seq_len
        self.pad_id = special_id(tokenizer, PAD)
        self.reference: torch.Tensor | None = None
        """(N, 2) float32 summed log-probs of both sequences under the reference model (``attach_reference``)."""

    def __len__(self) -> int:
        return len(self.items)

    def tensors(self, index: int) -> dict[str, torch.Tensor]:
        """Item ``index`` without its reference log-probs (what the reference pass reads)."""
        item = self.items[index]
        length = max(len(s.ids) for s in item.seqs)
        ids = torch.full((2, length), self.pad_id, dtype=torch.int64)
        labels = torch.full((2, length), IGNORE_INDEX, dtype=torch.int64)
        segments = torch.zeros((2, length), dtype=torch.int64)
        for row, s in enumerate(item.seqs):
            ids[row, : len(s.ids)] = torch.tensor(s.ids)
            labels[row, s.start : len(s.ids)] = ids[row, s.start : len(s.ids)]
            segments[row, : len(s.ids)] = 1
        return {"input_ids": ids, "labels": labels, "segment_ids": segments, "desirable": torch.tensor(item.desirable),
                "sample_index": torch.tensor(index), "stream": torch.tensor(0)}

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if self.reference is None:
            raise RuntimeError("the reference log-probs are not computed yet (preference.attach_reference)")
        return {**self.tensors(index), "ref_logps": self.reference[index]}

    def collate(self, rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        """Stack ``rows``, padding their (2, L) tensors to the longest L of the batch."""
        length = max(r["input_ids"].shape[1] for r in rows)
        fill = {"input_ids": self.pad_id, "labels": IGNORE_INDEX, "segment_ids": 0}
        out = {}
        for key, value in fill.items():
            out[key] = torch.full((len(rows), 2, length), value, dtype=torch.int64)
            for b, r in enumerate(rows):
                out[key][b, :, : r[key].shape[1]] = r[key]
        for key in rows[0].keys() - fill.keys():
            out[key] = torch.stack([r[key] for r in rows])
        return out

    def token_digest(self) -> bytes:
        """Every item's tokens, continuation starts and label, as bytes: what the reference log-probs depend on."""
        parts = []
        for item in self.items:
            for s in item.seqs:
                parts.append(np.asarray([len(s.ids), s.start, *s.ids], dtype=np.int64).tobytes())
            parts.append(b"+" if item.desirable else b"-")
        return b"".join(parts)

    def summary(self) -> dict[str, object]:
        """Counts for the run log: rows read and dropped by reason, items, tokens scored and in all."""
        scored = sum(len(s.ids) - s.start for item in self.items for s in item.seqs)
        tokens = sum(len(s.ids) for item in self.items for s in item.seqs)
        out = {"rows_read": self.rows_read, "items": len(self.items),
               "dropped_by_reason": dict(sorted(self.dropped.items())),
               "continuation_tokens": scored, "prompt_tokens": tokens - scored}
        if self.objective == "kto":
            out["desirable"] = sum(item.desirable for item in self.items)
            out["undesirable"] = len(self.items) - out["desirable"]
        return out

    def describe(self, name: str) -> str:
        s = self.summary()
        dropped = ", ".join(f"{k} {v}" for k, v in s["dropped_by_reason"].items()) or "none"
        what = (f"{s['items']:,} pairs" if self.objective == "dpo" else
                f"{s['items']:,} completions ({s['desirable']:,} desirable, {s['undesirable']:,} undesirable)")
        return (f"{name}: {s['rows_read']:,} rows -> {what}; continuation tokens {s['continuation_tokens']:,}, "
                f"prompt tokens {s['prompt_tokens']:,}; dropped: {dropped}")


def count_items(batch: dict[str, torch.Tensor]) -> dict[str, int]:
    """Composer's counts of a preference (micro)batch: ``total`` tokens (not padding) for the clock, and
    items as ``loss_generating``, so microbatches and ranks weigh each pair (KTO: each completion) once
    and the loss is the mean over the global batch's items, as the papers define it."""
    return {"total": int((batch["segment_ids"] != 0).sum()), "loss_generating": int(batch["input_ids"].shape[0])}


def check_full_batch(dataset: PreferenceDataset, batch_size: int, world_size: int) -> None:
    """Refuse a training set that fills no batch on a rank (``training.data.require_full_batch``)."""
    per_rank = len(dataset) // world_size
    require_full_batch(per_rank, batch_size, world_size, f"train_loader: {len(dataset):,} {dataset.objective} items",
                       f"lower global_train_batch_size to at most {max(per_rank * world_size, 1)} or add rows")
