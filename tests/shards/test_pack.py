"""Packing into fixed-length samples and the content-hash train/val split."""

from __future__ import annotations

import numpy as np
import pytest

from llmfoundry_lite.shards.pack import Packer, split_of


def test_packing_appends_eos_and_cuts_fixed_samples():
    p = Packer(max_seq_len=4, eos_id=0)
    assert p.add([5, 6]) == []
    out = p.add([7, 8, 9])
    assert [s.tolist() for s in out] == [[5, 6, 0, 7]]
    out = p.add([10])
    assert [s.tolist() for s in out] == [[8, 9, 0, 10]]
    last, pads = p.finish("pad", pad_id=1)
    assert last.tolist() == [0, 1, 1, 1] and pads == 3 and last.dtype == np.int32
    assert (p.docs, p.tokens) == (3, 9)


def test_long_document_spans_samples_and_drop_remainder():
    p = Packer(max_seq_len=3, eos_id=0)
    out = p.add(list(range(10, 17)))  # 7 tokens + EOS = 8
    assert [s.tolist() for s in out] == [[10, 11, 12], [13, 14, 15]]
    assert p.pending == 2
    assert p.finish("drop", pad_id=1) == (None, 0)


def test_exact_fit_leaves_no_remainder():
    p = Packer(max_seq_len=3, eos_id=0)
    assert [s.tolist() for s in p.add([4, 5])] == [[4, 5, 0]]
    assert p.finish("pad", pad_id=1) == (None, 0)


def test_split_is_stable_content_based_and_near_fraction():
    texts = [f"doc {i}\n" for i in range(4000)]
    splits = [split_of(t, 0, 0.1) for t in texts]
    assert splits == [split_of(t, 0, 0.1) for t in texts]
    assert 320 < splits.count("val") < 480
    assert splits != [split_of(t, 1, 0.1) for t in texts]
    assert {split_of(t, 0, 0.0) for t in texts} == {"train"}


def test_unknown_remainder_is_refused():
    p = Packer(max_seq_len=3, eos_id=0)
    p.add([4])
    with pytest.raises(ValueError, match="unknown remainder 'keep'"):
        p.finish("keep", pad_id=1)
