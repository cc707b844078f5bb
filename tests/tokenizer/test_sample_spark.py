"""The vocabulary's sample on Spark: the same tokenizer as the local engine, and the driver reads no document."""

from __future__ import annotations

import json

import pytest

from llmfoundry_lite.tokenizer.config import TokenizerConfig
from llmfoundry_lite.tokenizer.train import train_tokenizer

from .sample_corpus import write_corpus


def _cfg(corpus, out, **kw) -> TokenizerConfig:
    base = {"num_reserved": 0, "vocab_size": 640, "sample_bytes": 6000, "unit_bytes": 300}
    return TokenizerConfig(input=[str(corpus)], output=str(out), **{**base, **kw})


def _refuse_reading_the_corpus(monkeypatch) -> None:
    """Every way this process could open a corpus file or read a unit raises (executors are other processes)."""
    from llmfoundry_lite.corpus import readers, units
    from llmfoundry_lite.tokenizer import sample

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"the driver read the corpus: {args}")

    for module, name in ((readers, "open_binary"), (readers, "parquet_source"), (units, "open_binary"),
                         (units, "iter_unit"), (sample, "iter_unit")):
        monkeypatch.setattr(module, name, refuse)


@pytest.mark.slow
def test_spark_trains_the_same_vocabulary_as_local(tmp_path, spark):
    corpus = write_corpus(tmp_path / "corpus")
    local = train_tokenizer(_cfg(corpus, tmp_path / "local", workers=2), log=False)
    on_spark = train_tokenizer(_cfg(corpus, tmp_path / "spark", engine="spark"), log=False)
    assert (tmp_path / "spark" / "tokenizer.json").read_bytes() == (tmp_path / "local" / "tokenizer.json").read_bytes()
    assert on_spark["sample"] == local["sample"] and on_spark["config_fingerprint"] == local["config_fingerprint"]
    assert list(on_spark["sample"]["reader_skips"].items()) == list(local["sample"]["reader_skips"].items())
    assert local["sample"]["docs_seen"] == 133 and 0 < local["sample"]["docs"] < 133  # a real subsample
    manifest = json.loads((tmp_path / "spark" / "manifest.json").read_text())
    assert manifest["sample"]["sha256"] == local["sample"]["sha256"]
    assert not spark.sparkContext._jsc.sc().isStopped()  # a session it did not create is left running


@pytest.mark.slow
def test_spark_driver_reads_no_document(tmp_path, spark, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    expected = train_tokenizer(_cfg(corpus, tmp_path / "local"), log=False)
    _refuse_reading_the_corpus(monkeypatch)
    with pytest.raises(AssertionError, match="the driver read the corpus"):  # the guard bites where it should
        train_tokenizer(_cfg(corpus, tmp_path / "guarded", unit_bytes=10**9), log=False)
    on_spark = train_tokenizer(_cfg(corpus, tmp_path / "spark", engine="spark"), log=False)
    assert on_spark["sample"] == expected["sample"] and on_spark["tokenizer_sha256"] == expected["tokenizer_sha256"]


@pytest.mark.slow
def test_spark_unusable_input_is_raised_on_the_driver_as_input_error(tmp_path, spark):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from llmfoundry_lite.corpus.readers import InputError

    corpus = write_corpus(tmp_path / "corpus")
    pq.write_table(pa.Table.from_pylist([{"content": f"x = {i}\n"} for i in range(9)]), corpus / "e.parquet",
                   row_group_size=2)  # no path or lang column: refused by the unit's reader on an executor
    with pytest.raises(InputError, match=r"e\.parquet: needs a 'path' or 'lang' column"):
        train_tokenizer(_cfg(corpus, tmp_path / "spark", engine="spark"), log=False)
