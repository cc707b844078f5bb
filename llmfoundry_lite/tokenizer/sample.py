"""A seeded, order-independent subsample of a Stack-format corpus for vocabulary training.

Each document gets the rank ``(sha256(seed, id), its place in the reading order)``; documents are
taken in rank order until the byte budget is spent. A document is in the sample iff the documents
ranked below it hold fewer than ``budget`` bytes — a rule that is monotone: a document in the sample
of the whole corpus is in the sample of any part of it holding it. So the corpus is cut into units
(``corpus/units.py``: Parquet row-group runs, JSONL byte ranges, the ones the other stages use), each
unit yields its own ``Selection`` (the rule applied to the unit's documents), and merging selections
is applying the rule to their union: any unit size, worker count and merge order gives the same sample,
the one a single pass in reading order gives (the place in that order is ``(unit, position in it)``).

No process holds more than two selections' texts (each about ``budget`` bytes plus one document): a
task holds its unit's, a merge the two it merges. Once the selections merged so far fill the budget,
the largest rank among them bounds every rank the sample can hold, and later units are read with that
bound, so a unit ships only the few documents still in the running. ``engine=spark`` runs one task per
unit and merges on the executors, in a tree, in waves whose bound tightens as they go
(``_spark_selection``); the driver lists the inputs and receives one selection per wave: it reads no
document.
"""

from __future__ import annotations

import hashlib
import heapq
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from llmfoundry_lite.corpus.identity import file_identity
from llmfoundry_lite.corpus.readers import InputError, check_schema, list_input_shards
from llmfoundry_lite.corpus.units import Unit, iter_unit, plan_units
from llmfoundry_lite.tokenizer.config import DEFAULT_UNIT_BYTES, ENGINES
from llmfoundry_lite.tokenizer.special import special_tokens

Rank = tuple[int, int, int]
"""``(key, unit index, position in the unit)``: the key, ties broken by the place in the reading order."""
MERGE_FAN_IN = 8  # selections one Spark merge task combines (one at a time) per level of the tree


@dataclass
class TextSample:
    """The training texts plus what is needed to describe them in a manifest."""

    texts: list[str]
    docs_seen: int
    bytes: int
    sha256: str
    special_strings_removed: int
    reader_skips: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class SampleSpec:
    """What decides the sample, as every task is given it."""

    budget: int
    seed: int
    max_doc_bytes: int


def input_signature(inputs: list[str]) -> list[dict]:
    """The identity (path, size, mtime) of every input file: a changed, added or removed file changes it."""
    return [file_identity(s) for s in list_input_shards(inputs)]


def doc_key(seed: int, doc_id: str) -> bytes:
    """The sampling key of a document: stable across runs, machines and file layouts."""
    return hashlib.sha256(f"{seed}\0{doc_id}".encode()).digest()


def strip_special_strings(text: str, specials: list[str]) -> tuple[str, int]:
    """Remove literal special-token strings so BPE never learns them (StarCoder does the same)."""
    removed = 0
    if "<" not in text:
        return text, 0
    for s in specials:
        if s in text:
            removed += text.count(s)
            text = text.replace(s, "")
    return text, removed


class Selection:
    """The documents, among those offered, whose lower-ranked peers hold fewer than ``budget`` bytes.

    A bounded heap (largest rank on top): after a push the top is dropped while the rest fill the
    budget (later documents only add below it), and a document ranked above a full heap's top, or above
    ``bound`` (a rank no document of the sample exceeds), is not even stored. Also counts the documents
    read and the reader's skips, each reason with the place it was first met (``reader_skips`` lists
    them in that order, as one pass's counter would), and the ``InputError`` of the first unit that
    could not be read (raised by the driver, as it is). Picklable: what tasks return and merges combine.
    """

    def __init__(self, budget: int, bound: Rank | None = None) -> None:
        self.budget, self.bound, self.total, self.docs_seen = budget, bound, 0, 0
        self.heap: list[tuple[int, int, int, int, str]] = []  # (-key, -unit, -position, size, text)
        self.skips: dict[str, tuple[int, tuple[int, int]]] = {}  # reason -> (count, (unit, rank in its counter))
        self.error: tuple[int, InputError] | None = None  # (unit index, what its reader raised)

    def full(self) -> bool:
        return self.total >= self.budget

    def limit(self) -> Rank | None:
        """The largest rank a document can have and still enter (None: any)."""
        if not self.heap or not self.full():
            return self.bound
        top = (-self.heap[0][0], -self.heap[0][1], -self.heap[0][2])
        return top if self.bound is None else min(top, self.bound)

    def offer(self, rank: Rank, size: int, text_fn: Callable[[], str]) -> None:
        """Consider one document; ``text_fn`` is called only if it is kept."""
        limit = self.limit()
        if limit is not None and rank > limit:
            return
        heapq.heappush(self.heap, (-rank[0], -rank[1], -rank[2], size, text_fn()))
        self.total += size
        while len(self.heap) > 1 and self.total - self.heap[0][3] >= self.budget:
            self.total -= heapq.heappop(self.heap)[3]

    def merge(self, other: Selection) -> Selection:
        """This selection becomes the one of both selections' documents (``other`` is left as it was)."""
        for neg_key, neg_unit, neg_pos, size, text in sorted(other.heap, reverse=True):  # by rank, ascending
            rank = (-neg_key, -neg_unit, -neg_pos)
            limit = self.limit()
            if limit is not None and rank > limit:
                break  # the limit only falls: every later document is above it too
            self.offer(rank, size, lambda t=text: t)
        self.docs_seen += other.docs_seen
        for reason, (count, first) in other.skips.items():
            mine = self.skips.get(reason)
            self.skips[reason] = (count, first) if mine is None else (mine[0] + count, min(mine[1], first))
        if other.bound is not None:
            self.bound = other.bound if self.bound is None else min(self.bound, other.bound)
        if other.error is not None and (self.error is None or other.error[0] < self.error[0]):
            self.error = other.error
        return self

    def raise_error(self) -> None:
        """Raise the first unreadable unit's ``InputError`` (naming its file), if any."""
        if self.error is not None:
            raise self.error[1]

    def texts(self) -> list[str]:
        return [text for *_, text in sorted(self.heap, reverse=True)]

    def reader_skips(self) -> dict[str, int]:
        return {reason: count for reason, (count, _) in sorted(self.skips.items(), key=lambda kv: kv[1][1])}


def select_unit(unit: Unit, spec: SampleSpec, bound: Rank | None = None) -> Selection:
    """One unit's selection: its documents read once, only the kept ones' texts held. An unusable input comes
    back as the selection's ``error`` (the driver raises it as it is, not wrapped in a task failure)."""
    chosen = Selection(spec.budget, bound)
    skips: Counter = Counter()
    position = -1
    try:
        if unit.shard.kind == "parquet":
            check_schema(unit.shard)  # a unit reads only its row groups: the whole-file checks are made here
        for position, doc in enumerate(iter_unit(unit, skips)):
            chosen.offer((int.from_bytes(doc_key(spec.seed, doc["id"]), "big"), unit.index, position),
                         min(doc["size"], spec.max_doc_bytes), lambda d=doc: d["content"][:spec.max_doc_bytes])
    except InputError as err:
        chosen.error = (unit.index, err)
    chosen.docs_seen = position + 1
    chosen.skips = {reason: (n, (unit.index, i)) for i, (reason, n) in enumerate(skips.items())}
    return chosen


def _merged(a: Selection, b: Selection) -> Selection:
    return a.merge(b)


def _local_selection(units: list[Unit], spec: SampleSpec, workers: int) -> Selection:
    """All units' selection merged here, as each unit finishes; a pool of ``workers`` forked processes reads
    them (in this process for one), each new task bounded by what is merged so far."""
    merged = Selection(spec.budget)
    if workers == 1 or len(units) <= 1:
        for unit in units:
            merged.merge(select_unit(unit, spec, merged.limit())).raise_error()
        return merged
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    todo = iter(units)
    with ProcessPoolExecutor(min(workers, len(units)), mp_context=mp.get_context("fork")) as pool:
        running = {pool.submit(select_unit, unit, spec) for unit in islice(todo, workers)}
        while running:
            done, running = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                merged.merge(future.result()).raise_error()
            running |= {pool.submit(select_unit, unit, spec, merged.limit()) for unit in islice(todo, len(done))}
    return merged


def _spark_tree(context: Any, units: list[Unit], spec: SampleSpec, bound: Rank | None) -> Selection:
    """One Spark job: a task per unit, then levels of merge tasks (``MERGE_FAN_IN`` selections each, merged
    one at a time as they arrive) down to the one selection that comes back."""
    level = context.parallelize(list(enumerate(units)), len(units)).map(
        lambda item: (item[0], select_unit(item[1], spec, bound)))
    parts = len(units)
    while parts > 1:
        parts = -(-parts // MERGE_FAN_IN)
        level = level.map(lambda kv: (kv[0] // MERGE_FAN_IN, kv[1])).reduceByKey(
            _merged, parts, partitionFunc=lambda key: key)  # merge task i takes key i
    (selection,) = level.values().collect()
    return selection


def _spark_selection(inputs: list[str], unit_bytes: int, spec: SampleSpec, master: str, python: str) -> Selection:
    """Plan and read the units on Spark's executors in waves: the first as many units as the application has
    cores, each next as many as are done, each bounded by the selection merged so far (once it is full, a
    unit of a wave after ``n`` units ships about 1/n of what fills the budget)."""
    from llmfoundry_lite.spark_session import SparkScope

    with SparkScope("llmfoundry_lite-tokenizer-sample", master, python) as scope:
        units = plan_units(inputs, unit_bytes, map_fn=scope.map)
        context = scope.spark.sparkContext
        merged, done = Selection(spec.budget), 0
        while done < len(units):
            wave = units[done:done + max(context.defaultParallelism, done)]
            merged.merge(_spark_tree(context, wave, spec, merged.limit())).raise_error()
            done += len(wave)
    return merged


def draw_sample(inputs: list[str], budget: int, seed: int, max_doc_bytes: int, num_reserved: int, *,
                unit_bytes: int = DEFAULT_UNIT_BYTES, engine: str = "local", workers: int = 1,
                spark_master: str = "", spark_python: str = "") -> TextSample:
    """Documents by rank until ``budget`` bytes, in rank order: the same for any ``unit_bytes``, ``engine``
    and ``workers`` (see the module docstring); memory per process about twice the budget."""
    if engine not in ENGINES:
        raise ValueError(f"engine: unknown choice {engine!r}; choose from {list(ENGINES)}")
    spec = SampleSpec(budget, seed, max_doc_bytes)
    if engine == "spark":
        chosen = _spark_selection(inputs, unit_bytes, spec, spark_master, spark_python)
    else:
        chosen = _local_selection(plan_units(inputs, unit_bytes), spec, workers)
    specials = special_tokens(num_reserved)
    texts: list[str] = []
    removed = 0
    digest = hashlib.sha256()
    for text in chosen.texts():
        clean, n = strip_special_strings(text, specials)
        removed += n
        texts.append(clean)
        digest.update(clean.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    nbytes = sum(len(t.encode("utf-8", "surrogatepass")) for t in texts)
    return TextSample(texts, chosen.docs_seen, nbytes, digest.hexdigest(), removed, chosen.reader_skips())
