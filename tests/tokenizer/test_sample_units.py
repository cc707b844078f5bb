"""The sample drawn per unit and merged is the sample of one pass over the whole corpus, whatever the units,
the workers and the order the selections are merged in; runtime keys stay out of the fingerprint."""

from __future__ import annotations

import random

import pytest

from llmfoundry_lite.config import ConfigError, load_config
from llmfoundry_lite.corpus.readers import InputError
from llmfoundry_lite.corpus.units import plan_units
from llmfoundry_lite.tokenizer.config import TokenizerConfig
from llmfoundry_lite.tokenizer.sample import SampleSpec, Selection, draw_sample, select_unit, strip_special_strings
from llmfoundry_lite.tokenizer.special import special_tokens
from llmfoundry_lite.tokenizer.train import config_fingerprint

from .sample_corpus import single_pass, write_corpus

BUDGETS = (1, 700, 3000, 9000, 10**7)  # one document .. a few .. everything (the corpus holds ~15 kB)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("sample") / "corpus")


def _same(a, b) -> None:
    assert a == b  # texts (in order), docs_seen, bytes, sha256, special strings removed, reader skips
    assert list(a.reader_skips.items()) == list(b.reader_skips.items())  # in first-seen order, as one pass


@pytest.mark.parametrize(("unit_bytes", "workers", "units"), [(1, 1, 89), (1, 3, 89), (200, 2, 66), (1500, 1, 22),
                                                             (10**9, 1, 4)])
def test_any_units_and_workers_give_the_single_pass_sample(corpus, unit_bytes, workers, units):
    assert len(plan_units([str(corpus)], unit_bytes)) == units  # 14 + 7 row groups, JSONL lines, one gzip file
    for budget in BUDGETS:
        for seed, max_doc_bytes in ((0, 150), (3, 100_000)):
            merged = draw_sample([str(corpus)], budget, seed, max_doc_bytes, 0, unit_bytes=unit_bytes, workers=workers)
            _same(merged, single_pass([str(corpus)], budget, seed, max_doc_bytes, 0))


def test_sample_matches_the_one_pass_golden(corpus):
    """Drawn before units existed (the sampler of the parent commit) on this corpus."""
    s = draw_sample([str(corpus)], 3000, 0, 150, 0, unit_bytes=1, workers=2)
    assert s.sha256 == "ec842f6aaa840463badb41a0af542b3d6e66feb383cf72b691f09aaecd357110"
    assert (len(s.texts), s.docs_seen, s.bytes, s.special_strings_removed) == (25, 133, 2898, 10)
    assert list(s.reader_skips.items()) == [("null_content", 1), ("empty", 1), ("bad_json_line", 4),
                                            ("json_not_object", 3)]


def test_one_id_for_every_document_takes_them_in_reading_order(tmp_path):
    """Identical keys: the place in the reading order (unit, position) decides, across units as one pass would."""
    root = write_corpus(tmp_path / "corpus", one_id="same")
    everything = single_pass([str(root)], 10**7, 0, 150, 0).texts  # reading order: all keys are equal
    for unit_bytes in (1, 200, 10**9):
        for budget in (1, 151, 1000, 4321):
            merged = draw_sample([str(root)], budget, 0, 150, 0, unit_bytes=unit_bytes, workers=2)
            _same(merged, single_pass([str(root)], budget, 0, 150, 0))
            assert merged.texts == everything[: len(merged.texts)]


def test_merge_order_and_grouping_do_not_matter(corpus):
    """Spark's tree reduce merges selections of non-adjacent units in any grouping: same sample every time."""
    spec = SampleSpec(3000, 0, 150)
    units = plan_units([str(corpus)], 1)
    expected = single_pass([str(corpus)], 3000, 0, 150, 0)
    rng = random.Random(0)
    for _ in range(5):
        parts = [select_unit(u, spec) for u in rng.sample(units, len(units))]
        while len(parts) > 1:  # random pairs, random side: a random tree
            i = rng.randrange(len(parts) - 1)
            a, b = parts.pop(i), parts.pop(i)
            parts.insert(i, a.merge(b) if rng.random() < 0.5 else b.merge(a))
        (merged,) = parts
        assert merged.docs_seen == expected.docs_seen == 133
        assert merged.reader_skips() == expected.reader_skips
        assert list(merged.reader_skips()) == list(expected.reader_skips)
        assert [strip_special_strings(t, special_tokens(0))[0] for t in merged.texts()] == expected.texts


def test_selections_hold_about_the_budget_and_bounds_prune(corpus):
    """A task holds at most the budget plus one document; a unit read with the bound of a full selection
    keeps only documents that can still be in the sample, and the merged sample is unchanged."""
    spec = SampleSpec(1500, 0, 10**5)
    units = plan_units([str(corpus)], 1500)
    longest = 400  # bytes of the corpus's longest document
    selections = [select_unit(u, spec) for u in units]
    assert all(s.total < spec.budget + longest for s in selections)
    head = Selection(spec.budget)
    for s in selections[:10]:
        head.merge(s)
    assert head.full() and head.total < spec.budget + longest
    bound = head.limit()
    pruned = [select_unit(u, spec, bound) for u in units[10:]]
    assert sum(len(p.heap) for p in pruned) < sum(len(s.heap) for s in selections[10:]) / 3
    assert all((-e[0], -e[1], -e[2]) <= bound for p in pruned for e in p.heap)
    for p in pruned:
        head.merge(p)
    unbounded = Selection(spec.budget)
    for s in selections:
        unbounded.merge(s)
    assert head.texts() == unbounded.texts()


def test_a_parquet_file_without_path_or_lang_is_refused_per_unit(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist([{"content": f"x = {i}\n"} for i in range(9)]), tmp_path / "a.parquet",
                   row_group_size=2)
    with pytest.raises(InputError, match="needs a 'path' or 'lang' column"):
        draw_sample([str(tmp_path / "a.parquet")], 100, 0, 100, 0, unit_bytes=1)


def test_runtime_keys_stay_out_of_the_fingerprint(corpus, tmp_path):
    base = TokenizerConfig(input=[str(corpus)], output=str(tmp_path / "a"))
    runtime = TokenizerConfig(input=[str(corpus)], output=str(tmp_path / "b"), overwrite=True, engine="spark",
                              workers=7, unit_bytes=123, spark_master="spark://h:7077", spark_python="/usr/bin/python3")
    assert config_fingerprint(runtime) == config_fingerprint(base)
    assert config_fingerprint(TokenizerConfig(input=[str(corpus)], sample_seed=1)) != config_fingerprint(base)


def test_engine_keys_are_validated():
    with pytest.raises(ConfigError, match=r"engine: unknown choice 'dask'; choose from \['local', 'spark'\]"):
        load_config(TokenizerConfig, None, ["engine=dask"])
    with pytest.raises(ConfigError, match="workers must be positive"):
        load_config(TokenizerConfig, None, ["workers=0"])
    with pytest.raises(ConfigError, match="unit_bytes must be positive"):
        load_config(TokenizerConfig, None, ["unit_bytes=0"])
