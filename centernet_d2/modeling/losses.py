"""CenterNet's losses as tensor functions returning sums; the caller normalises.

Shape shorthand:
    N: images, K: classes, M: objects, H/W: output grid.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["heatmap_focal_loss", "l1_at_peaks", "gather_at_peaks"]


def heatmap_focal_loss(
    logits: Tensor, target: Tensor, alpha: float = 2.0, beta: float = 4.0
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet eq. 1, CenterNet eq. 1), summed.

    With ``p = sigmoid(logits)`` and gaussian target ``y``::

        -(1 - p)^alpha log(p)                   where y == 1
        -(1 - y)^beta p^alpha log(1 - p)        elsewhere

    ``log(p)`` and ``log(1 - p)`` are ``logsigmoid(x)`` and ``logsigmoid(-x)``, finite for any
    finite logit, so no clamping of ``p`` is needed. Inputs are not modified.

    Args:
        logits: (N, K, H, W) heatmap logits.
        target: (N, K, H, W) gaussian heatmap in [0, 1], exactly 1 at object centres.
    Returns:
        scalar, the sum over all positions; divide by the number of objects.
    """
    logits = logits.float()
    pos = target == 1
    # (1 - y)^beta is 0 where y == 1, so the negative term needs no mask (and no second dense
    # tensor kept for backward); the positive term is evaluated at the peaks only.
    neg_loss = ((1 - target) ** beta * torch.sigmoid(logits) ** alpha * F.logsigmoid(-logits)).sum()
    x = logits[pos]
    pos_loss = ((1 - torch.sigmoid(x)) ** alpha * F.logsigmoid(x)).sum()
    return -(pos_loss + neg_loss)


def gather_at_peaks(pred: Tensor, index: Tensor) -> Tensor:
    """Pick the prediction vectors at flat positions.

    Args:
        pred: (N, C, H, W) dense prediction.
        index: (M,) long ``image * H * W + y * W + x``.
    Returns:
        (M, C).
    """
    N, C, H, W = pred.shape
    return pred.permute(0, 2, 3, 1).reshape(N * H * W, C)[index]


def l1_at_peaks(pred: Tensor, index: Tensor, target: Tensor) -> Tensor:
    """L1 loss of a dense regression at object centres: per object the mean over its C values
    (the reference code's per-coordinate normalisation), summed over objects.

    Args:
        pred: (N, C, H, W) dense prediction.
        index: (M,) long flat peak positions, see :func:`gather_at_peaks`.
        target: (M, C).
    Returns:
        scalar; divide by the number of objects.
    """
    return (gather_at_peaks(pred, index).float() - target).abs().mean(dim=1).sum()
