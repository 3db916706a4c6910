"""The ``CenterTrack`` meta-architecture ("Tracking Objects as Points", Zhou, Koltun and
Krähenbühl 2020): CenterNet that also sees the previous frame and a heatmap of the previous
frame's objects (through a fusion of :mod:`.fusion`), and predicts for each object centre its
displacement to the object's centre in the previous frame; with its targets and input heatmap.
Everything else (backbones, head towers, targets, losses, decoding) is
:class:`~.meta_arch.CenterNet`'s.

Shape shorthand:
    N: images, K: classes, M: ground-truth objects of the batch, P: boxes of the previous frames,
    H/W: output grid, Hi/Wi: padded input size.

Naming convention:
    Displacements are ``previous centre - centre``: in cells (output-grid units) in the head's
    "displacement" output and the targets, in input pixels in ``pred_displacements``.
"""

import dataclasses
import itertools
from typing import Dict, List, Optional, Tuple

import torch
from detectron2.config import configurable
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from .decode import amodal_boxes_at, clip_boxes, values_at
from .fusion import PrevFrameFusion, StemFusion, first_layer, first_layer_shape
from .losses import l1_at_peaks
from .meta_arch import CenterNet
from .targets import CenterNetTargets, batch_objects, cornernet_paper_radius, draw_gaussians

__all__ = [
    "CenterTrack",
    "CenterTrackTargets",
    "amodal_box_targets",
    "displacement_targets",
    "render_prev_heatmap",
]

# The previous-frame heatmap draws a gaussian per box with CornerNet's radius at this IoU
# (CenterTrack's gaussian_radius default), in input pixels, whatever the model's TARGET_KIND.
PREV_HEATMAP_MIN_OVERLAP = 0.7


@torch.no_grad()
def render_prev_heatmap(boxes: List[Tensor], shape: Tuple[int, int, int, int]) -> Tensor:
    """The previous-frame heatmap of CenterTrack: a round gaussian of peak 1 per box, at the
    box centre's pixel, of CornerNet's paper radius for the box's size in pixels
    (:func:`~.targets.cornernet_paper_radius` at :data:`PREV_HEATMAP_MIN_OVERLAP`, truncated, as
    CenterTrack's ``gaussian_radius``), merged by their maximum. Boxes of no area are skipped.

    Args:
        boxes: per image (P_i, 4) XYXY in input pixels.
        shape: (N, 1, Hi, Wi) of the result.
    Returns:
        (N, 1, Hi, Wi) float in [0, 1].
    """
    N, _, H, W = shape
    device = boxes[0].device if boxes else torch.device("cpu")
    all_boxes = torch.cat([b.reshape(-1, 4).float() for b in boxes]) if boxes else None
    if all_boxes is None or len(all_boxes) == 0:
        return torch.zeros(shape, device=device)
    image = torch.repeat_interleave(
        torch.arange(N, device=device), torch.tensor([len(b) for b in boxes], device=device)
    )  # (P,)
    sizes = all_boxes[:, 2:] - all_boxes[:, :2]  # (P, 2)
    keep = (sizes > 0).all(dim=1)
    all_boxes, sizes, image = all_boxes[keep], sizes[keep], image[keep]
    radius = cornernet_paper_radius(sizes.ceil(), PREV_HEATMAP_MIN_OVERLAP).floor().long()
    centers = ((all_boxes[:, :2] + all_boxes[:, 2:]) / 2).floor().long()  # (P, 2)
    return draw_gaussians(centers, radius[:, None].expand(-1, 2), image, (N, 1, H, W))


@torch.no_grad()
def displacement_targets(
    gt_instances: List[Instances], image_sizes: List[Tuple[int, int]], stride: int
) -> Tuple[Tensor, Tensor]:
    """The displacement target of each object of :func:`~.targets.build_targets`, in its order.

    Both frames' boxes go through :func:`~.targets.batch_objects` (clipped to the image, those
    of no area dropped), each object numbered by its position in the batch, so that the objects
    kept here are those that ``build_targets`` keeps, in the same order.

    Args:
        gt_instances: per image ``gt_boxes`` and, optionally, ``gt_prev_boxes`` (XYXY input
            pixels): each object's box in the previous frame, of no area (e.g. zeros) where the
            object is not in it; without the field no object of the image is tracked.
        image_sizes: per image (height, width) before padding.
        stride: input pixels per output cell.
    Returns:
        displacement (M, 2) ``(previous centre - centre) / stride`` in cells (0 where not
        tracked); tracked (M,) bool, the objects with a box in both frames.
    """
    starts = [0, *itertools.accumulate(len(x) for x in gt_instances)]
    total = starts[-1]

    def numbered(frame_boxes: List[Boxes]) -> List[Instances]:
        """The boxes as Instances whose "classes" are the objects' numbers in the batch."""
        return [
            Instances(
                x.image_size,
                gt_boxes=b,
                gt_classes=torch.arange(s, s + len(x), device=b.device),
            )
            for x, b, s in zip(gt_instances, frame_boxes, starts)
        ]

    prev = [
        x.gt_prev_boxes if x.has("gt_prev_boxes") else Boxes(torch.zeros_like(x.gt_boxes.tensor))
        for x in gt_instances
    ]
    boxes, number, _ = batch_objects(
        numbered([x.gt_boxes for x in gt_instances]), image_sizes, total
    )
    prev_boxes, prev_number, _ = batch_objects(numbered(prev), image_sizes, total)
    device = boxes.device
    prev_centers = boxes.new_zeros(total, 2)
    prev_centers[prev_number] = (prev_boxes[:, :2] + prev_boxes[:, 2:]) / 2
    in_prev = torch.zeros(total, dtype=torch.bool, device=device)
    in_prev[prev_number] = True
    tracked = in_prev[number]  # (M,)
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # (M, 2)
    displacement = (prev_centers[number] - centers) / stride
    return displacement * tracked[:, None], tracked


@torch.no_grad()
def amodal_box_targets(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    num_classes: int,
    index: Tensor,
    grid_size: Tuple[int, int],
    stride: int,
) -> Tensor:
    """CenterTrack's amodal box targets (``--ltrb_amodal``): for each object of
    :func:`~.targets.build_targets`, in its order, the distances from its centre cell's corner to
    the sides of its box as annotated, not clipped to the image, in cells.

    Args:
        gt_instances, image_sizes, num_classes: as for ``build_targets``.
        index: (M,) long ``image * H * W + y * W + x``, the objects' centre cells (its ``index``).
        grid_size: (H, W) of the output grid.
        stride: input pixels per cell.
    Returns:
        (M, 4) float (x1 - x, y1 - y, x2 - x, y2 - y) in cells, (x, y) the centre cell.
    """
    _, _, _, keep = batch_objects(gt_instances, image_sizes, num_classes, return_keep=True)
    boxes = torch.cat([x.gt_boxes.tensor for x in gt_instances])[keep] / stride  # (M, 4) cells
    H, W = grid_size
    cell = index % (H * W)
    xy = torch.stack([cell % W, torch.div(cell, W, rounding_mode="floor")], dim=1)  # (M, 2)
    return boxes - xy.repeat(1, 2).to(boxes.dtype)


@dataclasses.dataclass
class CenterTrackTargets:
    """Targets of one batch of frame pairs.

    Attributes:
        detection: CenterNet's targets of the current frames (:class:`~.targets.CenterNetTargets`).
        displacement: (M, 2) previous centre minus centre in cells, per object of ``detection``.
        tracked: (M,) bool, the objects in both frames (the others have no displacement loss).
        amodal_box: (M, 4) amodal box targets in cells (:func:`amodal_box_targets`), or None
            without the amodal box head.
    """

    detection: CenterNetTargets
    displacement: Tensor
    tracked: Tensor
    amodal_box: Optional[Tensor] = None

    @property
    def num_objects(self) -> int:
        return self.detection.num_objects


@META_ARCH_REGISTRY.register()
class CenterTrack(CenterNet):
    """CenterTrack: :class:`~.meta_arch.CenterNet` with the previous frame and a heatmap of its
    objects as inputs (:class:`StemFusion` or :class:`PrevFrameFusion`) and a "displacement"
    head branch (2 channels, cells), trained with an L1 loss at the object centres
    (``loss_displacement``, divided by the tracked objects per image batch) next to CenterNet's
    losses.

    Inputs are Detectron2's dicts with, besides "image" (and "instances" in training):

    * "prev_image": (3, H, W) the previous frame, of the image's size after resizing; default
      the image itself (CenterTrack's first frame);
    * "prev_boxes": (P, 4) XYXY in the image's (resized) pixels, the previous frame's objects
      drawn into the input heatmap (:func:`render_prev_heatmap`); default none;
    * training: "instances" with ``gt_prev_boxes`` (see :func:`displacement_targets`).

    With ``MODEL.CENTERTRACK.AMODAL_BOX`` (CenterTrack's ``--ltrb_amodal``, its MOT models) a
    head branch "amodal_box" regresses at each centre the distances from the cell to the box's
    sides, trained with an L1 loss (``loss_amodal_box``) towards the box as annotated, which may
    reach beyond the image; its boxes replace the size / offset boxes at inference.

    Inference returns CenterNet's ``Instances`` with ``pred_displacements`` (D, 2), previous
    centre minus centre in the output pixels. Linking over frames is left to
    :class:`centernet_d2.tracking.Tracker`, run with the model by
    :class:`centernet_d2.tracking.CenterTrackWithTracker`.
    """

    @configurable
    def __init__(self, *, fusion: nn.Module, **kwargs):
        """
        Args:
            fusion: how the previous-frame inputs enter: a :class:`StemFusion` (attached here to
                the backbone's :func:`first_layer`) or a :class:`PrevFrameFusion` (into the
                image).
            kwargs: :class:`~.meta_arch.CenterNet`'s arguments; the head needs a "displacement"
                branch and ``loss_settings.weights`` a "loss_displacement".
        """
        super().__init__(**kwargs)
        if self.keypoint_settings is not None:
            raise ValueError(
                "CenterTrack does not track keypoints: set MODEL.KEYPOINT_ON False with "
                "MODEL.META_ARCHITECTURE 'CenterTrack' (or use 'CenterNet' for keypoints)"
            )
        if "displacement" not in self.head.branches:
            raise ValueError("CenterTrack needs a head with a 'displacement' branch")
        if "loss_displacement" not in self.loss_settings.weights:
            raise ValueError("CenterTrack needs a 'loss_displacement' weight in loss_settings")
        self.amodal_box = "amodal_box" in self.head.branches
        if self.amodal_box and "loss_amodal_box" not in self.loss_settings.weights:
            raise ValueError("an 'amodal_box' branch needs a 'loss_amodal_box' weight")
        if not isinstance(fusion, (StemFusion, PrevFrameFusion)):
            raise TypeError(f"fusion must be a StemFusion or a PrevFrameFusion, got {fusion}")
        self.fusion = fusion
        if isinstance(fusion, StemFusion):
            fusion.attach(first_layer(self.backbone)[1])
        if self.channels_last:
            self.fusion.to(memory_format=torch.channels_last)

    @classmethod
    def from_config(cls, cfg):
        ret = super().from_config(cfg)
        t = cfg.MODEL.CENTERTRACK
        if t.FUSION == "stem":
            name, layer = first_layer(ret["backbone"])
            in_channels, channels, stride, kernel_size = first_layer_shape(layer)
            if in_channels != 3:
                raise ValueError(
                    f"MODEL.CENTERTRACK.FUSION 'stem': the backbone's first layer {name} takes "
                    f"{in_channels} channels, not the 3 of an image"
                )
            ret["fusion"] = StemFusion(
                channels=channels,
                stride=stride,
                kernel_size=kernel_size,
                prev_image=t.PREV_IMAGE,
                prev_heatmap=t.PREV_HEATMAP,
                norm=t.FUSION_NORM,
                zero_init=t.FUSION_ZERO_INIT,
            )
        elif t.FUSION == "input":
            ret["fusion"] = PrevFrameFusion(
                prev_image=t.PREV_IMAGE, prev_heatmap=t.PREV_HEATMAP, norm=t.FUSION_NORM
            )
        else:
            raise ValueError(
                f"MODEL.CENTERTRACK.FUSION must be 'stem' or 'input', got {t.FUSION!r}"
            )
        return ret

    @classmethod
    def extra_head_outputs(cls, cfg) -> Dict[str, int]:
        """The "displacement" branch (2 channels), and "amodal_box" (4) with
        ``MODEL.CENTERTRACK.AMODAL_BOX``."""
        extra = {"displacement": 2}
        if cfg.MODEL.CENTERTRACK.AMODAL_BOX:
            extra["amodal_box"] = 4
        return extra

    @classmethod
    def loss_weights(cls, cfg) -> Dict[str, float]:
        t = cfg.MODEL.CENTERTRACK
        weights = dict(super().loss_weights(cfg), loss_displacement=t.DISPLACEMENT_WEIGHT)
        if t.AMODAL_BOX:
            weights["loss_amodal_box"] = t.AMODAL_BOX_WEIGHT
        return weights

    export_input_names = ("images", "prev_images", "prev_heatmaps")

    @property
    def decoded_fields(self) -> Tuple[str, ...]:
        return ("pred_displacements",)

    def normalize_inputs(
        self, images: Tensor, prev_images: Tensor, prev_heatmaps: Tensor
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """CenterNet's, the previous frames (N, 3, H, W) normalised alike and the previous
        frames' heatmaps (N, 1, H, W) in [0, 1] (:func:`render_prev_heatmap`) as they are."""
        (prev_images,) = super().normalize_inputs(prev_images)
        return (*super().normalize_inputs(images), prev_images, prev_heatmaps)

    @torch.no_grad()
    def example_inputs(self, images: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """Frames (N, 3, H, W) as a video: each frame's previous frame is the one before it
        (the first: itself), its heatmap the detections there scoring at least
        ``test_score_thresh`` (the first: none)."""
        prev_images = torch.cat([images[:1], images[:-1]])
        zeros = images.new_zeros(images.shape[0], 1, *images.shape[2:])
        inputs = self.normalize_inputs(prev_images, prev_images, zeros)
        boxes, scores = self.decode(self.run_network(*inputs))[:2]
        boxes = clip_boxes(boxes, *images.shape[2:])
        kept = [b[s >= self.test_score_thresh] for b, s in zip(boxes, scores)]
        kept[0] = kept[0][:0]
        return images, prev_images, render_prev_heatmap(kept, tuple(zeros.shape))

    def run_network(
        self,
        images: Tensor,
        prev_images: Optional[Tensor] = None,
        prev_heatmaps: Optional[Tensor] = None,
    ) -> Dict[str, Tensor]:
        """The head's outputs on normalised, padded images (N, 3, Hi, Wi), their previous frames
        (same shape; default: the images) and previous-frame heatmaps (N, 1, Hi, Wi; default:
        zeros): CenterNet's outputs and "displacement" (N, 2, H, W) in cells."""
        if prev_images is None:
            prev_images = images
        if prev_heatmaps is None:
            prev_heatmaps = images.new_zeros(images.shape[0], 1, *images.shape[2:])
        if isinstance(self.fusion, PrevFrameFusion):
            return super().run_network(self.fusion(images, prev_images, prev_heatmaps))
        if self.channels_last:
            prev_images = prev_images.contiguous(memory_format=torch.channels_last)
            prev_heatmaps = prev_heatmaps.contiguous(memory_format=torch.channels_last)
        with self.fusion.added_to_first_layer(prev_images, prev_heatmaps):
            return super().run_network(images)

    def network_inputs(
        self, batched_inputs: List[Dict[str, Tensor]], images: ImageList
    ) -> Tuple[Tensor, Tensor, Tensor]:
        """The arguments of :meth:`run_network`: the padded images, their normalised, padded
        previous frames (N, 3, Hi, Wi) and heatmaps (N, 1, Hi, Wi) (see the class docstring
        for the keys)."""
        prev = self.preprocess_image(
            [{"image": x.get("prev_image", x["image"])} for x in batched_inputs]
        )
        if prev.tensor.shape != images.tensor.shape or prev.image_sizes != images.image_sizes:
            raise ValueError(
                "each input's 'prev_image' must have the size of its 'image', got "
                f"{prev.image_sizes} for images of {images.image_sizes}"
            )
        boxes = [
            torch.as_tensor(x.get("prev_boxes", torch.zeros(0, 4)), device=self.device)
            for x in batched_inputs
        ]
        N, _, H, W = images.tensor.shape
        return images.tensor, prev.tensor, render_prev_heatmap(boxes, (N, 1, H, W))

    @torch.no_grad()
    def build_targets(
        self, images: ImageList, predictions: Dict[str, Tensor], gt_instances: List[Instances]
    ) -> CenterTrackTargets:
        """CenterNet's targets, the displacement targets (:func:`displacement_targets`) and the
        amodal box targets (:func:`amodal_box_targets`) with that head."""
        detection = super().build_targets(images, predictions, gt_instances)
        displacement, tracked = displacement_targets(gt_instances, images.image_sizes, self.stride)
        amodal = None
        if self.amodal_box:
            heatmap = predictions["heatmap"]
            amodal = amodal_box_targets(
                gt_instances,
                images.image_sizes,
                heatmap.shape[1],
                detection.index,
                tuple(heatmap.shape[2:]),
                self.stride,
            )
        return CenterTrackTargets(detection, displacement, tracked, amodal)

    def losses(
        self, predictions: Dict[str, Tensor], targets: CenterTrackTargets
    ) -> Dict[str, Tensor]:
        """CenterNet's weighted losses and ``loss_displacement``: the L1 loss at the centres of
        the tracked objects (mean over x and y), divided by the tracked objects per image batch
        averaged over workers (CenterTrack's normalisation), times its weight."""
        losses = super().losses(predictions, targets.detection)
        tracked = targets.tracked
        num_tracked = float(tracked.sum())
        get_event_storage().put_scalar("num_tracked_objects", num_tracked)
        loss = l1_at_peaks(
            predictions["displacement"],
            targets.detection.index[tracked],
            targets.displacement[tracked],
        )
        weight = self.loss_settings.weights["loss_displacement"]
        losses["loss_displacement"] = loss * (weight / max(self._mean_over_workers(num_tracked), 1))
        if targets.amodal_box is not None:
            # CenterTrack's RegWeightedL1Loss: per object the mean over l, t, r, b, divided by
            # the objects per image batch
            loss = l1_at_peaks(
                predictions["amodal_box"], targets.detection.index, targets.amodal_box
            )
            normalizer = max(self._mean_over_workers(float(targets.num_objects)), 1.0)
            weight = self.loss_settings.weights["loss_amodal_box"]
            losses["loss_amodal_box"] = loss * (weight / normalizer)
        return losses

    def decode(self, predictions: Dict[str, Tensor]) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        """CenterNet's :meth:`decode` (the amodal boxes with that head:
        :func:`~.decode.amodal_boxes_at`) with each detection's displacement: boxes (N, T, 4)
        XYXY input pixels, scores (N, T) descending, classes (N, T) long, displacements (N, T, 2)
        float32 input pixels."""
        boxes, scores, classes, positions = self.decode_peaks(predictions)
        if self.amodal_box:
            boxes = amodal_boxes_at(positions, predictions["amodal_box"], self.stride)
        displacements = values_at(predictions["displacement"], positions).float() * self.stride
        return boxes, scores, classes, displacements

    def map_input(self, x: Dict, image_fn, boxes_fn) -> Dict[str, Tensor]:
        """CenterNet's, with "prev_image" mapped as the image and "prev_boxes" by ``boxes_fn``."""
        out = super().map_input(x, image_fn, boxes_fn)
        if "prev_image" in x:
            out["prev_image"] = image_fn(x["prev_image"])
        if "prev_boxes" in x:
            out["prev_boxes"] = boxes_fn(torch.as_tensor(x["prev_boxes"], dtype=torch.float32))
        return out

    def merge_mirrored(self, predictions, mirrored, keypoint_flip_indices=None):
        """CenterNet's flip test, and the mirror's outputs flipped back and averaged with the
        image's: "displacement" (N, 2, H, W), previous centre minus centre, its x negated;
        "amodal_box" (N, 4, H, W), distances from the cell's corner, the mirror's (l', t', r',
        b') being (1 - r', t', 1 - l', b') from the cell."""
        merged = super().merge_mirrored(predictions, mirrored, keypoint_flip_indices)
        back = mirrored["displacement"].flip(-1)
        mirror_x = back.new_tensor([-1.0, 1.0]).view(1, 2, 1, 1)
        merged["displacement"] = (predictions["displacement"] + back * mirror_x) / 2
        if "amodal_box" in predictions:
            l, t, r, b = mirrored["amodal_box"].flip(-1).unbind(dim=1)
            mirror = torch.stack([1 - r, t, 1 - l, b], dim=1)
            merged["amodal_box"] = (predictions["amodal_box"] + mirror) / 2
        return merged

    def postprocess(self, results, output_sizes, image_sizes):
        """CenterNet's rescaling to ``output_sizes``, ``pred_displacements`` scaled alike."""
        for r, (height, width), size in zip(results, output_sizes, image_sizes):
            scale = r.pred_displacements.new_tensor([width / size[1], height / size[0]])
            r.pred_displacements = r.pred_displacements * scale
        return super().postprocess(results, output_sizes, image_sizes)
