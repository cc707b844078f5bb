"""Fixtures shared with the training tests."""

import pytest

from llmfoundry_lite.config import load_config
from tests.training.conftest import tiny_shards  # noqa: F401  (a base model is pretrained on them)
from tests.training.shards import ROOT, tiny_overrides


@pytest.fixture(scope="module")
def base_checkpoint(tiny_shards, tmp_path_factory):  # noqa: F811  (the fixture imported above)
    """A 2-layer decoder pretrained for 2 steps on the fixture shards: its save folder."""
    from llmfoundry_lite.training.config import TrainConfig
    from llmfoundry_lite.training.trainer import build_trainer

    save = tmp_path_factory.mktemp("base")
    cfg = load_config(TrainConfig, ROOT / "yamls/code-tiny.yaml",
                      tiny_overrides(tiny_shards, save, max_duration="2ba", eval_interval="2ba", save_interval="2ba"))
    trainer = build_trainer(cfg)
    trainer.fit()
    trainer.close()
    return save
