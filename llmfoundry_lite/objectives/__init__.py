"""Training objectives applied at load time to packed token contexts.

Contract used by the training loader: ``build_objective(cfg, ...)`` returns an
``Objective``; calling it with one packed MDS sample (int32 tokens of length
``max_seq_len``, documents separated by end-of-text) plus the sample's global
index and epoch returns ``input_ids`` and ``labels`` (int64, same length,
``-100`` wherever no loss is wanted). Every random draw derives from
``(seed, sample_index, epoch)`` so results never depend on worker count or call order.
"""

from llmfoundry_lite.objectives.config import ObjectiveConfig
from llmfoundry_lite.objectives.mixture import Objective, build_objective

__all__ = ["ObjectiveConfig", "Objective", "build_objective"]
