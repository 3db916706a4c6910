"""``MultiLevelCenterNet``: CenterNet2's one-stage multi-level CenterNet ("Probabilistic two-stage
detection", Zhou, Koltun and Krähenbühl 2021, its first stage alone) as a subclass of
:class:`~.meta_arch.CenterNet` that replaces the stages of targets, losses and decoding.

Shape shorthand:
    N: images, K: classes, L: levels, H_l/W_l: output grid of level l, P: positions of all levels,
    T: candidates of all levels (``pre_nms_topk`` per level).
"""

from typing import Dict, List, Tuple

from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import ImageList, Instances
from torch import Tensor

from .decode import InferenceSettings, decode_levels
from .level_targets import LevelTargets, build_level_targets, flatten_levels
from .losses import heatmap_focal_loss, weighted_giou_loss
from .meta_arch import CenterNet
from .targets import check_size_ranges
from .tta import merge_flipped

__all__ = ["MultiLevelCenterNet"]


@META_ARCH_REGISTRY.register()
class MultiLevelCenterNet(CenterNet):
    """CenterNet2's one-stage multi-level CenterNet: a head shared by the levels of a pyramid
    (P3-P7, ``head_in_features`` finest first), objects assigned to levels by size
    (``SIZE_RANGES``), ltrb GIoU regression near the centre (:mod:`.level_targets`,
    ``TARGET_KIND`` "multilevel") and decoding across levels with a class-wise NMS.

    The head's outputs are lists over the levels. Stages replaced: :meth:`build_targets`,
    :meth:`losses` (focal loss divided by the positives, GIoU loss by the regressed cells, as
    CenterNet2), :meth:`decode` (each level's ``pre_nms_topk`` best candidates, fixed-size) and
    :meth:`inference` (the score threshold, then the NMS and the ``topk`` best: :attr:`nms_settings`).
    """

    per_level = True

    @configurable
    def __init__(self, *, inference_settings: InferenceSettings = InferenceSettings(), **kwargs):
        """
        Args:
            inference_settings: as :class:`~.meta_arch.CenterNet`'s, its ``nms_thresh`` and
                ``pre_nms_topk`` used here.
            kwargs: :class:`~.meta_arch.CenterNet`'s other arguments, with several
                ``head_in_features``, an "ltrb" head, ``target_settings.kind`` "multilevel" and
                one size range per level.
        """
        super().__init__(inference_settings=inference_settings, **kwargs)
        self.test_nms_thresh = inference_settings.nms_thresh
        self.test_pre_nms_topk = inference_settings.pre_nms_topk

    @staticmethod
    def check_levels(head_in_features, head, target_settings, keypoint_settings) -> None:
        """``ValueError`` unless the targets are level targets with one size range per level,
        the head regresses ltrb boxes, and there are no keypoints."""
        if target_settings.kind != "multilevel":
            raise ValueError(
                "MultiLevelCenterNet draws level targets: set MODEL.CENTERNET.TARGET_KIND "
                f"'multilevel', got {target_settings.kind!r}"
            )
        if head.box_head != "ltrb":
            raise ValueError(
                "MultiLevelCenterNet regresses ltrb boxes: set MODEL.CENTERNET.BOX_HEAD 'ltrb', "
                f"got {head.box_head!r}"
            )
        if len(target_settings.size_ranges) != len(head_in_features):
            raise ValueError(
                f"MODEL.CENTERNET.SIZE_RANGES has {len(target_settings.size_ranges)} ranges for "
                f"{len(head_in_features)} levels {list(head_in_features)}: give one per level"
            )
        check_size_ranges(target_settings.size_ranges)
        if keypoint_settings is not None:
            raise ValueError(
                "keypoints (MODEL.KEYPOINT_ON) need the single-level MODEL.META_ARCHITECTURE "
                "'CenterNet', not 'MultiLevelCenterNet'"
            )

    def finest_heatmap(self, predictions: Dict[str, List[Tensor]]) -> Tensor:
        return predictions["heatmap"][0]

    def build_targets(
        self,
        images: ImageList,
        predictions: Dict[str, List[Tensor]],
        gt_instances: List[Instances],
    ) -> LevelTargets:
        """The level targets (:func:`~.level_targets.build_level_targets`) on the levels' grids
        of ``predictions``."""
        heatmaps = predictions["heatmap"]
        return build_level_targets(
            gt_instances,
            images.image_sizes,
            heatmaps[0].shape[1],
            [tuple(x.shape[2:]) for x in heatmaps],
            self.strides,
            self.target_settings,
        )

    def losses(
        self, predictions: Dict[str, List[Tensor]], targets: LevelTargets
    ) -> Dict[str, Tensor]:
        """The heatmap focal loss divided by the positives per image batch, the GIoU loss by
        the regressed cells per image batch (CenterNet2), each times its weight."""
        s = self.loss_settings
        normalizer = self._objects_per_worker(targets.num_objects)
        heatmap = heatmap_focal_loss(
            flatten_levels(predictions["heatmap"]),
            targets.heatmap,
            s.focal_alpha,
            s.focal_beta,
            positive=targets.positive,
            balance=s.focal_balance,
        )
        box = flatten_levels(predictions["box"])[:, :, None]  # (N, 4, 1, P)
        box_loss = weighted_giou_loss(box, targets.box[:, :, None], targets.box_weight[:, None])
        cells = self._mean_over_workers(float(targets.box_weight.sum()))
        return {
            "loss_heatmap": heatmap * (s.weights["loss_heatmap"] / normalizer),
            "loss_box": box_loss * (s.weights["loss_box"] / max(cells, 1.0)),
        }

    def decode(self, predictions: Dict[str, List[Tensor]]) -> Tuple[Tensor, Tensor, Tensor]:
        """The candidates of every level before the NMS (:func:`~.decode.decode_levels`),
        fixed-size: boxes (N, T, 4) XYXY input pixels, scores (N, T), classes (N, T) long."""
        return decode_levels(
            predictions["heatmap"], predictions["box"], self.strides, self.test_pre_nms_topk
        )

    @property
    def nms_settings(self) -> Tuple[float, int]:
        """:meth:`inference` runs a class-wise NMS of IoU ``test_nms_thresh`` on :meth:`decode`'s
        candidates above the score threshold and keeps the ``test_topk`` best."""
        return self.test_nms_thresh, self.test_topk

    def merge_mirrored(self, predictions, mirrored, keypoint_flip_indices=None):
        """The flip test level by level (:func:`~.tta.merge_flipped`)."""
        levels = [
            merge_flipped(
                {k: v[i] for k, v in predictions.items()},
                {k: v[i] for k, v in mirrored.items()},
                self.box_head,
            )
            for i in range(len(predictions["heatmap"]))
        ]
        return {k: [level[k] for level in levels] for k in levels[0]}
