"""The ``CenterNet`` meta-architecture: wiring of backbone, head, targets, losses, decoding and
test-time augmentation.

Shape shorthand:
    N: images, K: classes, H/W: output grid of the head's feature (stride ``self.stride``).
"""

import logging
from typing import Dict, List, Sequence

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import ImageList, Instances
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from .decode import decode_predictions, to_instances
from .head import BOX_HEADS, CenterNetHead
from .losses import heatmap_focal_loss, l1_at_peaks, weighted_giou_loss
from .targets import TARGET_KINDS, CenterNetTargets, build_targets
from .tta import merge_detections, merge_flipped, resize_image, scaled_size

__all__ = ["CenterNet"]

logger = logging.getLogger(__name__)

# Smallest normaliser of the ltrb loss (TTFNet's epsilon of its weight sum): no division by zero
# in a batch without objects, where the weighted sum is 0 as well.
_MIN_BOX_WEIGHT_SUM = 1e-4


@META_ARCH_REGISTRY.register()
class CenterNet(DenseDetector):
    """CenterNet ("Objects as Points", Zhou et al. 2019): objects are heatmap peaks on one
    stride-4 map, with their size and sub-cell offset regressed at the peak. No anchors, no NMS.
    With ``box_head="ltrb"`` the boxes are TTFNet's (Liu et al. 2020): distances to the four box
    sides regressed at every cell of an object's gaussian area with a weighted GIoU loss.

    Training returns ``{"loss_heatmap", "loss_size", "loss_offset"}`` (``"size_offset"``) or
    ``{"loss_heatmap", "loss_box"}`` (``"ltrb"``), each already weighted; inference returns
    ``[{"instances": Instances(pred_boxes, scores, pred_classes)}]`` in the size given by each
    input's "height"/"width" (the original image), like Detectron2's detectors, with test-time
    augmentation (flip, scales) if built with it (:meth:`inference_with_tta`).
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
        box_head: str = "size_offset",
        ltrb_beta: float = 0.54,
        tta_flip: bool = False,
        tta_min_sizes: Sequence[int] = (),
        tta_max_size: int = 4000,
        tta_nms_thresh: float = 0.5,
        class_names: Sequence[str] = (),
    ):
        """
        Args:
            backbone, head, head_in_features, pixel_mean, pixel_std: as in ``DenseDetector``;
                ``head_in_features`` names the one feature the head runs on.
            loss_weights: factor of each loss: "loss_heatmap" and "loss_size", "loss_offset"
                ("size_offset" head) or "loss_box" ("ltrb" head).
            target_kind, min_overlap, ttf_alpha: gaussian targets, see :func:`build_targets`.
            focal_alpha, focal_beta: exponents of :func:`heatmap_focal_loss`.
            test_score_thresh: detections below this score are dropped at inference.
            test_topk: detections kept per image before the score threshold.
            channels_last: keep weights and images in channels-last memory format (faster
                convolutions with oneDNN on CPU and with tensor cores on GPU).
            box_head: the head's box outputs, "size_offset" or "ltrb" (as the head's).
            ltrb_beta: the ltrb regression area: gaussians of radii ``ltrb_beta`` times half the
                box sides (TTFNet's beta), see :func:`~.targets.ltrb_targets`.
            tta_flip: at inference, also run on the mirror images and merge (flip test).
            tta_min_sizes: at inference, run at each of these short sides (long side at most
                ``tta_max_size``), input pixels, and merge; empty: the input's size alone.
            tta_nms_thresh: IoU of the class-wise NMS that merges the detections of the scales.
            class_names: names of the classes 0..K-1, if known; saved in checkpoints and export
                metadata (:class:`~centernet_d2.engine.checkpoint.SafeCheckpointer` fills them
                from a checkpoint when empty).
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
        if box_head not in BOX_HEADS:
            raise ValueError(
                f"MODEL.CENTERNET.BOX_HEAD must be one of {BOX_HEADS}, got {box_head!r}"
            )
        if any(int(s) != s or s <= 0 for s in tta_min_sizes):
            raise ValueError(
                f"TEST.AUG.MIN_SIZES must be positive integers (pixels), got {tta_min_sizes}"
            )
        if not 0 < tta_nms_thresh <= 1:
            raise ValueError(
                f"MODEL.CENTERNET.TTA_NMS_THRESH must be in (0, 1], got {tta_nms_thresh}"
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
        self.box_head = box_head
        self.ltrb_beta = ltrb_beta
        self.tta_flip = tta_flip
        self.tta_min_sizes = tuple(int(s) for s in tta_min_sizes)
        self.tta_max_size = tta_max_size
        self.tta_nms_thresh = tta_nms_thresh
        self.class_names = list(class_names)
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
        if c.BOX_HEAD == "ltrb":
            loss_weights = {"loss_heatmap": c.HEATMAP_WEIGHT, "loss_box": c.BOX_WEIGHT}
        else:
            loss_weights = {
                "loss_heatmap": c.HEATMAP_WEIGHT,
                "loss_size": c.SIZE_WEIGHT,
                "loss_offset": c.OFFSET_WEIGHT,
            }
        aug = cfg.TEST.AUG
        return {
            "backbone": backbone,
            "head": CenterNetHead(cfg, shapes),
            "head_in_features": c.IN_FEATURES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "loss_weights": loss_weights,
            "target_kind": c.TARGET_KIND,
            "min_overlap": c.MIN_OVERLAP,
            "ttf_alpha": c.TTF_ALPHA,
            "focal_alpha": c.FOCAL_ALPHA,
            "focal_beta": c.FOCAL_BETA,
            "test_score_thresh": c.SCORE_THRESH_TEST,
            "test_topk": cfg.TEST.DETECTIONS_PER_IMAGE,
            "channels_last": c.CHANNELS_LAST,
            "box_head": c.BOX_HEAD,
            "ltrb_beta": c.TTF_BETA,
            "tta_flip": aug.ENABLED and aug.FLIP,
            "tta_min_sizes": tuple(aug.MIN_SIZES) if aug.ENABLED else (),
            "tta_max_size": aug.MAX_SIZE,
            "tta_nms_thresh": c.TTA_NMS_THRESH,
            "class_names": c.CLASS_NAMES,
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
        """The heatmap, size and offset losses divided by the objects per image batch
        (:meth:`_objects_per_worker`); the ltrb loss divided by the sum of its weights on this
        worker (TTFNet's normalisation)."""
        heatmap = predictions["heatmap"]
        ltrb = self.box_head == "ltrb"
        targets = self.build_targets(images, predictions, gt_instances)
        normalizer = self._objects_per_worker(targets.num_objects)
        losses = {
            "loss_heatmap": heatmap_focal_loss(
                heatmap, targets.heatmap, self.focal_alpha, self.focal_beta
            )
        }
        normalizers = {"loss_heatmap": normalizer}
        if ltrb:
            losses["loss_box"] = weighted_giou_loss(
                predictions["box"], targets.box, targets.box_weight
            )
            normalizers["loss_box"] = targets.box_weight.sum().clamp(min=_MIN_BOX_WEIGHT_SUM)
        else:
            losses["loss_size"] = l1_at_peaks(predictions["size"], targets.index, targets.size)
            losses["loss_offset"] = l1_at_peaks(
                predictions["offset"], targets.index, targets.offset
            )
            normalizers.update(loss_size=normalizer, loss_offset=normalizer)
        return {k: v * (self.loss_weights[k] / normalizers[k]) for k, v in losses.items()}

    @torch.no_grad()
    def build_targets(
        self, images: ImageList, predictions: Dict[str, Tensor], gt_instances: List[Instances]
    ) -> CenterNetTargets:
        """The training targets of ``gt_instances`` on the output grid of ``predictions`` (only
        the heatmap's shape is read), with this model's target settings (:func:`build_targets`).
        """
        return build_targets(
            gt_instances,
            images.image_sizes,
            predictions["heatmap"].shape,
            self.stride,
            kind=self.target_kind,
            min_overlap=self.min_overlap,
            ttf_alpha=self.ttf_alpha,
            ltrb_beta=self.ltrb_beta if self.box_head == "ltrb" else None,
        )

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
        boxes, scores, classes = decode_predictions(predictions, self.stride, self.test_topk)
        return to_instances(boxes, scores, classes, images.image_sizes, self.test_score_thresh)

    @property
    def tta_enabled(self) -> bool:
        """Whether inference runs :meth:`inference_with_tta` (flip or scales configured)."""
        return self.tta_flip or bool(self.tta_min_sizes)

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        """``DenseDetector.forward``; at inference :meth:`inference_with_tta` instead when test-time
        augmentation is enabled (``TEST.AUG.ENABLED``). Export (:mod:`centernet_d2.export`) runs
        the backbone, head and decoding itself, without augmentation."""
        if self.training or not self.tta_enabled:
            return super().forward(batched_inputs)
        return self.inference_with_tta(batched_inputs)

    def inference_with_tta(self, batched_inputs: List[Dict[str, Tensor]]) -> List[Dict]:
        """Inference with test-time augmentation, same inputs and outputs as inference.

        For each short side in ``tta_min_sizes`` (or the inputs' own size if empty) the images
        are resized from their "image" tensors to that scale of the original "height"/"width"
        (:func:`~.tta.scaled_size`), run with their mirror images if ``tta_flip``
        (:meth:`predict`), decoded and mapped to the original size. With several scales the
        detections of an image are merged by class-wise NMS and the top
        ``TEST.DETECTIONS_PER_IMAGE`` kept (:func:`~.tta.merge_detections`); one scale needs no
        NMS (CenterNet has none).
        """
        sizes = [
            (x.get("height", x["image"].shape[-2]), x.get("width", x["image"].shape[-1]))
            for x in batched_inputs
        ]
        per_scale = []  # per scale, per image: Instances in the original size
        for min_size in self.tta_min_sizes or (None,):
            inputs = batched_inputs
            if min_size is not None:
                scaled = [scaled_size(h, w, min_size, self.tta_max_size) for h, w in sizes]
                inputs = [
                    {"image": resize_image(x["image"].to(self.device), size)}
                    for x, size in zip(batched_inputs, scaled)
                ]
            images = self.preprocess_image(inputs)
            results = self.forward_inference(images, [], self.predict(images))
            per_scale.append([detector_postprocess(r, h, w) for r, (h, w) in zip(results, sizes)])
        if len(per_scale) == 1:
            merged = per_scale[0]
        else:
            merged = [
                merge_detections(list(r), self.tta_nms_thresh, self.test_topk)
                for r in zip(*per_scale)
            ]
        return [{"instances": r} for r in merged]

    def predict(self, images: ImageList) -> Dict[str, Tensor]:
        """The head's outputs on preprocessed images; with ``tta_flip`` the outputs on the images
        and on their mirror images (one batch of 2N) merged by :func:`~.tta.merge_flipped`."""
        x = images.tensor
        n = x.shape[0]
        if self.tta_flip:
            x = torch.cat([x, x.flip(-1)])
        features = self.backbone(x)
        predictions = self.head([features[f] for f in self.head_in_features])
        if not self.tta_flip:
            return predictions
        return merge_flipped(
            {k: v[:n] for k, v in predictions.items()}, {k: v[n:] for k, v in predictions.items()}
        )
