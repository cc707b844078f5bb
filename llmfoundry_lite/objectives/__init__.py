"""Training objectives applied at load time to packed token contexts.

Contract used by the training loader: ``build_objective(cfg, ...)`` returns an
``Objective``; calling it with one packed MDS sample (int32 tokens of length
``max_seq_len``, documents separated by end-of-text) plus the sample's global
index and epoch returns ``input_ids``, ``labels`` (``-100`` wherever no loss is
wanted) and ``segment_ids`` (the document of each token for attention masking: 1, 2,
3, ... in order, 0 exactly on padding), all int64 of length ``max_seq_len``; with
``prefix_lm`` also ``prefix_len`` (int64 scalar). Every random draw derives from
``(seed, sample_index, epoch)`` so results never depend on worker count or call order.
"""

from llmfoundry_lite.objectives.config import ObjectiveConfig
from llmfoundry_lite.objectives.mixture import Objective, build_objective

__all__ = ["ObjectiveConfig", "Objective", "build_objective"]
