"""CenterNet's losses as tensor functions returning sums; the caller normalises.

Shape shorthand:
    N: images, K: classes, M: objects, H/W: output grid.
"""

from dataclasses import dataclass, field
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from fvcore.nn import giou_loss
from torch import Tensor

__all__ = [
    "LossSettings",
    "heatmap_focal_loss",
    "l1_at_peaks",
    "gather_at_peaks",
    "weighted_giou_loss",
]


@dataclass(frozen=True)
class LossSettings:
    """A model's loss settings (``MODEL.CENTERNET.*``).

    Attributes:
        weights: factor of each loss: "loss_heatmap" (``HEATMAP_WEIGHT``) and "loss_size",
            "loss_offset" (``SIZE_WEIGHT``, ``OFFSET_WEIGHT``; "size_offset" box head) or
            "loss_box" (``BOX_WEIGHT``; "ltrb" box head).
        focal_alpha, focal_beta: exponents of :func:`heatmap_focal_loss` (``FOCAL_ALPHA``,
            ``FOCAL_BETA``).
        focal_balance: ``balance`` of :func:`heatmap_focal_loss` (``FOCAL_BALANCE``; < 0: none).
    """

    weights: Dict[str, float] = field(
        default_factory=lambda: {
            "loss_heatmap": 1.0,
            "loss_size": 0.1,
            "loss_offset": 1.0,
            "loss_box": 5.0,
        }
    )  # the config's defaults; a box head reads the weights of its own losses
    focal_alpha: float = 2.0
    focal_beta: float = 4.0
    focal_balance: float = -1.0


def heatmap_focal_loss(
    logits: Tensor,
    target: Tensor,
    alpha: float = 2.0,
    beta: float = 4.0,
    positive: Optional[Tensor] = None,
    balance: float = -1.0,
) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet eq. 1, CenterNet eq. 1), summed.

    With ``p = sigmoid(logits)`` and gaussian target ``y``::

        -(1 - p)^alpha log(p)                   at the positives (default: where y == 1)
        -(1 - y)^beta p^alpha log(1 - p)        elsewhere

    ``log(p)`` and ``log(1 - p)`` are ``logsigmoid(x)`` and ``logsigmoid(-x)``, finite for any
    finite logit, so no clamping of ``p`` is needed. Inputs are not modified. With ``balance`` in
    [0, 1] the positive term is multiplied by it and the negative one by ``1 - balance``
    (RetinaNet's alpha, CenterNet2's ``HM_FOCAL_ALPHA``); negative: no such factor.

    Args:
        logits: (N, K, ...) heatmap logits.
        target: (N, K, ...) gaussian heatmap in [0, 1], 1 at object centres.
        positive: (N, K, ...) bool, the positives when not all of ``target == 1`` are (the
            multi-level heatmaps are 1 at an object's centre on every level, positive on its
            own levels only: elsewhere ``(1 - y)^beta`` = 0 ignores it).
    Returns:
        scalar, the sum over all positions; divide by the number of objects.
    """
    logits = logits.float()
    pos = target == 1 if positive is None else positive
    # (1 - y)^beta is 0 where y == 1, so the negative term needs no mask (and no second dense
    # tensor kept for backward); the positive term is evaluated at the positives only.
    neg_loss = ((1 - target) ** beta * torch.sigmoid(logits) ** alpha * F.logsigmoid(-logits)).sum()
    x = logits[pos]
    pos_loss = ((1 - torch.sigmoid(x)) ** alpha * F.logsigmoid(x)).sum()
    if balance >= 0:
        pos_loss, neg_loss = balance * pos_loss, (1 - balance) * neg_loss
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


def _ltrb_to_xyxy(ltrb: Tensor) -> Tensor:
    """(P, 4) distances (l, t, r, b) from a point -> (P, 4) XYXY box with the point at 0."""
    return torch.cat([-ltrb[:, :2], ltrb[:, 2:]], dim=1)


def weighted_giou_loss(pred: Tensor, target: Tensor, weight: Tensor) -> Tensor:
    """TTFNet's box loss: the GIoU loss ``1 - GIoU`` (fvcore's ``giou_loss``) of the predicted
    and target boxes of every cell with a positive weight, times that weight, summed.

    Both boxes of a cell are given as distances from the same point, the cell centre; GIoU does
    not change under translation, so they are compared as boxes around 0.

    Args:
        pred: (N, 4, H, W) predicted (l, t, r, b) >= 0, any unit.
        target: (N, 4, H, W) target (l, t, r, b) in the same unit, with l + r > 0 and t + b > 0
            where ``weight`` > 0.
        weight: (N, H, W) >= 0, see :func:`~.targets.ltrb_targets`.
    Returns:
        scalar; divide by ``weight.sum()``.
    """
    mask = weight > 0  # (N, H, W)
    p = pred.permute(0, 2, 3, 1)[mask].float()  # (P, 4)
    t = target.permute(0, 2, 3, 1)[mask].float()
    return (giou_loss(_ltrb_to_xyxy(p), _ltrb_to_xyxy(t)) * weight[mask]).sum()
