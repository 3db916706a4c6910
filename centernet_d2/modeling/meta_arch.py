"""The ``CenterNet`` meta-architecture: wiring of backbone, head, targets, losses and decoding.

Shape shorthand:
    N: images, K: classes, H/W: output grid of the head's feature (stride ``self.stride``).
"""

import logging
from typing import Dict, List

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.structures import ImageList, Instances
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from .decode import decode_boxes, to_instances
from .head import CenterNetHead
from .losses import heatmap_focal_loss, l1_at_peaks
from .targets import TARGET_KINDS, build_targets

__all__ = ["CenterNet"]

logger = logging.getLogger(__name__)


@META_ARCH_REGISTRY.register()
class CenterNet(DenseDetector):
    """CenterNet ("Objects as Points", Zhou et al. 2019): objects are heatmap peaks on one
    stride-4 map, with their size and sub-cell offset regressed at the peak. No anchors, no NMS.

    Training returns ``{"loss_heatmap", "loss_size", "loss_offset"}``, each already weighted;
    inference returns ``[{"instances": Instances(pred_boxes, scores, pred_classes)}]`` in the size
    given by each input's "height"/"width" (the original image), like Detectron2's detectors.
    """

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: List[str],
        pixel_mean,
        pixel_std,
        loss_weights: Dict[str, float],
        target_kind: str = "cornernet",
        min_overlap: float = 0.7,
        ttf_alpha: float = 0.54,
        focal_alpha: float = 2.0,
        focal_beta: float = 4.0,
        test_score_thresh: float = 0.05,
        test_topk: int = 100,
        channels_last: bool = False,
    ):
        """
        Args:
            backbone, head, head_in_features, pixel_mean, pixel_std: as in ``DenseDetector``;
                ``head_in_features`` names the one feature the head runs on.
            loss_weights: factor of each of "loss_heatmap", "loss_size", "loss_offset".
            target_kind, min_overlap, ttf_alpha: gaussian targets, see :func:`build_targets`.
            focal_alpha, focal_beta: exponents of :func:`heatmap_focal_loss`.
            test_score_thresh: detections below this score are dropped at inference.
            test_topk: detections kept per image before the score threshold.
            channels_last: keep weights and images in channels-last memory format (faster
                convolutions with oneDNN on CPU and with tensor cores on GPU).
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        if len(head_in_features) != 1:
            raise ValueError(
                f"MODEL.CENTERNET.IN_FEATURES must name one feature, got {head_in_features}"
            )
        if target_kind not in TARGET_KINDS:
            raise ValueError(
                f"MODEL.CENTERNET.TARGET_KIND must be one of {TARGET_KINDS}, got {target_kind!r}"
            )
        self.stride = backbone.output_shape()[head_in_features[0]].stride
        self.loss_weights = loss_weights
        self.target_kind = target_kind
        self.min_overlap = min_overlap
        self.ttf_alpha = ttf_alpha
        self.focal_alpha = focal_alpha
        self.focal_beta = focal_beta
        self.test_score_thresh = test_score_thresh
        self.test_topk = test_topk
        self.channels_last = channels_last
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        backbone, c = build_backbone(cfg), cfg.MODEL.CENTERNET
        unknown = [f for f in c.IN_FEATURES if f not in backbone.output_shape()]
        if unknown:
            raise ValueError(
                f"MODEL.CENTERNET.IN_FEATURES {unknown} are not outputs of backbone "
                f"{cfg.MODEL.BACKBONE.NAME}, which gives {sorted(backbone.output_shape())}"
            )
        shapes = [backbone.output_shape()[f] for f in c.IN_FEATURES]
        return {
            "backbone": backbone,
            "head": CenterNetHead(cfg, shapes),
            "head_in_features": c.IN_FEATURES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_weights": {
                "loss_heatmap": c.HEATMAP_WEIGHT,
                "loss_size": c.SIZE_WEIGHT,
                "loss_offset": c.OFFSET_WEIGHT,
            },
            "target_kind": c.TARGET_KIND,
            "min_overlap": c.MIN_OVERLAP,
            "ttf_alpha": c.TTF_ALPHA,
            "focal_alpha": c.FOCAL_ALPHA,
            "focal_beta": c.FOCAL_BETA,
            "test_score_thresh": c.SCORE_THRESH_TEST,
            "test_topk": cfg.TEST.DETECTIONS_PER_IMAGE,
            "channels_last": c.CHANNELS_LAST,
        }

    def preprocess_image(self, batched_inputs: List[Dict[str, Tensor]]) -> ImageList:
        images = super().preprocess_image(batched_inputs)
        if self.channels_last:
            images.tensor = images.tensor.contiguous(memory_format=torch.channels_last)
        return images

    def forward_training(
        self,
        images: ImageList,
        features: List[Tensor],
        predictions: Dict[str, Tensor],
        gt_instances: List[Instances],
    ) -> Dict[str, Tensor]:
        heatmap = predictions["heatmap"]
        targets = build_targets(
            gt_instances,
            images.image_sizes,
            heatmap.shape,
            self.stride,
            kind=self.target_kind,
            min_overlap=self.min_overlap,
            ttf_alpha=self.ttf_alpha,
        )
        normalizer = self._objects_per_worker(targets.num_objects)
        losses = {
            "loss_heatmap": heatmap_focal_loss(
                heatmap, targets.heatmap, self.focal_alpha, self.focal_beta
            ),
            "loss_size": l1_at_peaks(predictions["size"], targets.index, targets.size),
            "loss_offset": l1_at_peaks(predictions["offset"], targets.index, targets.offset),
        }
        return {k: v * (self.loss_weights[k] / normalizer) for k, v in losses.items()}

    def _objects_per_worker(self, num_objects: int) -> float:
        """Objects per image batch averaged over workers, at least 1: the loss normaliser."""
        get_event_storage().put_scalar("num_objects", num_objects)
        if comm.get_world_size() > 1:
            n = torch.tensor([num_objects], dtype=torch.float32, device=self.device)
            torch.distributed.all_reduce(n)
            num_objects = n.item() / comm.get_world_size()
        return max(float(num_objects), 1.0)

    def forward_inference(
        self, images: ImageList, features: List[Tensor], predictions: Dict[str, Tensor]
    ) -> List[Instances]:
        boxes, scores, classes = decode_boxes(
            predictions["heatmap"],
            predictions["size"],
            predictions["offset"],
            self.stride,
            self.test_topk,
        )
        return to_instances(boxes, scores, classes, images.image_sizes, self.test_score_thresh)
