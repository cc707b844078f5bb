import pytest

from tests.training.shards import write_shards


@pytest.fixture(scope="session")
def tiny_shards(tmp_path_factory):
    """MDS train/val shards (seq 64) of real stdlib source, tokenized with the test tokenizer."""
    return write_shards(tmp_path_factory.mktemp("shards"))
