"""Training Detectron2's RetinaNet peer at the budget of a CenterNet config
(``tools/train_peer.py``), for AP-against-iteration curves (``tools/compare_runs.py``).

The peer is :mod:`.peers`' RetinaNet config (Detectron2's ``retinanet_R_50_FPN_1x.yaml`` with the
CenterNet config's classes, pixel mean/std and test size) trained by Detectron2's own
``DefaultTrainer`` and ``DatasetMapper``. What the two runs share and what stays each one's own:

* **The budget is the CenterNet config's**: the datasets, images per batch, iterations, LR
  schedule (scheduler, steps, gamma, warmup length), checkpoint and evaluation periods, seed,
  data loader workers, flips, test size and output folder.
* **The optimiser is Detectron2's**: SGD with its momentum and weight decay, and its BASE_LR
  0.01 for 16 images per batch scaled linearly to the budget's batch (Goyal et al.'s rule, which
  Detectron2's ``REFERENCE_WORLD_SIZE`` applies too): 0.01 at batch 16, 0.005 at batch 8. Its
  warmup keeps Detectron2's linear shape from 1/1000 of the LR, over the budget's
  ``WARMUP_ITERS``: Detectron2's 1000 warmup iterations would be all of a 1000-iteration run.
  It trains in float32, Detectron2's default, whatever the CenterNet config's ``SOLVER.AMP``.
* **The train scale range is the same**: CenterNet fits each image into a ``TRAIN_SIZE``
  canvas scaled by a factor from ``SCALE_RANGE``; the peer's ``ResizeShortestEdge`` samples the
  short side from the canvas's short side times that range ("range" sampling) and caps the long
  side at the largest canvas's long side, so a square image gets the same range of sizes. The peer
  is not cropped and gets no colour jitter: the rest of its augmentation is Detectron2's.
* **The backbone**: ResNet (depth 18 by default, :data:`DEFAULT_DEPTH`) + FPN from random
  weights, like the CPU configs. Its norm is the CenterNet config's ResNet norm when the
  CenterNet backbone is a ResNet, else "BN" (trainable BatchNorm, the norm of the MobileNets);
  "FrozenBN" becomes "BN", since from random weights a frozen BN is the identity (scale 1, shift
  0, mean 0, variance 1) and the backbone would train unnormalised. Nothing is frozen
  (``FREEZE_AT`` 0): freezing random weights only removes capacity.
* **The anchors are Detectron2's, scaled** by ``anchor_scale``: its sizes (32 px at P3 to
  512 * 2^(2/3) px at P7, four strides per side) are for COCO's objects at an 800 px short
  side; the shapes sets hold 4-256 px objects on 256-512 px images. The default
  :data:`DEFAULT_ANCHOR_SCALE` 1/4 makes each level's base anchor its stride (8 px at P3 ...
  128 px at P7, times 2^(0, 1/3, 2/3): 8-203 px), as a Detectron2 user scales anchors to their
  objects; 1.0 is Detectron2's recipe unchanged.

Evaluation is the CenterNet run's (:meth:`centernet_d2.engine.Trainer.build_evaluator`:
``COCOEvaluator`` for COCO-format sets), every ``TEST.EVAL_PERIOD`` iterations and at the end,
so ``metrics.json`` holds ``bbox/AP`` by iteration as a CenterNet run's does.
"""

import math
import os
from typing import List, Optional, Sequence, Tuple

from detectron2.config import CfgNode
from detectron2.engine import DefaultTrainer

from centernet_d2.engine import Trainer

from .peers import _peer_cfg

__all__ = [
    "TRAINABLE_PEERS",
    "DEFAULT_DEPTH",
    "DEFAULT_ANCHOR_SCALE",
    "RESNET_DEPTHS",
    "PeerTrainer",
    "peer_training_cfg",
    "scaled_anchor_sizes",
    "shortest_edge_range",
]

# the peers trainable from a Detectron2 config (v0.6 has no FCOS config)
TRAINABLE_PEERS = ("retinanet",)
DEFAULT_DEPTH = 18
RESNET_DEPTHS = (18, 34, 50, 101, 152)
# each FPN level's base anchor side = its stride (Detectron2's is 4 strides: 32 px at P3's 8)
DEFAULT_ANCHOR_SCALE = 0.25
# the run's data, budget, schedule, device and output folder: the CenterNet config's, as they are
BUDGET_KEYS = (
    "DATASETS.TRAIN",
    "DATASETS.TEST",
    "DATALOADER.NUM_WORKERS",
    "SOLVER.IMS_PER_BATCH",
    "SOLVER.MAX_ITER",
    "SOLVER.LR_SCHEDULER_NAME",
    "SOLVER.STEPS",
    "SOLVER.GAMMA",
    "SOLVER.WARMUP_ITERS",
    "SOLVER.CHECKPOINT_PERIOD",
    "TEST.EVAL_PERIOD",
    "INPUT.RANDOM_FLIP",
    "SEED",
    "OUTPUT_DIR",
    "MODEL.DEVICE",
)


def shortest_edge_range(
    train_size: Sequence[int], scale_range: Sequence[float]
) -> Tuple[Tuple[int, int], int]:
    """Detectron2's ``ResizeShortestEdge`` settings for CenterNet's training scales.

    Args:
        train_size: the canvas (height, width), input pixels (``INPUT.CENTERNET.TRAIN_SIZE``).
        scale_range: (low, high) factors of the canvas (``INPUT.CENTERNET.SCALE_RANGE``).

    Returns:
        ((shortest side low, high), longest side cap), pixels: ``INPUT.MIN_SIZE_TRAIN`` with
        "range" sampling, and ``INPUT.MAX_SIZE_TRAIN``.
    """
    lo, hi = scale_range
    if not 0 < lo <= hi:
        raise ValueError(f"INPUT.CENTERNET.SCALE_RANGE must be 0 < low <= high, got {scale_range}")
    short, long = min(train_size), max(train_size)
    return (round(short * lo), round(short * hi)), round(long * hi)


def scaled_anchor_sizes(sizes: Sequence[Sequence[float]], scale: float) -> List[List[float]]:
    """Anchor sizes (per level, pixels) times ``scale``; ``ValueError`` unless ``scale > 0``."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"the anchor scale must be a positive number, got {scale}")
    return [[s * scale for s in level] for level in sizes]


def peer_training_cfg(
    cfg: CfgNode,
    peer: str = "retinanet",
    depth: int = DEFAULT_DEPTH,
    anchor_scale: float = DEFAULT_ANCHOR_SCALE,
) -> CfgNode:
    """The Detectron2 config that trains ``peer`` at the budget of the CenterNet config ``cfg``
    (see the module docstring); ``cfg`` is not changed.

    Args:
        depth: the peer's ResNet depth, one of :data:`RESNET_DEPTHS`.
        anchor_scale: factor of Detectron2's anchor sizes, > 0.
    """
    if peer not in TRAINABLE_PEERS:
        raise ValueError(f"peer must be one of {TRAINABLE_PEERS}, got {peer!r}")
    if depth not in RESNET_DEPTHS:
        raise ValueError(f"the peer's ResNet depth must be one of {RESNET_DEPTHS}, got {depth}")
    source = cfg.clone()
    source.MODEL.RESNETS.DEPTH = depth
    out = _peer_cfg(source)
    # Detectron2's LR for its batch, scaled to the budget's batch (copied below)
    out.SOLVER.BASE_LR *= cfg.SOLVER.IMS_PER_BATCH / out.SOLVER.IMS_PER_BATCH
    for key in BUDGET_KEYS:
        node, leaf = _node(out, key), key.rsplit(".", 1)[-1]
        node[leaf] = _node(cfg, key)[leaf]
    (lo, hi), max_size = shortest_edge_range(
        cfg.INPUT.CENTERNET.TRAIN_SIZE, cfg.INPUT.CENTERNET.SCALE_RANGE
    )
    out.INPUT.MIN_SIZE_TRAIN = (lo, hi)
    out.INPUT.MIN_SIZE_TRAIN_SAMPLING = "range"
    out.INPUT.MAX_SIZE_TRAIN = max_size
    out.MODEL.ANCHOR_GENERATOR.SIZES = scaled_anchor_sizes(
        out.MODEL.ANCHOR_GENERATOR.SIZES, anchor_scale
    )
    if "resnet" not in cfg.MODEL.BACKBONE.NAME or out.MODEL.RESNETS.NORM == "FrozenBN":
        out.MODEL.RESNETS.NORM = "BN"
    out.MODEL.BACKBONE.FREEZE_AT = 0
    out.MODEL.WEIGHTS = ""
    return out


def _node(cfg: CfgNode, key: str) -> CfgNode:
    """The node holding the dotted ``key``'s leaf."""
    node = cfg
    for part in key.split(".")[:-1]:
        node = node[part]
    return node


class PeerTrainer(DefaultTrainer):
    """Detectron2's ``DefaultTrainer`` (its model, ``DatasetMapper``, SGD, hooks and writers)
    with the AP evaluators of CenterNet's :class:`~centernet_d2.engine.Trainer` (its error
    analysis needs CenterNet's config keys)."""

    @classmethod
    def build_evaluator(cls, cfg: CfgNode, dataset_name: str, output_folder: Optional[str] = None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return Trainer.build_ap_evaluator(cfg, dataset_name, output_folder)
