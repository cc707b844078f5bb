"""Instruction data: read conversations, check them, mask the loss, truncate, pack with segment ids.

A row is ``{"prompt": str, "response": str}`` (one user turn and its answer) or
``{"messages": [{"role": ..., "content": ...}, ...]}``; when a row has ``messages`` that is the
conversation and any ``prompt`` column is ignored, like every other extra column. A row that
cannot become an example is counted under one of ``DROP_REASONS``, so
``examples + sum(dropped) == rows read`` always holds.

An example is the conversation's pieces (``chat.encode_conversation``, or ``hf_chat.JinjaEncoder``
for an HF base with its own chat template) followed by end-of-text.
Labels follow the pretraining batches (``objectives/fim.py`` ``next_token`` / ``pad_to_length``;
the shift is done once, in ``models/loss.py``): ``labels[t]`` is ``input_ids[t]`` where token t is
a target, ``IGNORE_INDEX`` elsewhere; position t-1 is scored on it. Targets are the assistant
pieces (content and end-of-turn; all turns, or the last) and the closing end-of-text, or every
token with ``target_prompts``. An example's first token never has a label: nothing inside the
example predicts it, and in a packed row it would be scored from the previous example's last
position, so the loss of a packed row would depend on its neighbours.

Packing places whole examples into rows of exactly ``max_seq_len`` tokens (best fit, in the
shuffled order), numbers them 1, 2, 3, ... in ``segment_ids`` and pads with segment 0. The model
keeps attention inside a segment only with ``model.doc_mask: true``.
"""

from __future__ import annotations

import gzip
import json
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from torch.utils.data import Dataset

from llmfoundry_lite.finetune.chat import ASSISTANT, ROLES, SYSTEM, USER, encode_conversation, role_token_ids
from llmfoundry_lite.models.loss import IGNORE_INDEX
from llmfoundry_lite.objectives.fim import pad_to_length
from llmfoundry_lite.tokenizer.special import EOS, PAD
from llmfoundry_lite.training.data import require_full_batch
from llmfoundry_lite.validate import require_positive

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from llmfoundry_lite.finetune.hf_chat import JinjaChat

TARGET_RESPONSES = ("all", "last")
TRUNCATIONS = ("drop", "truncate_prompt")
DATA_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
DROP_REASONS = {
    "blank_line": "a JSONL line holding only whitespace",
    "not_json": "a JSONL line that does not parse as JSON (or is not UTF-8)",
    "not_an_object": "a row, or one of its messages, that is not a JSON object",
    "missing_keys": "neither messages nor prompt + response; or a message without role or content",
    "not_a_list": "messages that is not a list",
    "no_messages": "an empty messages list",
    "not_a_string": "a prompt, response, role or content that is not a string",
    "bad_role": f"a role other than {', '.join(ROLES)}",
    "system_not_first": "a system message after the first position",
    "empty_content": "a prompt, response or content that is empty or only whitespace",
    "last_not_assistant": "a conversation whose last message is not the assistant's",
    "too_long": "longer than max_seq_len (with truncate_prompt: the final answer alone is)",
}
"""Why a row was dropped, by counter key."""


@dataclass
class FinetuneDataConfig:
    """Instruction data for fine-tuning: where it is and how examples become training rows."""

    data: str = ""
    """A ``.jsonl``, ``.jsonl.gz`` or ``.parquet`` file, or a directory searched recursively for them."""
    max_seq_len: int = 2048
    """Tokens per training row; match ``model.max_seq_len``."""
    target_responses: str = "all"
    """Which assistant turns are trained: ``all`` of them, or only the ``last``."""
    target_prompts: bool = False
    """Also train on prompt tokens (system, user, role markers)."""
    packing: bool = True
    """Pack several whole examples per row (needs ``model.doc_mask: true``); False: one per row."""
    truncation: str = "drop"
    """An example longer than ``max_seq_len``: ``drop`` it (``too_long``), or ``truncate_prompt``: cut
    tokens from its start, keeping the final answer whole (dropped only if that alone does not fit)."""
    shuffle_seed: int = 0
    """Seed of the example order before packing (so which examples share a row is reproducible)."""
    shuffle: bool = True
    """Shuffle the rows every epoch (seeded by the run's seed); false reads them in order."""

    def __post_init__(self) -> None:
        if not self.data:
            raise ValueError(f"loader data must name a {'/'.join(DATA_SUFFIXES)} file or a directory of them")
        require_positive(self, ("max_seq_len",))
        if self.target_responses not in TARGET_RESPONSES:
            raise ValueError(f"unknown target_responses {self.target_responses!r}; "
                             f"choose from {list(TARGET_RESPONSES)}")
        if self.truncation not in TRUNCATIONS:
            raise ValueError(f"unknown truncation {self.truncation!r}; choose from {list(TRUNCATIONS)}")


@dataclass
class Example:
    """One conversation as a training sequence; ``labels`` aligned with ``input_ids`` (not shifted)."""

    input_ids: list[int]
    labels: list[int]
    """Token id where the token is a target, ``IGNORE_INDEX`` where not."""
    prompt_cut: int = 0
    """Tokens removed from the start by ``truncate_prompt``."""


class BadRow(ValueError):
    """A row that cannot become an example; ``reason`` is its ``DROP_REASONS`` key."""

    def __init__(self, reason: str) -> None:
        if reason not in DROP_REASONS:
            raise KeyError(f"undocumented drop reason {reason!r}")
        super().__init__(reason)
        self.reason = reason


def data_files(data: str) -> list[Path]:
    """The files ``data`` names: itself, or every data file below the directory, sorted."""
    path = Path(data)
    if path.is_file():
        if not path.name.endswith(DATA_SUFFIXES):
            raise ValueError(f"data={data!r}: not a {'/'.join(DATA_SUFFIXES)} file")
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"data={data!r} not found")
    files = sorted(f for f in path.rglob("*") if f.is_file() and f.name.endswith(DATA_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"data={data!r}: no {'/'.join(DATA_SUFFIXES)} files in it")
    return files


def read_rows(path: Path) -> Iterator[object]:
    """Each row of one file, in order: a parsed JSON value / Parquet record, or a ``BadRow`` for a bad line.

    A file that cannot be read at all raises ``ValueError`` naming it: that is not one bad row.
    """
    if path.name.endswith(".parquet"):
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                yield from batch.to_pylist()
        except (pa.ArrowException, OSError) as err:
            raise ValueError(f"{path}: not a readable Parquet file ({err})") from None
        return
    try:
        with gzip.open(path, "rb") if path.name.endswith(".gz") else path.open("rb") as fh:
            for line in fh:
                if not line.strip():
                    yield BadRow("blank_line")
                    continue
                try:
                    yield json.loads(line)
                except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
                    yield BadRow("not_json")
    except (OSError, EOFError) as err:
        raise ValueError(f"{path}: not a readable JSONL file ({err})") from None


def conversation(row: object) -> list[tuple[str, str]]:
    """The ``(role, content)`` messages of one row; raises ``BadRow`` saying why it has none."""
    if not isinstance(row, dict):
        raise BadRow("not_an_object")
    if row.get("messages") is not None:
        return _check_messages(row["messages"])
    if row.get("prompt") is None or row.get("response") is None:
        raise BadRow("missing_keys")
    return _check_messages([{"role": USER, "content": row["prompt"]}, {"role": ASSISTANT, "content": row["response"]}])


def _check_messages(messages: object) -> list[tuple[str, str]]:
    if not isinstance(messages, list):
        raise BadRow("not_a_list")
    if not messages:
        raise BadRow("no_messages")
    out: list[tuple[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise BadRow("not_an_object")
        role, content = message.get("role"), message.get("content")
        if role is None or content is None:
            raise BadRow("missing_keys")
        if not isinstance(role, str) or not isinstance(content, str):
            raise BadRow("not_a_string")
        if role not in ROLES:
            raise BadRow("bad_role")
        if role == SYSTEM and i > 0:
            raise BadRow("system_not_first")
        if not content.strip():
            raise BadRow("empty_content")
        out.append((role, content))
    if out[-1][0] != ASSISTANT:
        raise BadRow("last_not_assistant")
    return out


def build_example(pieces: list[tuple[list[int], str]], eos_id: int, cfg: FinetuneDataConfig) -> Example:
    """Tokens and labels of one conversation's pieces plus end-of-text, masked and fitted to
    ``cfg.max_seq_len``; raises ``BadRow("too_long")`` when it does not fit under ``cfg.truncation``."""
    answers = [i for i, (_, tag) in enumerate(pieces) if tag == ASSISTANT]
    if not answers:
        raise ValueError("a conversation must end with an assistant message")
    last = answers[-1]
    ids: list[int] = []
    trained: list[bool] = []
    for i, (piece, tag) in enumerate(pieces):
        if i == last:
            answer_start = len(ids) - 1  # the final answer's role token (the piece before) stays with it
        target = cfg.target_prompts or (tag == ASSISTANT and (cfg.target_responses == "all" or i == last))
        ids.extend(piece)
        trained.extend([target] * len(piece))
    ids.append(eos_id)  # closes the final answer, which is always trained: the model learns to stop
    trained.append(True)
    cut = len(ids) - cfg.max_seq_len
    if cut > 0:
        if cfg.truncation == "drop" or cut > answer_start:
            raise BadRow("too_long")
        ids, trained = ids[cut:], trained[cut:]
    labels = [t if target else IGNORE_INDEX for t, target in zip(ids, trained, strict=True)]
    labels[0] = IGNORE_INDEX  # see the module docstring: nothing in the example predicts it
    return Example(ids, labels, max(cut, 0))


def special_id(tokenizer: Tokenizer, token: str) -> int:
    """Id of a special token, or ``ValueError`` when the tokenizer is not one of ours."""
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise ValueError(f"tokenizer has no {token}; use one trained by data_prep/train_tokenizer.py")
    return token_id


def conversation_encoder(tokenizer: Tokenizer, chat: JinjaChat | None):  # -> (messages) -> pieces
    """Our reserved-token layout, or the HF base's own ``chat`` template."""
    if chat is not None:
        from llmfoundry_lite.finetune.hf_chat import JinjaEncoder

        return JinjaEncoder(tokenizer, chat).encode
    roles = role_token_ids(tokenizer)
    return lambda messages: encode_conversation(tokenizer, messages, roles)


def load_examples(cfg: FinetuneDataConfig, tokenizer: Tokenizer,
                  chat: JinjaChat | None = None) -> tuple[list[Example], Counter[str]]:
    """Every usable example of ``cfg.data`` in file order, and the dropped rows counted by reason."""
    encode = conversation_encoder(tokenizer, chat)
    eos_id = special_id(tokenizer, chat.variables.get("eos_token", EOS) if chat else EOS)
    examples: list[Example] = []
    dropped: Counter[str] = Counter()
    for path in data_files(cfg.data):
        for row in read_rows(path):
            try:
                if isinstance(row, BadRow):
                    raise row
                pieces = encode(conversation(row))
                examples.append(build_example(pieces, eos_id, cfg))
            except BadRow as bad:
                dropped[bad.reason] += 1
    return examples, dropped


def pack_plan(lengths: list[int], max_seq_len: int, packing: bool = True) -> list[list[int]]:
    """Which examples (indices, in placement order) fill each row.

    Best fit: each example goes into the open row with the least room that still holds it, else a
    new row; ties go to the older row, so the plan depends only on ``lengths``. Without
    ``packing`` each example gets its own row.
    """
    if any(n > max_seq_len for n in lengths):
        raise ValueError(f"an example has {max(lengths)} tokens > max_seq_len={max_seq_len}; build examples "
                         "with the same max_seq_len")
    if not packing:
        return [[i] for i in range(len(lengths))]
    rows: list[list[int]] = []
    room: list[tuple[int, int]] = []  # (free tokens, row index) of rows not yet full, sorted
    for i, n in enumerate(lengths):
        j = bisect_left(room, (n, -1))
        if j < len(room):
            free, row = room.pop(j)
            rows[row].append(i)
        else:
            free, row = max_seq_len, len(rows)
            rows.append([i])
        if free > n:
            insort(room, (free - n, row))
    return rows


def packed_row(pieces: list[tuple[np.ndarray, np.ndarray]], max_seq_len: int, pad_id: int) -> dict[str, np.ndarray]:
    """One row from ``(input_ids, labels)`` pairs: the pretraining layout of ``pad_to_length`` (int64;
    segments 1, 2, 3, ..., 0 and label -100 on padding) with each example's own labels."""
    row = pad_to_length([ids for ids, _ in pieces], max_seq_len, pad_id)
    labels = np.concatenate([lab for _, lab in pieces]) if pieces else np.zeros(0, dtype=np.int64)
    row["labels"][: len(labels)] = labels
    return row


def pack(examples: list[Example], max_seq_len: int, pad_id: int, packing: bool = True) -> list[dict[str, np.ndarray]]:
    """Rows of exactly ``max_seq_len`` tokens (``input_ids``, ``labels``, ``segment_ids``) holding whole
    examples, by ``pack_plan``; deterministic."""
    plan = pack_plan([len(e.input_ids) for e in examples], max_seq_len, packing)
    arrays = [(np.asarray(e.input_ids, dtype=np.int64), np.asarray(e.labels, dtype=np.int64)) for e in examples]
    return [packed_row([arrays[i] for i in row], max_seq_len, pad_id) for row in plan]


class FinetuneDataset(Dataset):
    """Packed fine-tuning rows as the pretraining loader yields them: ``input_ids``, ``labels``,
    ``segment_ids`` (int64, length ``max_seq_len``), ``sample_index`` (the row) and ``stream`` (0).

    Examples are kept as flat int32 arrays and each row is assembled when read.
    """

    def __init__(self, cfg: FinetuneDataConfig, tokenizer: Tokenizer, chat: JinjaChat | None = None) -> None:
        examples, self.dropped = load_examples(cfg, tokenizer, chat)
        if not examples:
            raise ValueError(f"data={cfg.data!r}: no usable examples; dropped {dict(self.dropped)}")
        self.max_seq_len = cfg.max_seq_len
        # Padding is never attended to or scored; an HF base without a pad token pads with its eos.
        pad = chat.variables.get("pad_token", chat.variables.get("eos_token", PAD)) if chat else PAD
        self.pad_id = special_id(tokenizer, pad)
        order = np.random.default_rng(cfg.shuffle_seed).permutation(len(examples))
        ordered = [examples[i] for i in order]
        lengths = [len(e.input_ids) for e in ordered]
        self.num_examples = len(ordered)
        self.num_truncated = sum(e.prompt_cut > 0 for e in ordered)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        total = int(self.offsets[-1])
        self.input_ids = np.fromiter(chain.from_iterable(e.input_ids for e in ordered), np.int32, total)
        self.labels = np.fromiter(chain.from_iterable(e.labels for e in ordered), np.int32, total)
        self.plan = pack_plan(lengths, cfg.max_seq_len, cfg.packing)

    def __len__(self) -> int:
        return len(self.plan)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        pieces = []
        for i in self.plan[index]:
            span = slice(self.offsets[i], self.offsets[i + 1])
            pieces.append((self.input_ids[span].astype(np.int64), self.labels[span].astype(np.int64)))
        out = packed_row(pieces, self.max_seq_len, self.pad_id)
        out["sample_index"] = np.int64(index)
        out["stream"] = np.int64(0)
        return out

    def summary(self) -> dict[str, object]:
        """Counts for the run log: rows read and dropped by reason, rows packed, tokens by kind."""
        trained = int((self.labels != IGNORE_INDEX).sum())
        tokens = len(self.input_ids)
        return {
            "rows_read": self.num_examples + sum(self.dropped.values()),
            "examples": self.num_examples,
            "dropped_by_reason": dict(sorted(self.dropped.items())),
            "prompt_truncated": self.num_truncated,
            "packed_rows": len(self),
            "trained_tokens": trained,
            "prompt_tokens": tokens - trained,
            "padding_tokens": len(self) * self.max_seq_len - tokens,
        }


def check_full_batch(dataset: FinetuneDataset, batch_size: int, world_size: int) -> None:
    """Refuse a training set whose packed rows fill no batch on a rank (``training.data.require_full_batch``).

    Packing puts many short examples in one row, so a few dozen rows can pack into fewer rows than
    one global batch; the sampler splits the rows evenly over ranks, dropping the remainder.
    """
    s = dataset.summary()
    per_rank = len(dataset) // world_size
    largest = per_rank * world_size
    fix = (f"lower global_train_batch_size to at most {largest}" if largest else f"train on fewer than {world_size} ranks")
    if len(dataset) < s["examples"]:
        fix += ", set train_loader.packing: false (one example per row)"
    require_full_batch(per_rank, batch_size, world_size,
                       f"train_loader: {s['examples']:,} examples in {len(dataset):,} packed rows of "
                       f"{dataset.max_seq_len} tokens", f"{fix} or add examples")
