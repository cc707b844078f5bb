import numpy as np
import pytest

from llmfoundry_lite.filtering.config import DedupConfig
from llmfoundry_lite.filtering.dedup import (
    UnionFind,
    band_keys,
    content_hash,
    decisions,
    exact_clusters,
    make_ordinal,
    minhash_signature,
    near_clusters_local,
    shard_of,
    shingles,
)

CFG = DedupConfig()


def module(variant: int, n_funcs: int = 60) -> str:
    body = "".join(f"def handler_{i}(request, {'ctx' if i else 'context'}):\n    return process(request, {i})\n\n"
                   for i in range(n_funcs))
    return f"# variant {variant}\nimport os\n\n" + body


def test_content_hash_ignores_whitespace_layout_only():
    assert content_hash("def f():\n    return 1\n") == content_hash("def f():\r\n\treturn   1")
    assert content_hash("a b") != content_hash("ab")
    assert len(content_hash("x")) == 32


def test_shingles_are_token_5grams():
    assert shingles("a.b(c) d-e f", 5) == {b"a b c d e", b"b c d e f"}
    assert shingles("just three words", 5) == {b"just three words"}
    assert shingles("+-*/ ()", 5) == set()


def test_signature_is_deterministic_and_estimates_jaccard():
    a, b = minhash_signature(module(1), CFG), minhash_signature(module(2), CFG)
    assert a.dtype == np.uint32 and a.shape == (256,)
    assert np.array_equal(a, minhash_signature(module(1), CFG))
    assert minhash_signature("+++", CFG) is None
    unrelated = minhash_signature("class Z:\n" + "".join(f"    v{i} = other_{i} * {i}\n" for i in range(200)), CFG)
    assert np.mean(a == b) > 0.85
    assert np.mean(a == unrelated) < 0.05


def test_ordinals_round_trip():
    assert shard_of(make_ordinal(7, 123)) == 7
    assert make_ordinal(0, 5) < make_ordinal(1, 0)


def test_union_find_root_is_smallest_member():
    uf = UnionFind()
    uf.union(9, 4)
    uf.union(4, 7)
    uf.union(20, 21)
    assert uf.clusters() == {4: [4, 7, 9], 20: [20, 21]}


def test_exact_clusters_keep_smallest_ordinal():
    ords = np.array([30, 10, 20, 40])
    assert exact_clusters(ords, ["h1", "h2", "h1", "h1"]) == {20: [20, 30, 40]}


def test_near_clusters_group_variants_and_leave_unrelated_alone():
    texts = [module(1), "totally different text with its own tokens " * 30, module(2), module(3)]
    sigs = np.stack([minhash_signature(t, CFG) for t in texts])
    ords = np.array([make_ordinal(1, 0), make_ordinal(0, 5), make_ordinal(0, 9), make_ordinal(2, 0)])
    clusters = near_clusters_local(ords, sigs, CFG)
    assert clusters == {make_ordinal(0, 9): sorted([make_ordinal(0, 9), make_ordinal(1, 0), make_ordinal(2, 0)])}


def test_near_clusters_do_not_depend_on_input_order():
    texts = [module(v) for v in range(5)] + [f"unrelated {i} " * 50 for i in range(3)]
    sigs = np.stack([minhash_signature(t, CFG) for t in texts])
    ords = np.arange(len(texts), dtype=np.int64) * 3
    perm = np.random.default_rng(0).permutation(len(texts))
    assert near_clusters_local(ords, sigs, CFG) == near_clusters_local(ords[perm], sigs[perm], CFG)


def test_band_keys_equal_exactly_when_band_values_equal():
    sigs = np.zeros((3, 256), np.uint32)
    sigs[1, 0] = 1  # differs from row 0 in band 0 only
    sigs[2, 250] = 7  # beyond bands * rows = 250: unused
    keys = band_keys(sigs, CFG)
    assert keys.shape == (3, 25)
    assert keys[0, 0] != keys[1, 0] and all(keys[0, 1:] == keys[1, 1:])
    assert all(keys[0] == keys[2])


def test_decisions_mark_every_member_but_the_representative():
    out = decisions({1: [1, 5]}, {2: [2, 3, 8]})
    assert out == {5: ("exact_duplicate", 1, 2), 3: ("near_duplicate", 2, 3), 8: ("near_duplicate", 2, 3)}


def test_band_rows_must_fit_permutations():
    with pytest.raises(ValueError, match="exceeds dedup.num_perm"):
        DedupConfig(num_perm=128, bands=25, rows=10)
