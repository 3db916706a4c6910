"""CenterNet's training augmentation, built from Detectron2's transforms.

Detectron2's resizes round each side on its own, so an image of extreme aspect ratio (1 x 1000
pixels) gets a side of 0 pixels, which PIL refuses. :class:`ResizeShortestEdge` and
:class:`ResizeScale` here are Detectron2's, except that no side becomes smaller than
:data:`MIN_RESIZED_SIDE`.
"""

from typing import List

import numpy as np
from detectron2.config import CfgNode
from detectron2.data import transforms as T

__all__ = [
    "MIN_RESIZED_SIDE",
    "ResizeScale",
    "ResizeShortestEdge",
    "at_least_min_side",
    "build_centernet_augmentation",
]

MIN_RESIZED_SIDE = 1  # pixels: the smallest side a resize makes


def at_least_min_side(transform: T.Transform) -> T.Transform:
    """``transform``, or, if it is a ``ResizeTransform`` to a side smaller than
    :data:`MIN_RESIZED_SIDE`, the same resize with that side raised to it (the aspect ratio then
    changes a little: a 1 x 1000 image scaled by 0.064 becomes 1 x 64, not 0 x 64)."""
    if not isinstance(transform, T.ResizeTransform):
        return transform
    new_h, new_w = transform.new_h, transform.new_w
    if min(new_h, new_w) >= MIN_RESIZED_SIDE:
        return transform
    new_h, new_w = max(new_h, MIN_RESIZED_SIDE), max(new_w, MIN_RESIZED_SIDE)
    return T.ResizeTransform(transform.h, transform.w, new_h, new_w, transform.interp)


class ResizeShortestEdge(T.ResizeShortestEdge):
    """Detectron2's ``ResizeShortestEdge`` (same arguments) whose output sides are at least
    :data:`MIN_RESIZED_SIDE` pixels."""

    def get_transform(self, image: np.ndarray) -> T.Transform:
        return at_least_min_side(super().get_transform(image))


class ResizeScale(T.ResizeScale):
    """Detectron2's ``ResizeScale`` (same arguments) whose output sides are at least
    :data:`MIN_RESIZED_SIDE` pixels."""

    def get_transform(self, image: np.ndarray) -> T.Transform:
        return at_least_min_side(super().get_transform(image))


def build_centernet_augmentation(cfg: CfgNode, is_train: bool) -> List[T.Augmentation]:
    """The paper's augmentation for training: random scale (``INPUT.CENTERNET.SCALE_RANGE``) of a
    ``INPUT.CENTERNET.TRAIN_SIZE`` canvas, random crop / pad to that size, horizontal flip
    (``INPUT.RANDOM_FLIP``) and brightness / contrast / saturation jitter
    (``INPUT.CENTERNET.COLOR_JITTER``). For testing, ``ResizeShortestEdge`` from
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``. Both resizes keep every side at least
    :data:`MIN_RESIZED_SIDE` pixels.
    """
    if not is_train:
        return [ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    c = cfg.INPUT.CENTERNET
    height, width = c.TRAIN_SIZE
    lo, hi = c.SCALE_RANGE
    if not 0 < lo <= hi:
        raise ValueError(
            f"INPUT.CENTERNET.SCALE_RANGE must be 0 < low <= high, got {c.SCALE_RANGE}"
        )
    augs = [
        ResizeScale(min_scale=lo, max_scale=hi, target_height=height, target_width=width),
        T.FixedSizeCrop(crop_size=(height, width)),
    ]
    if cfg.INPUT.RANDOM_FLIP != "none":
        augs.append(
            T.RandomFlip(
                horizontal=cfg.INPUT.RANDOM_FLIP == "horizontal",
                vertical=cfg.INPUT.RANDOM_FLIP == "vertical",
            )
        )
    if c.COLOR_JITTER > 0:
        j = c.COLOR_JITTER
        augs += [
            T.RandomBrightness(1 - j, 1 + j),
            T.RandomContrast(1 - j, 1 + j),
            T.RandomSaturation(1 - j, 1 + j),
        ]
    return augs
