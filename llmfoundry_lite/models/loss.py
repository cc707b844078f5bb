"""The training loss and the token counts that weight it — one definition of the label shift.

Position t predicts ``labels[t + 1]``; ``-100`` marks positions without loss. A sample's
*loss-generating tokens* are therefore the labels at positions 1.. that are not -100: the
data spec counts exactly these (so Composer can weight microbatches and ranks by them) and
the loss below averages over exactly these.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE_INDEX = -100


def shifted_labels(labels_BT: torch.Tensor) -> torch.Tensor:
    """Labels moved one step left (position t scores ``labels[t + 1]``); the last position gets -100."""
    return F.pad(labels_BT[:, 1:], (0, 1), value=IGNORE_INDEX)


def loss_token_count(labels_BT: torch.Tensor) -> torch.Tensor:
    """Number of loss-generating tokens in a batch (0-dim int64 tensor)."""
    return (labels_BT[:, 1:] != IGNORE_INDEX).sum()


def token_sum_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(summed next-token cross-entropy, number of loss-generating tokens); float32 math.

    The labels are shifted rather than the logits sliced, so the (B·T, V) logits reach the
    cross-entropy call as a view, without a copy.
    """
    V = logits_BTV.shape[-1]
    target = shifted_labels(labels_BT).reshape(-1)
    total = F.cross_entropy(logits_BTV.reshape(-1, V).float(), target, ignore_index=IGNORE_INDEX, reduction="sum")
    return total, (target != IGNORE_INDEX).sum()


def lm_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the loss-generating tokens of this (micro)batch.

    A batch without any (e.g. a microbatch of UL2 samples whose targets were all cut, or only
    padding) gives 0 with a zero gradient instead of 0/0 = NaN. Across microbatches and ranks
    Composer weights each of these means by its token count (see ``training/parallel.py``), so
    the optimizer sees the mean over every loss-generating token of the global batch.
    """
    total, count = token_sum_loss(logits_BTV, labels_BT)
    return total / count.clamp(min=1)


POISON_KEY = "poison_B"
"""Batch key of the fault-injection drill (``training/config.py`` ``fault_injection``): a per-sample
factor on the loss — NaN poisons a sample's loss, S > 1 scales it into a spike. Absent in real runs."""


def poisoned_lm_loss(logits_BTV: torch.Tensor, labels_BT: torch.Tensor, poison_B: torch.Tensor) -> torch.Tensor:
    """``lm_loss`` with each sample's token losses multiplied by ``poison_B`` (a drill, never a real run).

    ``torch.where`` rather than a product keeps the ignored positions at 0: 0 × NaN would poison them too.
    """
    B, T, V = logits_BTV.shape
    target_BT = shifted_labels(labels_BT)
    ce_BT = F.cross_entropy(logits_BTV.reshape(-1, V).float(), target_BT.reshape(-1), ignore_index=IGNORE_INDEX,
                            reduction="none").view(B, T)
    keep_BT = target_BT != IGNORE_INDEX
    total = torch.where(keep_BT, ce_BT * poison_B.to(ce_BT.dtype)[:, None], torch.zeros_like(ce_BT)).sum()
    return total / keep_BT.sum().clamp(min=1)
