"""Fixtures shared with the training tests."""

from tests.training.conftest import tiny_shards  # noqa: F401  (a base model is pretrained on them)
