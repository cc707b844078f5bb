"""Instruction data: both row formats, bad rows by reason, loss masks, truncation, packing isolation."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import WordLevel
from torch.utils.data import DataLoader

from llmfoundry_lite.finetune.chat import (
    CHAT_TEMPLATE,
    END_OF_TURN,
    MIN_RESERVED,
    ROLE_TOKENS,
    encode_conversation,
    role_token_ids,
)
from llmfoundry_lite.finetune.data import (
    FinetuneDataConfig,
    FinetuneDataset,
    data_files,
    load_examples,
    pack,
    pack_plan,
)
from llmfoundry_lite.models.config import ModelConfig
from llmfoundry_lite.models.loss import IGNORE_INDEX, loss_token_count, token_sum_loss
from llmfoundry_lite.models.transformer import Transformer
from llmfoundry_lite.tokenizer.io import encode_texts, load_manifest, load_tokenizer

ASSET = Path(__file__).resolve().parents[1] / "assets" / "tokenizer"
EOS_ID, PAD_ID = 0, 1
SYS = {"role": "system", "content": "You write small Python functions."}
U1 = {"role": "user", "content": "Add two numbers."}
A1 = {"role": "assistant", "content": "def add(a, b):\n    return a + b\n"}
U2 = {"role": "user", "content": "Now subtract."}
A2 = {"role": "assistant", "content": "def sub(a, b):\n    return a - b\n"}
PROMPT_ROW = {"prompt": "Reverse a list.", "response": "def rev(xs):\n    return xs[::-1]\n", "id": 7}
CHAT_ROW = {"messages": [SYS, U1, A1, U2, A2], "source": "hand-written"}


@pytest.fixture(scope="module")
def tok() -> Tokenizer:
    return load_tokenizer(ASSET)


@pytest.fixture(scope="module")
def roles(tok) -> dict[str, int]:
    return role_token_ids(tok)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    """One line per row; a ``bytes`` row is written as it is (for lines that are not JSON)."""
    lines = [r if isinstance(r, bytes) else json.dumps(r).encode() for r in rows]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema([("prompt", pa.string()), ("response", pa.string()), ("messages", pa.list_(message)),
                        ("id", pa.int64())])
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


def config(path: Path, **kw) -> FinetuneDataConfig:
    return FinetuneDataConfig(data=str(path), **kw)


def layout(tok, roles, messages: list[dict]) -> tuple[list[int], list[str], list[int]]:
    """Expected tokens of a conversation, the kind of each (header / role / eos) and its turn number."""
    ids, kinds, turns = [], [], []
    for turn, m in enumerate(messages):
        body = encode_texts(tok, [m["content"]])[0] + [roles["end_of_turn"]]
        ids += [roles[m["role"]], *body]
        kinds += ["header"] + [m["role"]] * len(body)
        turns += [turn] * (1 + len(body))
    return ids + [EOS_ID], kinds + ["eos"], turns + [len(messages) - 1]


# --- the tokenizer and the template ------------------------------------------------------------------

def test_asset_tokenizer_has_the_role_tokens(tok, roles):
    manifest = load_manifest(ASSET)
    assert manifest["num_reserved"] >= MIN_RESERVED
    first = manifest["reserved_id_range"][0]
    assert roles == {"system": first, "user": first + 1, "assistant": first + 2, "end_of_turn": first + 3}


def test_role_token_check_names_the_missing_token_and_the_fix(tmp_path):
    vocab = {"<|endoftext|>": 0, "<|pad|>": 1, "<|reserved_0|>": 2, "<|reserved_1|>": 3, "<|reserved_2|>": 4,
             "[UNK]": 5}
    small = Tokenizer(WordLevel(vocab, unk_token="[UNK]"))
    with pytest.raises(ValueError, match=r"tokenizer has no <\|reserved_3\|>; train it with num_reserved >= 4"):
        role_token_ids(small)
    with pytest.raises(ValueError, match="num_reserved >= 4"):
        load_examples(config(write_jsonl(tmp_path / "d.jsonl", [PROMPT_ROW])), small)


def test_jinja_template_renders_exactly_the_pieces(tok, roles):
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    template = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True).from_string(CHAT_TEMPLATE)
    messages = CHAT_ROW["messages"]
    text = template.render(messages=messages, add_generation_prompt=False)
    assert text == "".join(ROLE_TOKENS[m["role"]] + m["content"] + END_OF_TURN for m in messages)
    pieces = encode_conversation(tok, [(m["role"], m["content"]) for m in messages], roles)
    matching = Tokenizer.from_file(str(ASSET / "tokenizer.json"))  # specials matched in text, as HF renders
    assert matching.encode(text, add_special_tokens=False).ids == [t for ids, _ in pieces for t in ids]
    prompt = template.render(messages=[U1], add_generation_prompt=True)
    assert prompt == ROLE_TOKENS["user"] + U1["content"] + END_OF_TURN + ROLE_TOKENS["assistant"]


def test_role_token_written_in_a_message_stays_text(tok, roles):
    pieces = encode_conversation(tok, [("user", "say <|reserved_2|>"), ("assistant", "ok")], roles)
    assert roles["assistant"] not in pieces[1][0]
    assert [tag for _, tag in pieces] == ["header", "user", "header", "assistant"]


# --- reading -------------------------------------------------------------------------------------------

def test_both_formats_from_jsonl_parquet_gzip_and_a_directory(tmp_path, tok, roles):
    rows = [PROMPT_ROW, CHAT_ROW]
    from_jsonl, dropped = load_examples(config(write_jsonl(tmp_path / "a.jsonl", rows)), tok)
    assert not dropped
    assert from_jsonl[0].input_ids == layout(tok, roles, [{"role": "user", "content": PROMPT_ROW["prompt"]},
                                                         {"role": "assistant", "content": PROMPT_ROW["response"]}])[0]
    assert from_jsonl[1].input_ids == layout(tok, roles, CHAT_ROW["messages"])[0]
    parquet = write_parquet(tmp_path / "b.parquet", rows)  # a row's missing columns are nulls here
    assert load_examples(config(parquet), tok) == (from_jsonl, Counter())
    gz = tmp_path / "c.jsonl.gz"
    gz.write_bytes(gzip.compress((tmp_path / "a.jsonl").read_bytes()))
    assert load_examples(config(gz), tok)[0] == from_jsonl

    folder = tmp_path / "dir"
    write_jsonl(folder / "1.jsonl", rows)
    write_parquet(folder / "sub" / "2.parquet", rows)
    (folder / "README.md").write_text("not data")
    assert [f.name for f in data_files(str(folder))] == ["1.jsonl", "2.parquet"]
    assert load_examples(config(folder), tok)[0] == from_jsonl * 2


def test_messages_win_over_a_prompt_column(tmp_path, tok, roles):
    row = {"prompt": "ignored", "messages": [U1, A1]}
    (example,), _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", [row])), tok)
    assert example.input_ids == layout(tok, roles, [U1, A1])[0]


def test_bad_rows_are_counted_by_reason(tmp_path, tok):
    bad = [
        b"   ", b"{not json", b'{"prompt": "\xff\xfe"}', [1, 2], "just a string",
        {"prompt": "only a prompt"}, {"text": "other format"}, {"messages": [{"role": "user"}, A1]},
        {"messages": "hi"}, {"messages": []}, {"messages": ["hi", A1]},
        {"prompt": 3, "response": "x"}, {"messages": [{"role": "user", "content": ["x"]}, A1]},
        {"messages": [{"role": "tool", "content": "x"}, A1]}, {"messages": [U1, SYS, A1]},
        {"prompt": " \n", "response": "x"}, {"messages": [U1, {"role": "assistant", "content": ""}]},
        {"messages": [U1, A1, U2]}, {"prompt": "x " * 400, "response": "y"},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", [PROMPT_ROW, *bad, CHAT_ROW])
    examples, dropped = load_examples(config(path, max_seq_len=128), tok)
    assert dropped == Counter({
        "blank_line": 1, "not_json": 2, "not_an_object": 3, "missing_keys": 3, "not_a_list": 1, "no_messages": 1,
        "not_a_string": 2, "bad_role": 1, "system_not_first": 1, "empty_content": 2, "last_not_assistant": 1,
        "too_long": 1,
    })
    assert len(examples) == 2
    assert len(examples) + sum(dropped.values()) == len(path.read_bytes().splitlines())


@pytest.mark.parametrize("name, content, error, match", [
    ("missing.jsonl", None, FileNotFoundError, "not found"),
    ("x.csv", b"a,b", ValueError, "not a .jsonl"),
    ("", None, FileNotFoundError, "no .jsonl"),  # the (empty) directory itself
    ("x.parquet", b"junk", ValueError, "x.parquet: not a readable Parquet file"),
])
def test_unusable_inputs_fail_naming_the_path(tmp_path, tok, name, content, error, match):
    if content is not None:
        (tmp_path / name).write_bytes(content)
    with pytest.raises(error, match=match):
        load_examples(config(tmp_path / name), tok)


@pytest.mark.parametrize("kw, key", [
    ({"data": ""}, "loader data must name"), ({"max_seq_len": 0}, "max_seq_len must be positive"),
    ({"target_responses": "first"}, "unknown target_responses"), ({"truncation": "cut"}, "unknown truncation"),
])
def test_config_errors_name_the_key(kw, key):
    with pytest.raises(ValueError, match=key):
        FinetuneDataConfig(**{"data": "x.jsonl", **kw})


# --- masking -------------------------------------------------------------------------------------------

def test_all_assistant_turns_and_their_end_of_turn_are_trained(tmp_path, tok, roles):
    (example,), _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", [CHAT_ROW])), tok)
    ids, kinds, _ = layout(tok, roles, CHAT_ROW["messages"])
    expected = [t if k in ("assistant", "eos") else IGNORE_INDEX for t, k in zip(ids, kinds, strict=True)]
    assert example.labels == expected
    trained_eot = [i for i, t in enumerate(ids) if t == roles["end_of_turn"] and example.labels[i] != IGNORE_INDEX]
    assert len(trained_eot) == 2 and example.labels[-1] == EOS_ID
    assert all(example.labels[i] == IGNORE_INDEX for i, t in enumerate(ids) if t == roles["assistant"])


def test_last_trains_only_the_final_answer(tmp_path, tok, roles):
    (example,), _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", [CHAT_ROW]), target_responses="last"), tok)
    ids, kinds, turns = layout(tok, roles, CHAT_ROW["messages"])
    expected = [t if (k == "assistant" and n == 4) or k == "eos" else IGNORE_INDEX
                for t, k, n in zip(ids, kinds, turns, strict=True)]
    assert example.labels == expected


def test_target_prompts_trains_everything_but_padding_and_first_tokens(tmp_path, tok):
    path = write_jsonl(tmp_path / "d.jsonl", [PROMPT_ROW, CHAT_ROW])
    examples, _ = load_examples(config(path, target_prompts=True), tok)
    for e in examples:
        assert e.labels == [IGNORE_INDEX] + e.input_ids[1:]
    (row,) = pack(examples, 256, PAD_ID)
    seg = row["segment_ids"]
    first = np.r_[True, seg[1:] != seg[:-1]]
    assert (row["labels"] == np.where(first | (seg == 0), IGNORE_INDEX, row["input_ids"])).all()


def test_long_prompt_trains_only_the_response(tmp_path, tok):
    response = "return sorted(xs)"
    prompt = "Sort the list xs, keeping duplicates and using the key given. " * 30
    (example,), _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", [{"prompt": prompt, "response": response}])), tok)
    n_response = len(encode_texts(tok, [response])[0])
    assert len(encode_texts(tok, [prompt])[0]) >= 20 * n_response
    trained = sum(label != IGNORE_INDEX for label in example.labels)
    assert trained == n_response + 2  # + end-of-turn and end-of-text


# --- truncation ----------------------------------------------------------------------------------------

def test_truncation_policies(tmp_path, tok, roles):
    response = "def f():\n    return 1\n"
    row = {"prompt": "Write f. " * 40, "response": response}
    path = write_jsonl(tmp_path / "d.jsonl", [row])
    full, _ = load_examples(config(path), tok)
    n = len(full[0].input_ids)
    assert load_examples(config(path, max_seq_len=n), tok)[0] == full  # an exact fit is kept whole
    assert load_examples(config(path, max_seq_len=n - 1), tok) == ([], Counter(too_long=1))

    (cut,), dropped = load_examples(config(path, max_seq_len=32, truncation="truncate_prompt"), tok)
    assert not dropped and len(cut.input_ids) == 32 and cut.prompt_cut == n - 32
    assert cut.input_ids == full[0].input_ids[-32:]
    answer = [roles["assistant"], *encode_texts(tok, [response])[0], roles["end_of_turn"], EOS_ID]
    assert cut.input_ids[-len(answer):] == answer
    assert cut.labels[0] == IGNORE_INDEX and cut.labels[-len(answer) + 1:] == answer[1:]

    just = len(answer)
    assert load_examples(config(path, max_seq_len=just, truncation="truncate_prompt"), tok)[0][0].input_ids == answer
    assert load_examples(config(path, max_seq_len=just - 1, truncation="truncate_prompt"), tok) == (
        [], Counter(too_long=1))


# --- packing -------------------------------------------------------------------------------------------

def varied_rows(n: int) -> list[dict]:
    return [{"prompt": f"Write function number {i}." + " Be brief." * (i % 5),
             "response": f"def f{i}(x):\n    return x * {i}\n" + "    # done\n" * (i % 3)} for i in range(n)]


def test_pack_plan_is_best_fit_and_deterministic():
    assert pack_plan([6, 5, 4, 3, 2], 10) == [[0, 2], [1, 3, 4]]
    assert pack_plan([6, 5, 4], 10, packing=False) == [[0], [1], [2]]
    with pytest.raises(ValueError, match="max_seq_len=10"):
        pack_plan([11], 10)


def test_rows_hold_whole_examples_in_separate_segments(tmp_path, tok):
    examples, _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", varied_rows(12))), tok)
    rows = pack(examples, 96, PAD_ID)
    assert len(rows) < len(examples)
    again = pack(examples, 96, PAD_ID)
    assert all((r[k] == a[k]).all() for r, a in zip(rows, again, strict=True) for k in r)
    seen = []
    for row in rows:
        assert {k: (v.shape, v.dtype) for k, v in row.items()} == {k: ((96,), np.int64) for k in row}
        seg = row["segment_ids"]
        content = int((seg > 0).sum())
        assert (seg[content:] == 0).all() and (row["input_ids"][content:] == PAD_ID).all()
        assert (row["labels"][content:] == IGNORE_INDEX).all()
        assert (np.diff(seg[:content]) >= 0).all() and set(seg[:content]) == set(range(1, seg.max() + 1))
        for s in range(1, seg.max() + 1):
            seen.append((tuple(row["input_ids"][seg == s]), tuple(row["labels"][seg == s])))
    assert sorted(seen) == sorted((tuple(e.input_ids), tuple(e.labels)) for e in examples)
    unpacked = pack(examples, 96, PAD_ID, packing=False)
    assert len(unpacked) == len(examples) and all(r["segment_ids"].max() == 1 for r in unpacked)


def tiny_model(vocab: int, doc_mask: bool) -> Transformer:
    """The same weights whatever ``doc_mask``. The default init keeps logits near 1, so the float32 RoPE
    tables' rounding at shifted positions stays far below the tolerance (larger inits reach ~1e-5)."""
    torch.manual_seed(0)
    cfg = ModelConfig(d_model=64, n_layers=2, n_heads=4, vocab_size=vocab, max_seq_len=128, doc_mask=doc_mask,
                      attn_impl="sdpa")
    return Transformer(cfg).eval()


def test_a_packed_example_sees_only_itself(tmp_path, tok):
    examples, _ = load_examples(config(write_jsonl(tmp_path / "d.jsonl", varied_rows(6)), target_prompts=True), tok)
    rows = [r for r in pack(examples, 128, PAD_ID) if r["segment_ids"].max() >= 3]
    row = {k: torch.from_numpy(v)[None] for k, v in rows[0].items()}
    model = tiny_model(tok.get_vocab_size(), doc_mask=True)
    leaky = tiny_model(tok.get_vocab_size(), doc_mask=False)
    with torch.no_grad():
        packed = model(row["input_ids"], row["segment_ids"])
        unmasked = leaky(row["input_ids"], row["segment_ids"])
        total, count = token_sum_loss(packed, row["labels"])
        alone_total, alone_count = torch.zeros(()), 0
        for s in range(1, int(row["segment_ids"].max()) + 1):
            at = row["segment_ids"][0] == s
            alone = model(row["input_ids"][:, at])
            torch.testing.assert_close(packed[0, at], alone[0], atol=1e-5, rtol=1e-5)
            if s > 1:  # without the document mask the later examples see the earlier ones
                assert (unmasked[0, at] - alone[0]).abs().max() > 1e-2
            t, c = token_sum_loss(alone, row["labels"][:, at])
            alone_total, alone_count = alone_total + t, alone_count + int(c)
    # The loss of the packed row is the sum of the examples' losses: no token is scored across a boundary.
    assert int(count) == alone_count == int((row["labels"] != IGNORE_INDEX).sum())
    torch.testing.assert_close(total, alone_total, atol=1e-4, rtol=1e-5)


def test_dataset_items_match_pretraining_batches(tmp_path, tok):
    bad = {"messages": [U1]}
    cfg = config(write_jsonl(tmp_path / "d.jsonl", [*varied_rows(10), bad]), max_seq_len=96, shuffle_seed=3)
    ds = FinetuneDataset(cfg, tok)
    examples, _ = load_examples(cfg, tok)
    order = np.random.default_rng(3).permutation(len(examples))
    rows = pack([examples[i] for i in order], 96, PAD_ID)
    assert len(ds) == len(rows)
    for i, row in enumerate(rows):
        item = ds[i]
        assert set(item) == {"input_ids", "labels", "segment_ids", "sample_index", "stream"}
        assert all((item[k] == row[k]).all() and item[k].dtype == np.int64 for k in row)
        assert item["sample_index"] == np.int64(i) and item["stream"] == np.int64(0)
    batch = next(iter(DataLoader(ds, batch_size=2)))
    assert batch["input_ids"].shape == (2, 96) and batch["input_ids"].dtype == torch.int64

    s = ds.summary()
    assert s["rows_read"] == 11 and s["examples"] == 10 and s["dropped_by_reason"] == {"last_not_assistant": 1}
    assert s["packed_rows"] == len(rows)
    assert s["trained_tokens"] + s["prompt_tokens"] + s["padding_tokens"] == len(rows) * 96
    labels = torch.from_numpy(np.stack([r["labels"] for r in rows]))
    assert s["trained_tokens"] == int(loss_token_count(labels))
    assert s["padding_tokens"] == sum(int((r["segment_ids"] == 0).sum()) for r in rows)


def test_dataset_with_no_usable_rows_fails_with_the_reasons(tmp_path, tok):
    with pytest.raises(ValueError, match="no usable examples.*last_not_assistant"):
        FinetuneDataset(config(write_jsonl(tmp_path / "d.jsonl", [{"messages": [U1]}])), tok)
