"""CenterNet's training augmentation, built from Detectron2's transforms."""

from typing import List

from detectron2.config import CfgNode
from detectron2.data import transforms as T

__all__ = ["build_centernet_augmentation"]


def build_centernet_augmentation(cfg: CfgNode, is_train: bool) -> List[T.Augmentation]:
    """The paper's augmentation for training: random scale (``INPUT.CENTERNET.SCALE_RANGE``) of a
    ``INPUT.CENTERNET.TRAIN_SIZE`` canvas, random crop / pad to that size, horizontal flip
    (``INPUT.RANDOM_FLIP``) and brightness / contrast / saturation jitter
    (``INPUT.CENTERNET.COLOR_JITTER``). For testing, Detectron2's ``ResizeShortestEdge`` from
    ``INPUT.MIN_SIZE_TEST`` / ``MAX_SIZE_TEST``.
    """
    if not is_train:
        return [T.ResizeShortestEdge(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST, "choice")]
    c = cfg.INPUT.CENTERNET
    height, width = c.TRAIN_SIZE
    lo, hi = c.SCALE_RANGE
    if not 0 < lo <= hi:
        raise ValueError(
            f"INPUT.CENTERNET.SCALE_RANGE must be 0 < low <= high, got {c.SCALE_RANGE}"
        )
    augs = [
        T.ResizeScale(min_scale=lo, max_scale=hi, target_height=height, target_width=width),
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
