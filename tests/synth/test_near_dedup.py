"""Synthesis near-dedup is linear in bucket size on both engines: each pair is compared with at most one
pair per LSH band (its buckets' firsts), so n pairs cost at most c * n comparisons with c = bands (42 for
the default threshold 0.5), however many pairs share a bucket."""

import random

import pytest
from datasketch import MinHashLSH

from llmfoundry_lite.filtering.config import DedupConfig
from llmfoundry_lite.filtering.dedup import minhash_signature
from llmfoundry_lite.synth import corpus_checks
from llmfoundry_lite.synth.corpus_checks import near_duplicates

N = 3000
THRESHOLD = 0.5
BANDS = MinHashLSH(threshold=THRESHOLD, num_perm=DedupConfig().num_perm).b  # the bands both engines use

FUNCTION = """def scaled_total(values, limit):
    total = 0
    for value in values:
        if value > limit:
            total += value * {k}
        elif value < 0:
            total -= value // 2
        else:
            total = max(total, value)
    if total > limit * 10:
        return limit
    return total
"""


def one_literal_apart() -> list[str]:
    """``N`` copies of one function that differ in one literal: one hot bucket per band."""
    return [FUNCTION.format(k=i + 2) for i in range(N)]


def shared_block() -> list[str]:
    """``N`` texts sharing a 48-token block, each with 20 tokens of its own: they collide in LSH buckets
    but are not near-duplicates (estimated Jaccard below 0.5), so every one is kept."""
    rng = random.Random(0)
    common = " ".join(f"shared{j} = helper{j}(arg{j})" for j in range(16))
    return [common + " " + " ".join(f"own{i}_{j} = f{rng.randrange(10**9)}" for j in range(20)) for i in range(N)]


CORPORA = {"one_literal_apart": (one_literal_apart, N - 1), "shared_block": (shared_block, 0)}


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_local_near_dedup_compares_each_pair_with_at_most_one_pair_per_band(corpus, monkeypatch):
    make, dropped = CORPORA[corpus]
    compared = []
    real = corpus_checks.signatures_agree
    monkeypatch.setattr(corpus_checks, "signatures_agree", lambda a, b, t: compared.append(1) or real(a, b, t))
    out = near_duplicates(make(), THRESHOLD)
    assert BANDS == 42 and len(compared) <= BANDS * N  # c = bands; a pairwise check in a hot bucket is ~n^2/2
    assert sum(d is not None for d in out) == dropped
    if dropped:  # all but the first are dropped, as copies of the first
        assert out[0] is None and set(out[1:]) == {0}


@pytest.mark.parametrize("corpus", sorted(CORPORA))
def test_spark_near_dedup_compares_each_pair_with_at_most_one_pair_per_band(spark, corpus):
    from llmfoundry_lite.synth.spark_synthesis import candidate_pairs

    sigs = [bytearray(minhash_signature(t, DedupConfig()).tobytes()) for t in CORPORA[corpus][0]()]
    assert len(set(map(bytes, sigs))) == N  # candidate_pairs takes pairwise different signatures
    distinct = spark.createDataFrame(list(enumerate(sigs)), "ordinal long, sig binary")
    assert candidate_pairs(distinct, THRESHOLD).count() <= BANDS * N  # pairs of a hot bucket: ~n^2/2


def test_spark_drops_all_but_one_of_3000_functions_one_literal_apart_as_locally(spark, tmp_path):
    from llmfoundry_lite.synth.spark_synthesis import near_duplicate_pairs

    class _Pair:  # what near_duplicate_pairs reads of a pair
        def __init__(self, program: str) -> None:
            self.program = program

    texts = one_literal_apart()
    rdd = spark.sparkContext.parallelize([(i, _Pair(t)) for i, t in enumerate(texts)], 4)
    on_spark = {r["ordinal"]: r["duplicate_of"] for r in near_duplicate_pairs(spark, rdd, THRESHOLD, tmp_path).collect()}
    assert on_spark == dict.fromkeys(range(1, N), 0) == {i: d for i, d in enumerate(near_duplicates(texts, THRESHOLD))
                                                         if d is not None}
