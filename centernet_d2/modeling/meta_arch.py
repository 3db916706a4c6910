"""The ``CenterNet`` meta-architecture: the wiring of backbone, head, targets, losses and decoding,
exposed as stage methods that training, inference, export, the benchmark and test-time
augmentation (:class:`~.tta.CenterNetWithTTA`) share.

Shape shorthand:
    N: images, K: classes, H/W: output grid of the head's feature (stride ``self.stride``),
    P: positions of all levels (multi-level CenterNet).
"""

import dataclasses
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY, Backbone, build_backbone
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import ImageList, Instances
from detectron2.utils import comm
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from .decode import InferenceSettings, decode_predictions, to_instances
from .head import CenterNetHead
from .keypoints import (
    KeypointSettings,
    class_keypoint_mask,
    decode_keypoints,
    keypoint_offset_loss,
    keypoint_targets,
)
from .losses import LossSettings, heatmap_focal_loss, l1_at_peaks, weighted_giou_loss
from .targets import CenterNetTargets, TargetSettings, build_targets
from .tta import merge_flipped

__all__ = ["CenterNet"]

# The keypoint losses, each divided by the labelled keypoints per image batch.
_KEYPOINT_LOSSES = ("loss_keypoints", "loss_keypoint_heatmap", "loss_keypoint_offset")
# Smallest normaliser of the ltrb loss (TTFNet's epsilon of its weight sum): no division by zero
# in a batch without objects, where the weighted sum is 0 as well.
_MIN_BOX_WEIGHT_SUM = 1e-4


@META_ARCH_REGISTRY.register()
class CenterNet(DenseDetector):
    """CenterNet ("Objects as Points", Zhou et al. 2019): objects are heatmap peaks on one
    stride-4 map, with their size and sub-cell offset regressed at the peak. No anchors, no NMS.
    With the head's ``box_head="ltrb"`` the boxes are TTFNet's (Liu et al. 2020): distances to the
    four box sides regressed at every cell of an object's gaussian area with a weighted GIoU loss.
    With ``keypoint_settings`` (``MODEL.KEYPOINT_ON``) it is also the paper's multi-pose
    CenterNet, for any category: each object's keypoints regressed at its centre and snapped to
    keypoint heatmap peaks (:mod:`.keypoints`), ``pred_keypoints`` in the results and the losses
    ``loss_keypoints``, ``loss_keypoint_heatmap`` and ``loss_keypoint_offset``. CenterNet2's
    multi-level CenterNet (:class:`~.multilevel.MultiLevelCenterNet`) and CenterTrack
    (:class:`~.centertrack.CenterTrack`) are subclasses that replace stages.

    Stages (each used by training, inference, export, the benchmark and TTA alike):
    :meth:`network_inputs` and :meth:`run_network` (memory format, backbone, head),
    :meth:`build_targets`, :meth:`losses`, :meth:`decode` (fixed-size, tensor-only: what export
    traces), :meth:`inference` (the score threshold) and :meth:`postprocess` (to the output
    size); for test-time augmentation :meth:`merge_mirrored` and :meth:`map_input`. Training
    returns ``{"loss_heatmap", "loss_size", "loss_offset"}`` ("size_offset") or
    ``{"loss_heatmap", "loss_box"}`` ("ltrb"), each already weighted; inference returns
    ``[{"instances": Instances(pred_boxes, scores, pred_classes)}]`` in the size given by each
    input's "height"/"width", like Detectron2's detectors.
    """

    # whether the head's outputs are lists over the levels (MultiLevelCenterNet's)
    per_level = False

    @configurable
    def __init__(
        self,
        *,
        backbone: Backbone,
        head: nn.Module,
        head_in_features: List[str],
        pixel_mean,
        pixel_std,
        target_settings: TargetSettings = TargetSettings(),
        loss_settings: LossSettings = LossSettings(),
        inference_settings: InferenceSettings = InferenceSettings(),
        channels_last: bool = False,
        class_names: Sequence[str] = (),
        keypoint_settings: Optional[KeypointSettings] = None,
        keypoint_flip_indices: Sequence[int] = (),
    ):
        """
        Args:
            backbone, head, head_in_features, pixel_mean, pixel_std: as in ``DenseDetector``;
                ``head_in_features`` names the one feature the head runs on (several, finest
                first, for :class:`~.multilevel.MultiLevelCenterNet`); the head's ``box_head``
                ("size_offset" or "ltrb") decides the box outputs.
            target_settings: how targets are drawn (:class:`~.targets.TargetSettings`).
            loss_settings: loss weights and focal exponents (:class:`~.losses.LossSettings`).
            inference_settings: score threshold and detections kept
                (:class:`~.decode.InferenceSettings`).
            channels_last: keep weights and images in channels-last memory format (faster
                convolutions with oneDNN on CPU and with tensor cores on GPU).
            class_names: names of the classes 0..K-1, if known; saved in checkpoints and export
                metadata (:class:`~centernet_d2.engine.checkpoint.SafeCheckpointer` fills them
                from a checkpoint when empty).
            keypoint_settings: keypoints of the objects (:mod:`.keypoints`; the head needs
                their branches), or None for boxes alone.
            keypoint_flip_indices: keypoint j of a mirror image is keypoint
                ``keypoint_flip_indices[j]`` (for the flip test; kept in the checkpoint); empty:
                not known.
        """
        super().__init__(
            backbone, head, head_in_features, pixel_mean=pixel_mean, pixel_std=pixel_std
        )
        self.check_levels(head_in_features, head, target_settings, keypoint_settings)
        if keypoint_settings is not None and "keypoints" not in head.branches:
            raise ValueError("keypoint_settings need a head with keypoint branches")
        if inference_settings.topk < 0:
            raise ValueError(
                f"TEST.DETECTIONS_PER_IMAGE must be >= 0, got {inference_settings.topk}"
            )
        self.strides = [backbone.output_shape()[f].stride for f in head_in_features]
        self.stride = self.strides[0]
        self.target_settings = target_settings
        self.loss_settings = loss_settings
        self.test_score_thresh = inference_settings.score_thresh
        self.test_topk = inference_settings.topk
        self.channels_last = channels_last
        self.class_names = list(class_names)
        self.keypoint_settings = keypoint_settings
        if keypoint_settings is not None:
            flip = torch.as_tensor(list(keypoint_flip_indices), dtype=torch.long)
            J = keypoint_settings.num_keypoints
            if len(flip) and sorted(flip.tolist()) != list(range(J)):
                raise ValueError(
                    f"MODEL.CENTERNET.KEYPOINT_FLIP_INDICES must be a permutation of 0..{J - 1}, "
                    f"got {flip.tolist()}"
                )
            # (J,), saved with the weights, so that the flip test of a checkpoint swaps left and
            # right keypoints whatever config it runs with; -1: unknown (no flip map given)
            self.register_buffer(
                "keypoint_flip_indices", flip if len(flip) else -torch.ones(J).long()
            )
            mask = class_keypoint_mask(
                keypoint_settings.class_keypoints,
                head.branches["heatmap"][-1].out_channels,
                keypoint_settings.num_keypoints,
            )
            # (K, J), saved with the weights: a checkpoint brings the keypoint sets it was
            # trained with to a config that leaves CLASS_KEYPOINTS empty
            self.register_buffer("keypoint_class_mask", mask)
        if channels_last:
            self.to(memory_format=torch.channels_last)

    @staticmethod
    def check_levels(
        head_in_features: Sequence[str],
        head: nn.Module,
        target_settings: TargetSettings,
        keypoint_settings: Optional[KeypointSettings],
    ) -> None:
        """``ValueError`` unless the levels and targets are this model's: one feature, not the
        multi-level targets (those are :class:`~.multilevel.MultiLevelCenterNet`'s)."""
        if target_settings.kind == "multilevel":
            raise ValueError(
                "TARGET_KIND 'multilevel' is the multi-level CenterNet's: set "
                "MODEL.META_ARCHITECTURE 'MultiLevelCenterNet'"
            )
        if len(head_in_features) != 1:
            raise ValueError(
                "MODEL.CENTERNET.IN_FEATURES must name one feature (several levels are "
                f"MODEL.META_ARCHITECTURE 'MultiLevelCenterNet'), got {list(head_in_features)}"
            )

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
        keypoint_settings = None
        if cfg.MODEL.KEYPOINT_ON:
            keypoint_settings = KeypointSettings(
                num_keypoints=c.NUM_KEYPOINTS,
                class_keypoints=tuple(tuple(k) for k in c.CLASS_KEYPOINTS),
                min_overlap=c.MIN_OVERLAP,
                snap=c.KEYPOINT_SNAP,
                snap_thresh=c.KEYPOINT_SNAP_THRESH,
            )
        return {
            "backbone": backbone,
            # several features make a per-level head, which check_levels refuses but for the
            # multi-level CenterNet, with the fix in its message
            "head": CenterNetHead(
                cfg,
                shapes,
                extra_outputs=cls.extra_head_outputs(cfg),
                per_level=cls.per_level or len(shapes) > 1,
            ),
            "head_in_features": c.IN_FEATURES,
            "pixel_mean": cfg.MODEL.PIXEL_MEAN,
            "pixel_std": cfg.MODEL.PIXEL_STD,
            "target_settings": TargetSettings(
                kind=c.TARGET_KIND,
                min_overlap=c.MIN_OVERLAP,
                ttf_alpha=c.TTF_ALPHA,
                ltrb_beta=c.TTF_BETA,
                size_ranges=tuple(tuple(r) for r in c.SIZE_RANGES),
                min_radius=c.MIN_RADIUS,
            ),
            "loss_settings": LossSettings(
                cls.loss_weights(cfg), c.FOCAL_ALPHA, c.FOCAL_BETA, focal_balance=c.FOCAL_BALANCE
            ),
            "inference_settings": InferenceSettings(
                score_thresh=c.SCORE_THRESH_TEST,
                topk=cfg.TEST.DETECTIONS_PER_IMAGE,
                nms_thresh=c.NMS_THRESH_TEST,
                pre_nms_topk=c.PRE_NMS_TOPK_TEST,
            ),
            "channels_last": c.CHANNELS_LAST,
            "class_names": c.CLASS_NAMES,
            "keypoint_settings": keypoint_settings,
            "keypoint_flip_indices": tuple(c.KEYPOINT_FLIP_INDICES),
        }

    @classmethod
    def extra_head_outputs(cls, cfg) -> Dict[str, int]:
        """Head branches besides CenterNet's (name -> channels) that a subclass adds."""
        return {}

    @classmethod
    def loss_weights(cls, cfg) -> Dict[str, float]:
        """The weight of each loss, by name, from ``cfg``."""
        c = cfg.MODEL.CENTERNET
        weights = {"loss_heatmap": c.HEATMAP_WEIGHT}
        if c.BOX_HEAD == "ltrb":
            weights["loss_box"] = c.BOX_WEIGHT
        else:
            weights.update(loss_size=c.SIZE_WEIGHT, loss_offset=c.OFFSET_WEIGHT)
        if cfg.MODEL.KEYPOINT_ON:
            weights.update(
                loss_keypoints=c.KEYPOINT_WEIGHT,
                loss_keypoint_heatmap=c.KEYPOINT_HEATMAP_WEIGHT,
                loss_keypoint_offset=c.KEYPOINT_OFFSET_WEIGHT,
            )
        return weights

    @property
    def num_classes(self) -> int:
        """K, the heatmap's channels."""
        return self.head.branches["heatmap"][-1].out_channels

    @property
    def box_head(self) -> str:
        """The head's box outputs: "size_offset" or "ltrb"."""
        return self.head.box_head

    # the inputs of the exported function (:meth:`normalize_inputs`)
    export_input_names: Tuple[str, ...] = ("images",)

    @property
    def decoded_fields(self) -> Tuple[str, ...]:
        """The ``Instances`` fields of :meth:`decode`'s outputs after boxes, scores and
        classes: "pred_keypoints" for a model with keypoints."""
        return ("pred_keypoints",) if self.keypoint_settings is not None else ()

    def run_network(self, images: Tensor) -> Dict[str, Tensor]:
        """The head's outputs on a batch of normalised, padded images (N, 3, H, W) (the
        ``tensor`` of :meth:`preprocess_image`): the memory format, the backbone and the head.

        Returns:
            "heatmap" (N, K, H / stride, W / stride) logits and the box outputs of the head,
            "size" and "offset" (N, 2, ...) or "box" (N, 4, ...), in cells.
        """
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.backbone(images)
        return self.head([features[f] for f in self.head_in_features])

    def finest_heatmap(self, predictions: Dict[str, Tensor]) -> Tensor:
        """The heatmap logits (N, K, H, W) of :meth:`run_network`'s outputs at ``self.stride``
        (the finest level), for pictures."""
        return predictions["heatmap"]

    @torch.no_grad()
    def build_targets(
        self, images: ImageList, predictions: Dict[str, Tensor], gt_instances: List[Instances]
    ) -> CenterNetTargets:
        """The training targets of ``gt_instances`` on the output grid of ``predictions`` (only
        the heatmap's shape is read), with this model's :class:`~.targets.TargetSettings`."""
        targets = build_targets(
            gt_instances,
            images.image_sizes,
            predictions["heatmap"].shape,
            self.stride,
            self.target_settings,
            with_ltrb=self.box_head == "ltrb",
        )
        if self.keypoint_settings is None:
            return targets
        keypoints = keypoint_targets(
            gt_instances,
            images.image_sizes,
            predictions["heatmap"].shape[1],
            predictions["keypoint_heatmap"].shape,
            self.stride,
            self.keypoint_settings.min_overlap,
        )
        return dataclasses.replace(targets, keypoints=keypoints)

    def losses(
        self, predictions: Dict[str, Tensor], targets: CenterNetTargets
    ) -> Dict[str, Tensor]:
        """The weighted losses: heatmap, size and offset divided by the objects per image batch
        (:meth:`_objects_per_worker`); the ltrb loss divided by the sum of its weights on this
        worker (TTFNet's normalisation); the keypoint losses by the labelled keypoints."""
        s = self.loss_settings
        normalizer = self._objects_per_worker(targets.num_objects)
        losses = {
            "loss_heatmap": heatmap_focal_loss(
                predictions["heatmap"], targets.heatmap, s.focal_alpha, s.focal_beta
            )
        }
        normalizers = {"loss_heatmap": normalizer}
        if self.box_head == "ltrb":
            losses["loss_box"] = weighted_giou_loss(
                predictions["box"], targets.box, targets.box_weight
            )
            normalizers["loss_box"] = targets.box_weight.sum().clamp(min=_MIN_BOX_WEIGHT_SUM)
        else:
            for name in ("size", "offset"):
                target = getattr(targets, name)
                losses[f"loss_{name}"] = l1_at_peaks(predictions[name], targets.index, target)
                normalizers[f"loss_{name}"] = normalizer
        if targets.keypoints is not None:
            losses.update(self._keypoint_losses(predictions, targets))
            num = float(targets.keypoints.num_labelled)
            get_event_storage().put_scalar("num_keypoints", num)
            num = max(self._mean_over_workers(num), 1.0)
            normalizers.update(dict.fromkeys(_KEYPOINT_LOSSES, num))
        return {k: v * (s.weights[k] / normalizers[k]) for k, v in losses.items()}

    def _keypoint_losses(
        self, predictions: Dict[str, Tensor], targets: CenterNetTargets
    ) -> Dict[str, Tensor]:
        """The keypoint losses, sums over the labelled keypoints (CenterNet divides each by
        their number): the L1 of the keypoints regressed at the centres, the focal loss of the
        keypoint heatmap, the L1 of its sub-cell offset at the keypoints' cells."""
        k, s = targets.keypoints, self.loss_settings
        return {
            "loss_keypoints": keypoint_offset_loss(
                predictions["keypoints"], targets.index, k.offset, k.labelled
            ),
            "loss_keypoint_heatmap": heatmap_focal_loss(
                predictions["keypoint_heatmap"], k.heatmap, s.focal_alpha, s.focal_beta
            ),
            "loss_keypoint_offset": l1_at_peaks(predictions["keypoint_offset"], k.index, k.subcell),
        }

    def _objects_per_worker(self, num_objects: int) -> float:
        """Objects per image batch averaged over workers, at least 1: the loss normaliser."""
        get_event_storage().put_scalar("num_objects", num_objects)
        return max(self._mean_over_workers(float(num_objects)), 1.0)

    def _mean_over_workers(self, value: float) -> float:
        if comm.get_world_size() > 1:
            n = torch.tensor([value], dtype=torch.float32, device=self.device)
            torch.distributed.all_reduce(n)
            value = n.item() / comm.get_world_size()
        return value

    def decode_peaks(self, predictions: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """The ``test_topk`` best heatmap peaks (:func:`~.decode.decode_predictions`): boxes
        (N, T, 4) XYXY input pixels, scores (N, T) descending, classes (N, T) long and positions
        (N, T) long ``y * W + x``, at which other outputs are read."""
        return decode_predictions(
            predictions, self.stride, self.test_topk, self.box_head, with_positions=True
        )

    def decode(self, predictions: Dict[str, Tensor]) -> Tuple[Tensor, ...]:
        """The detections before the score threshold, fixed-size and tensor-only (what export
        traces): boxes (N, T, 4) XYXY input pixels, not clipped, scores (N, T) descending and
        classes (N, T) long of :meth:`decode_peaks`; then the outputs named by
        :attr:`decoded_fields`: with keypoints (:func:`~.keypoints.decode_keypoints`), keypoints
        (N, T, J, 3) in input pixels."""
        boxes, scores, classes, positions = self.decode_peaks(predictions)
        if self.keypoint_settings is None:
            return boxes, scores, classes
        keypoints = decode_keypoints(
            predictions,
            positions,
            boxes,
            classes,
            self.stride,
            self.keypoint_settings,
            self.keypoint_class_mask,
        )
        return boxes, scores, classes, keypoints

    def inference(self, images: ImageList, predictions: Dict[str, Tensor]) -> List[Instances]:
        """Per image, :meth:`decode`'s detections scoring at least ``test_score_thresh``, in the
        input size of :meth:`preprocess_image` (``images.image_sizes``), boxes clipped to it;
        then, for a model with an NMS (:attr:`nms_settings`), the class-wise NMS and the best
        kept."""
        boxes, scores, classes, *fields = self.decode(predictions)
        return to_instances(
            boxes,
            scores,
            classes,
            images.image_sizes,
            self.test_score_thresh,
            *self.nms_settings,
            fields=dict(zip(self.decoded_fields, fields)),
        )

    @property
    def nms_settings(self) -> Tuple[Optional[float], Optional[int]]:
        """(IoU, detections kept) of the NMS after the score threshold: (None, None), CenterNet
        has none."""
        return None, None

    def network_inputs(
        self, batched_inputs: List[Dict[str, Tensor]], images: ImageList
    ) -> Tuple[Tensor, ...]:
        """The arguments of :meth:`run_network` for ``batched_inputs`` whose images
        :meth:`preprocess_image` gave: the padded images ``(images.tensor,)``; a model with more
        inputs per image (CenterTrack's previous frame) adds them, each (N, C, Hi, Wi) like the
        images, so that test-time augmentation can flip them alike."""
        return (images.tensor,)

    def normalize_inputs(self, images: Tensor) -> Tuple[Tensor, ...]:
        """The arguments of :meth:`run_network` for the exported function's inputs
        (:attr:`export_input_names`): images (N, 3, H, W) 0-255 in the input format, normalised
        as by :meth:`preprocess_image` (no padding: H, W multiples of the size divisibility)."""
        return ((images - self.pixel_mean) / self.pixel_std,)

    def example_inputs(self, images: Tensor) -> Tuple[Tensor, ...]:
        """The exported function's inputs made of ``images`` (N, 3, H, W) alone, to trace and
        check an export: ``(images,)``; CenterTrack adds previous frames and heatmaps."""
        return (images,)

    def map_input(self, x: Dict, image_fn, boxes_fn) -> Dict[str, Tensor]:
        """A model input (dict) transformed for test-time augmentation: its "image" by
        ``image_fn`` (C, h, w) -> (C, h', w'); a model with more per-image inputs (CenterTrack's
        previous frame and boxes) maps them too, boxes (XYXY pixels) by ``boxes_fn``."""
        return {"image": image_fn(x["image"])}

    def merge_mirrored(
        self,
        predictions: Dict[str, Tensor],
        mirrored: Dict[str, Tensor],
        keypoint_flip_indices: Optional[Sequence[int]] = None,
    ) -> Dict[str, Tensor]:
        """The flip test: :meth:`run_network`'s outputs on images and on their mirror images
        merged into one output (:func:`~.tta.merge_flipped`)."""
        return merge_flipped(predictions, mirrored, self.box_head, keypoint_flip_indices)

    def postprocess(
        self,
        results: List[Instances],
        output_sizes: Sequence[Tuple[int, int]],
        image_sizes: Sequence[Tuple[int, int]],
    ) -> List[Instances]:
        """:meth:`inference`'s detections, in the ``image_sizes`` of the network's input, rescaled
        to ``output_sizes`` (height, width) by Detectron2's ``detector_postprocess`` (boxes and
        keypoints)."""
        return [detector_postprocess(r, h, w) for r, (h, w) in zip(results, output_sizes)]

    def detect(
        self, batched_inputs: List[Dict[str, Tensor]]
    ) -> Tuple[List[Dict[str, Instances]], Dict[str, Tensor]]:
        """Inference as :meth:`forward` in eval mode, with the head's outputs it decoded (for
        pictures of the heatmap)."""
        images = self.preprocess_image(batched_inputs)
        predictions = self.run_network(*self.network_inputs(batched_inputs, images))
        sizes = [
            (x.get("height", size[0]), x.get("width", size[1]))
            for x, size in zip(batched_inputs, images.image_sizes)
        ]
        results = self.postprocess(self.inference(images, predictions), sizes, images.image_sizes)
        return [{"instances": r} for r in results], predictions

    def forward(self, batched_inputs: List[Dict[str, Tensor]]):
        """Training: the weighted losses of the batch. Inference: ``[{"instances": ...}]`` in
        each input's "height" x "width" (default: its image's size), as Detectron2's models."""
        if not self.training:
            return self.detect(batched_inputs)[0]
        images = self.preprocess_image(batched_inputs)
        predictions = self.run_network(*self.network_inputs(batched_inputs, images))
        gt_instances = [x["instances"].to(self.device) for x in batched_inputs]
        return self.losses(predictions, self.build_targets(images, predictions, gt_instances))
