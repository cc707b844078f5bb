"""FIM: exact layouts, reassembly to the original bytes, context edges, rates, padding."""

from __future__ import annotations

import numpy as np
import pytest

from llmfoundry_lite.objectives.config import FIMConfig
from llmfoundry_lite.objectives.fim import FIM, eos_segment_ids, split_fragments
from llmfoundry_lite.objectives.token_bytes import token_byte_table
from llmfoundry_lite.tokenizer.special import FIM_PAD
from tests.objectives.conftest import UNICODE_DOCS, contexts, encode, padded


class FixedDraws:
    """Stands in for the generator: returns the given rows of [transform?, spm?, cut 1, cut 2]."""

    def __init__(self, rows: list[list[float]]) -> None:
        self.rows = np.asarray(rows, dtype=np.float64)

    def random(self, shape: tuple[int, int]) -> np.ndarray:
        assert shape == self.rows.shape
        return self.rows


def fim(tokenizer, special, max_seq_len: int, fim_rate: float = 1.0, spm_rate: float = 0.5) -> FIM:
    return FIM(FIMConfig(fim_rate=fim_rate, spm_rate=spm_rate), tokenizer, special, max_seq_len)


def reassemble(input_ids: np.ndarray, special, table) -> list[tuple[str, bytes]]:
    """Undo FIM on an output: per segment ('plain'|'psm'|'spm', original bytes in document order)."""
    ids = [i for i in input_ids.tolist() if i != special.pad]
    segments, current = [], []
    for i in ids + [None]:
        if i is None or i == special.eos:
            if current or i is not None:
                segments.append(current)
            current = []
        else:
            current.append(i)

    def text(xs: list[int]) -> bytes:
        return b"".join(table[x] for x in xs)

    out = []
    for seg in segments:
        if not seg or seg[0] != special.fim_prefix:
            out.append(("plain", text(seg)))
            continue
        mid = seg.index(special.fim_middle)
        suf = seg.index(special.fim_suffix)
        if suf == 1:  # SPM: <pre> <suf> S <mid> P M  (P+M is one run; order is what matters)
            out.append(("spm", text(seg[mid + 1 :]) + text(seg[2:mid])))
        else:  # PSM: <pre> P <suf> S <mid> M
            out.append(("psm", text(seg[1:suf]) + text(seg[mid + 1 :]) + text(seg[suf + 1 : mid])))
    return out


def test_psm_exact_layout(tokenizer, special):
    text = "def add(x, y):\n    return x + y\n"
    L = 64
    tokens = padded(encode(tokenizer, text) + [special.eos], L, special.pad)
    n = len(text) + 1  # cut u maps to int(u * n)
    draws = FixedDraws([[0.0, 0.9, 8.2 / n, 4.5 / n]])  # transform, PSM (0.9 >= spm_rate), cuts at 4 and 8
    out = fim(tokenizer, special, L)(tokens, draws)
    expected = (
        [special.fim_prefix]
        + encode(tokenizer, text[:4])
        + [special.fim_suffix]
        + encode(tokenizer, text[8:])
        + [special.fim_middle]
        + encode(tokenizer, text[4:8])
        + [special.eos]
    )
    assert out["input_ids"].tolist() == expected + [special.pad] * (L - len(expected))
    assert out["labels"].tolist() == expected + [-100] * (L - len(expected))
    assert out["input_ids"].dtype == np.int64 and out["labels"].dtype == np.int64
    assert out["segment_ids"].tolist() == [1] * len(expected) + [0] * (L - len(expected))
    assert out["segment_ids"].dtype == np.int64


def test_spm_exact_layout_and_untouched_second_document(tokenizer, special):
    first, second = "x = 1\ny = 2\n", "print('hi')\n"
    L = 48
    second_ids = encode(tokenizer, second)
    tokens = padded(encode(tokenizer, first) + [special.eos] + second_ids + [special.eos], L, special.pad)
    n = len(first) + 1
    draws = FixedDraws([[0.1, 0.2, 2.5 / n, 9.5 / n], [0.7, 0.0, 0.5, 0.5]])  # second: 0.7 >= rate 0.6 -> plain
    out = fim(tokenizer, special, L, fim_rate=0.6)(tokens, draws)
    expected = (
        [special.fim_prefix, special.fim_suffix]
        + encode(tokenizer, first[9:])
        + [special.fim_middle]
        + encode(tokenizer, first[:2])
        + encode(tokenizer, first[2:9])
        + [special.eos]
        + second_ids
        + [special.eos]
    )
    assert out["input_ids"].tolist() == expected + [special.pad] * (L - len(expected))
    second_len = len(second_ids) + 1
    first_len = len(expected) - second_len
    assert out["segment_ids"].tolist() == [1] * first_len + [2] * second_len + [0] * (L - len(expected))


def test_fim_rate_zero_is_next_token(tokenizer, special, stream):
    f = fim(tokenizer, special, 128, fim_rate=0.0)
    for tokens in contexts(stream, 128, 20, 97):
        out = f(tokens, np.random.default_rng(0))
        assert out["input_ids"].tolist() == tokens.tolist()
        assert out["labels"].tolist() == tokens.tolist()
        assert np.array_equal(out["segment_ids"], eos_segment_ids(tokens, special.eos, special.pad))


def test_one_segment_per_fragment_and_zero_exactly_on_padding(tokenizer, special, stream):
    L = 128
    f = fim(tokenizer, special, L, fim_rate=0.7)
    docs = [padded(encode(tokenizer, t) + [special.eos], L, special.pad) for t in ("x = 1\n", "def f(): pass\n")]
    for k, tokens in enumerate(contexts(stream, L, 60, 53) + docs):
        out = f(tokens, np.random.default_rng(k))
        ids, seg = out["input_ids"], out["segment_ids"]
        n = int(np.sum(ids != special.pad))
        assert np.array_equal(seg == 0, np.arange(L) >= n)  # 0 exactly on the trailing padding
        fragments = split_fragments(tokens[tokens != special.pad], special.eos)
        assert 1 <= seg.max() <= len(fragments)  # fewer only when the context edge pushed fragments out
        runs = np.split(ids[:n], np.flatnonzero(np.diff(seg[:n])) + 1)
        assert np.array_equal(np.unique(seg[:n]), np.arange(1, len(runs) + 1))  # contiguous, numbered in order
        for j, run in enumerate(runs):  # each segment is one whole placed piece: FIM form or plain fragment
            assert run.tolist().count(special.fim_prefix) == (run[0] == special.fim_prefix)
            eos_at = np.flatnonzero(run == special.eos).tolist()
            assert eos_at == [len(run) - 1] or (j == len(runs) - 1 and eos_at == [])  # only the last may be cut


@pytest.mark.parametrize("max_seq_len", [64, 256])
def test_samples_reassemble_to_the_original_documents(tokenizer, special, stream, max_seq_len):
    f = fim(tokenizer, special, max_seq_len)
    table = token_byte_table(tokenizer, list(special.is_special))
    for k, tokens in enumerate(contexts(stream, max_seq_len, 60, 131)):
        out = f(tokens, np.random.default_rng(k))
        original = [
            b"".join(table[i] for i in tokens[fr.start : fr.end].tolist())
            for fr in split_fragments(tokens, special.eos)
        ]
        rebuilt = reassemble(out["input_ids"], special, table)
        assert len(out["input_ids"]) == max_seq_len
        assert len(rebuilt) <= len(original)
        for j, (kind, data) in enumerate(rebuilt):
            if j < len(rebuilt) - 1:
                assert data == original[j], (k, j, kind)
            else:  # the context's last segment may have been shortened at its end to fit
                assert original[j].startswith(data) and len(data) > 0, (k, j, kind)
    assert f.counts["fim_applied"] > 50 and f.counts["fim_skipped_roundtrip"] == 0


def test_every_fim_middle_is_whole_and_followed_by_eos(tokenizer, special, stream):
    L = 128
    f = fim(tokenizer, special, L)
    for k, tokens in enumerate(contexts(stream, L, 60, 89)):
        ids = f(tokens, np.random.default_rng(k))["input_ids"].tolist()
        starts = [i for i, t in enumerate(ids) if t == special.fim_prefix]
        for s in starts:
            end = ids.index(special.eos, s)  # a transformed fragment always closes with end-of-text
            assert ids[s:end].count(special.fim_middle) == 1 and ids[s:end].count(special.fim_suffix) == 1
    assert f.counts["fim_shortened"] > 0  # long documents cut by packing were shortened, not left plain


def test_labels_mask_padding_only_and_train_every_eos(tokenizer, special, stream):
    L = 96
    f = fim(tokenizer, special, L, fim_rate=0.5)
    docs = [encode(tokenizer, t) for t in UNICODE_DOCS]
    samples = contexts(stream, L, 30, 71) + [padded(d + [special.eos], L, special.pad) for d in docs]
    eos_seen = 0
    for k, tokens in enumerate(samples):
        out = f(tokens, np.random.default_rng(k))
        ids, labels = out["input_ids"], out["labels"]
        assert ids.shape == labels.shape == (L,)
        assert np.all(labels[ids == special.pad] == -100)
        assert np.array_equal(labels[ids != special.pad], ids[ids != special.pad])
        assert tokenizer.token_to_id(FIM_PAD) not in ids.tolist()  # never padded with <fim_pad>
        assert np.sum(labels == special.eos) == np.sum(ids == special.eos)  # every end-of-text is trained
        eos_seen += int(np.sum(ids == special.eos))
    assert eos_seen > 10


def test_fragment_cut_mid_character_is_transformed_byte_exactly(tokenizer, special):
    doc = encode(tokenizer, UNICODE_DOCS[1] * 2)
    table = token_byte_table(tokenizer, list(special.is_special))
    # start the context at the first token that begins inside a multi-byte character
    start = next(i for i, t in enumerate(doc) if table[t][0] & 0xC0 == 0x80)
    end = next(i for i in range(len(doc) - 1, start, -1) if table[doc[i - 1]][-1] >= 0xC0)  # ends after a lead byte
    L = 512
    piece = doc[start:end]
    tokens = padded(piece, L, special.pad)
    f = fim(tokenizer, special, L)
    out = f(tokens, np.random.default_rng(3))
    ((kind, data),) = reassemble(out["input_ids"], special, table)
    assert kind in ("psm", "spm") and data == b"".join(table[t] for t in piece)
    assert f.counts["fim_applied"] == 1 and f.counts["fim_skipped_utf8"] == 0 and f.counts["fim_shortened"] == 0


def test_text_that_does_not_round_trip_stays_plain_and_is_counted(special):
    from llmfoundry_lite.tokenizer.io import load_tokenizer
    from tests.objectives.conftest import ASSET

    if not (ASSET / "tokenizer.json").is_file():
        pytest.skip("needs the committed test tokenizer")
    tok = load_tokenizer(ASSET)
    literal = encode(tok, "<fim_prefix>")  # the literal string, encoded as text (a few tokens: one window)
    tok.encode_special_tokens = False  # now re-encoding the text would yield the control token
    L = 32
    tokens = padded(literal + [special.eos], L, special.pad)
    f = fim(tok, special, L)
    out = f(tokens, FixedDraws([[0.0, 0.9, 0.0, 0.0]]))  # both cuts at 0: the whole text is the suffix
    assert out["input_ids"].tolist() == tokens.tolist()
    assert f.counts["fim_skipped_roundtrip"] == 1


def test_fim_and_spm_rates_match_config(tokenizer, special, stream):
    L = 128
    f = fim(tokenizer, special, L, fim_rate=0.5, spm_rate=0.3)
    transformed = fragments = 0
    for k, tokens in enumerate(contexts(stream, L, 1200, 17)):
        ids = f(tokens, np.random.default_rng([11, k]))["input_ids"].tolist()
        transformed += ids.count(special.fim_prefix)
        fragments += sum(fr.end > fr.start for fr in split_fragments(tokens, special.eos))
    assert fragments > 1200  # binomial sd of the rate < 0.015
    assert abs(transformed / fragments - 0.5) < 0.06
    spm = f.counts["fim_spm"] / f.counts["fim_applied"]
    assert abs(spm - 0.3) < 0.07


def test_nothing_exceeds_max_seq_len_when_documents_fill_the_context(tokenizer, special):
    # Exactly full context of complete documents: growth must push the last one out, never overflow.
    doc = encode(tokenizer, "values = [1, 2, 3]\nfor v in values:\n    print(v * 2)\n") + [special.eos]
    L = len(doc) * 4
    tokens = np.asarray(doc * 4, dtype=np.int32)
    f = fim(tokenizer, special, L)
    out = f(tokens, np.random.default_rng(0))
    assert out["input_ids"].shape == (L,)
    assert out["input_ids"].tolist().count(special.fim_prefix) == 4  # the last one shortened to fit
    assert f.counts["fim_shortened"] == 1 and f.counts["tokens_dropped"] >= 4 * 3


def test_windowed_reencoding_matches_encoding_each_part_alone(tokenizer, special, stream):
    """Re-encoding only WINDOW tokens around each cut gives the tokens a full encode of each part gives."""
    from llmfoundry_lite.objectives.fim_cuts import WINDOW, cut_fragment

    f = fim(tokenizer, special, 4096)
    table = token_byte_table(tokenizer, list(special.is_special))
    rng = np.random.default_rng(0)
    docs = [d for d in np.split(stream, np.flatnonzero(stream == special.eos) + 1) if len(d) > 40]

    def agreement(window: int) -> float:
        same = total = 0
        for doc in docs:
            for _ in range(15):
                lo = int(rng.integers(0, max(1, len(doc) - 301)))
                cut = cut_fragment(
                    doc[lo : lo + 300][doc[lo : lo + 300] != special.eos], f.token_bytes, tuple(rng.random(2)), window
                )
                for part in (cut.prefix, cut.middle, cut.suffix):
                    ids = f._tokens(part).tolist()
                    try:
                        text = b"".join(table[i] for i in ids).decode("utf-8")
                    except UnicodeDecodeError:  # a part holding a partial character of a cut-off edge
                        continue
                    total += 1
                    same += encode(tokenizer, text) == ids
        assert total > 500
        return same / total

    assert agreement(WINDOW) >= 0.99
    assert agreement(0) < 0.97  # the check can tell: with no window, cuts mis-tokenize visibly often
