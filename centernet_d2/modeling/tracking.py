"""The ``CenterTrack`` meta-architecture ("Tracking Objects as Points", Zhou, Koltun and
Krähenbühl 2020): CenterNet that also sees the previous frame and a heatmap of the previous
frame's objects, and predicts for each object centre its displacement to the object's centre in
the previous frame. Everything else (backbones, head towers, targets, losses, decoding) is
:class:`~.meta_arch.CenterNet`'s.

Where the previous frame enters, two choices (``MODEL.CENTERTRACK.FUSION``), both leaving the
backbone's parameters as they are, so that a detector's or an ImageNet checkpoint loads into the
backbone without a missing or reshaped key:

* "stem", CenterTrack's (:class:`StemFusion`): the previous image and heatmap go through layers of
  their own (conv of the first layer's kernel size, norm, ReLU) whose outputs are added to the
  output of the backbone's first layer (DLA's ``base_layer``, ResNet's ``stem``, MobileNet's
  ``features[0]``; :func:`first_layer`), by a forward hook on that layer:

      first_layer(image) + relu(norm(conv(prev_image))) + relu(norm(conv(prev_heatmap)))

* "input": they are fused into the image before the backbone (:class:`PrevFrameFusion`), which
  any backbone takes, the conv zero-initialised (an untrained fusion passes the image through):

      fused = image + conv3x3(norm([image, prev_image, prev_heatmap]))      (N, 3, H, W)

Shape shorthand:
    N: images, K: classes, M: ground-truth objects of the batch, P: boxes of the previous frames,
    H/W: output grid, Hi/Wi: padded input size.

Naming convention:
    Displacements are ``previous centre - centre``: in cells (output-grid units) in the head's
    "displacement" output and the targets, in input pixels in ``pred_displacements``.
"""

import contextlib
import dataclasses
import functools
import itertools
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.config import configurable
from detectron2.layers import Conv2d, get_norm
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import get_event_storage
from torch import Tensor, nn

from .decode import amodal_boxes_at, decode_predictions, to_instances, values_at
from .head import CenterNetHead
from .losses import l1_at_peaks
from .meta_arch import CenterNet
from .targets import CenterNetTargets, batch_objects, cornernet_paper_radius, draw_gaussians

__all__ = [
    "CenterTrack",
    "CenterTrackTargets",
    "PrevFrameFusion",
    "StemFusion",
    "amodal_box_targets",
    "displacement_targets",
    "first_layer",
    "render_prev_heatmap",
]

# The previous-frame heatmap draws a gaussian per box with CornerNet's radius at this IoU
# (CenterTrack's gaussian_radius default), in input pixels, whatever the model's TARGET_KIND.
PREV_HEATMAP_MIN_OVERLAP = 0.7


class PrevFrameFusion(nn.Module):
    """Fuses the previous frame and its heatmap into the image:
    ``image + conv3x3(norm([image, prev_image, prev_heatmap]))``, the norm per channel (so that
    the sparse [0, 1] heatmap has the scale of the images) and the conv zero-initialised (an
    untrained fusion returns the image).
    It works at the input's full resolution on 3 + 3 + 1 channels: cheap next to any backbone.
    """

    def __init__(self, *, prev_image: bool = True, prev_heatmap: bool = True, norm: str = "BN"):
        """
        Args:
            prev_image, prev_heatmap: which previous-frame inputs are fused (the image always).
            norm: the per-channel norm of the stacked inputs ("" for none), as Detectron2's
                ``get_norm`` ("BN", "SyncBN", "FrozenBN"; not "GN", which mixes channels).
        """
        super().__init__()
        self.prev_image = prev_image
        self.prev_heatmap = prev_heatmap
        in_channels = 3 + 3 * prev_image + prev_heatmap
        self.norm = get_norm(norm, in_channels) or nn.Identity()
        self.conv = Conv2d(in_channels, 3, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, images: Tensor, prev_images: Tensor, prev_heatmaps: Tensor) -> Tensor:
        """
        Args:
            images, prev_images: (N, 3, Hi, Wi) normalised; prev_heatmaps: (N, 1, Hi, Wi).
        Returns:
            (N, 3, Hi, Wi), the backbone's input.
        """
        x = [images]
        if self.prev_image:
            x.append(prev_images)
        if self.prev_heatmap:
            x.append(prev_heatmaps.to(images.dtype))
        return images + self.conv(self.norm(torch.cat(x, dim=1)))


def first_layer(backbone: nn.Module) -> Tuple[str, nn.Module]:
    """The first layer of a backbone, where CenterTrack adds the previous frame's features: DLA's
    ``base_layer``, Detectron2 ResNet's ``stem`` or a torchvision MobileNet's ``features[0]``,
    looked for in ``backbone`` and down its chain of ``bottom_up`` backbones (FPN, BiFPN,
    deconvolutions, DLA-up).

    Returns:
        the layer's name in ``backbone`` (e.g. "bottom_up.features.0") and the layer.
    Raises:
        ValueError: no such layer (use ``MODEL.CENTERTRACK.FUSION: "input"``).
    """
    module, prefix = backbone, ""
    while True:
        for name in ("base_layer", "stem"):
            if isinstance(getattr(module, name, None), nn.Module):
                return prefix + name, getattr(module, name)
        features = getattr(module, "features", None)
        if isinstance(features, nn.Sequential) and len(features) > 0:
            return prefix + "features.0", features[0]
        bottom_up = getattr(module, "bottom_up", None)
        if not isinstance(bottom_up, nn.Module):
            raise ValueError(
                f"MODEL.CENTERTRACK.FUSION 'stem' needs a backbone with a first layer to add the "
                f"previous frame to (DLA's base_layer, ResNet's stem, MobileNet's features[0], "
                f"possibly under bottom_up); {type(backbone).__name__} has none: use FUSION "
                f"'input'"
            )
        module, prefix = bottom_up, prefix + "bottom_up."


@torch.no_grad()
def first_layer_shape(layer: nn.Module, size: int = 64) -> Tuple[int, int, int, int]:
    """(input channels, output channels, stride, kernel size) of a backbone's first layer: the
    channels and stride found by running it in eval mode on zeros of ``size`` x ``size`` (its
    running statistics are left untouched), the kernel size that of its first ``Conv2d``."""
    conv = next((m for m in layer.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"the backbone's first layer {type(layer).__name__} has no Conv2d")
    param = next(layer.parameters())
    training = layer.training
    try:
        out = layer.eval()(param.new_zeros(1, conv.in_channels, size, size))
    finally:
        layer.train(training)
    return conv.in_channels, out.shape[1], size // out.shape[-1], conv.kernel_size[0]


def _conv_norm_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: str
) -> nn.Sequential:
    """CenterTrack's ``pre_img_layer`` / ``pre_hm_layer``: conv (no bias), norm, ReLU."""
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=not norm,
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, get_norm(norm, out_channels) or nn.Identity(), nn.ReLU(inplace=True))


class StemFusion(nn.Module):
    """CenterTrack's fusion: ``relu(norm(conv(prev_image))) + relu(norm(conv(prev_heatmap)))``
    at the resolution, channels and kernel size of the backbone's first layer, added to that
    layer's output by a forward hook (:meth:`attach`), as CenterTrack's
    ``base_layer(x) + pre_img_layer(pre_img) + pre_hm_layer(pre_hm)``. The convs are randomly
    initialised (kaiming, norm weight 1), as CenterTrack's; with ``zero_init`` each layer's output
    is multiplied by a learnt per-channel gain that starts at 0, so that the tracker starts as
    the detector it is built from (CenterTrack's random start adds features of unit scale to a
    trained first layer, which the detector must first learn to live with).

    The backbone's forward is unchanged and its parameters stay its own (a detector's checkpoint
    loads with ``fusion.*`` as the only new keys); the features are added only inside
    :meth:`added_to_first_layer`: elsewhere the backbone is the detector's.
    """

    def __init__(
        self,
        *,
        channels: int,
        stride: int,
        kernel_size: int = 7,
        prev_image: bool = True,
        prev_heatmap: bool = True,
        norm: str = "BN",
        zero_init: bool = False,
    ):
        """
        Args:
            channels, stride: the output channels and stride of the backbone's first layer.
            kernel_size: of the convs, odd: CenterTrack's 7 is that of DLA's first layer; the
                model builds them with its backbone's first layer's.
            prev_image, prev_heatmap: which previous-frame inputs are added (at least one).
            norm: the norm after each conv, as Detectron2's ``get_norm`` ("" for none).
            zero_init: scale each layer's output by a per-channel gain, initially 0.
        """
        super().__init__()
        if not (prev_image or prev_heatmap):
            raise ValueError(
                "MODEL.CENTERTRACK.FUSION 'stem' needs PREV_IMAGE or PREV_HEATMAP (or both)"
            )
        self.stride = stride
        layer = functools.partial(
            _conv_norm_relu,
            out_channels=channels,
            kernel_size=kernel_size,
            stride=stride,
            norm=norm,
        )
        self.prev_image_layer = layer(3) if prev_image else None
        self.prev_heatmap_layer = layer(1) if prev_heatmap else None
        self.gains = (
            nn.Parameter(torch.zeros(prev_image + prev_heatmap, channels, 1, 1))
            if zero_init
            else None
        )  # (prev image and/or prev heatmap, C, 1, 1)
        self._handle = None
        self._pending: Optional[Tensor] = None

    def attach(self, layer: nn.Module) -> "StemFusion":
        """Add the features to ``layer``'s output (the backbone's first layer) from now on."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = layer.register_forward_hook(self._add_to_output)
        return self

    def _add_to_output(self, module: nn.Module, inputs, output: Tensor) -> Optional[Tensor]:
        if self._pending is None:
            return None  # the backbone alone: the detector's
        if self._pending.shape != output.shape:
            raise ValueError(
                f"MODEL.CENTERTRACK.FUSION 'stem': the previous frame's features "
                f"{tuple(self._pending.shape)} do not match the backbone's first layer's output "
                f"{tuple(output.shape)}"
            )
        return output + self._pending

    def forward(self, prev_images: Tensor, prev_heatmaps: Tensor) -> Tensor:
        """
        Args:
            prev_images: (N, 3, Hi, Wi) normalised; prev_heatmaps: (N, 1, Hi, Wi).
        Returns:
            (N, C, Hi / stride, Wi / stride): what is added to the first layer's output.
        """
        outputs = []
        if self.prev_image_layer is not None:
            outputs.append(self.prev_image_layer(prev_images))
        if self.prev_heatmap_layer is not None:
            outputs.append(self.prev_heatmap_layer(prev_heatmaps.to(prev_images.dtype)))
        if self.gains is not None:
            outputs = [x * g for x, g in zip(outputs, self.gains)]
        return outputs[0] if len(outputs) == 1 else outputs[0] + outputs[1]

    @contextlib.contextmanager
    def added_to_first_layer(self, prev_images: Tensor, prev_heatmaps: Tensor):
        """Within the block, the backbone's first layer outputs its own output plus
        ``self(prev_images, prev_heatmaps)``."""
        self._pending = self(prev_images, prev_heatmaps)
        try:
            yield
        finally:
            self._pending = None


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
        if self.multilevel:
            raise ValueError(
                "CenterTrack runs on a single-level CenterNet: TARGET_KIND 'multilevel' is not "
                "supported"
            )
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
        shapes = [ret["backbone"].output_shape()[f] for f in ret["head_in_features"]]
        extra = {"displacement": 2}
        weights = dict(ret["loss_settings"].weights, loss_displacement=t.DISPLACEMENT_WEIGHT)
        if t.AMODAL_BOX:
            extra["amodal_box"] = 4
            weights["loss_amodal_box"] = t.AMODAL_BOX_WEIGHT
        ret["head"] = CenterNetHead(cfg, shapes, extra_outputs=extra)
        ret["loss_settings"] = dataclasses.replace(ret["loss_settings"], weights=weights)
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
        """The top ``test_topk`` peaks with their boxes (CenterNet's, or the amodal boxes with
        that head: :func:`~.decode.amodal_boxes_at`) and displacements; fixed-size and
        tensor-only, what :meth:`inference` thresholds and export traces.

        Returns:
            boxes (N, T, 4) XYXY input pixels, scores (N, T) descending, classes (N, T) long,
            displacements (N, T, 2) float32 input pixels.
        """
        boxes, scores, classes, positions = decode_predictions(
            predictions, self.stride, self.test_topk, self.box_head, with_positions=True
        )
        if self.amodal_box:
            boxes = amodal_boxes_at(positions, predictions["amodal_box"], self.stride)
        displacements = values_at(predictions["displacement"], positions).float() * self.stride
        return boxes, scores, classes, displacements

    def inference(self, images: ImageList, predictions: Dict[str, Tensor]) -> List[Instances]:
        """:meth:`decode`'s detections scoring at least ``test_score_thresh``, boxes clipped to
        the input, each with ``pred_displacements`` (D, 2) in input pixels."""
        boxes, scores, classes, displacements = self.decode(predictions)
        return to_instances(
            boxes,
            scores,
            classes,
            images.image_sizes,
            self.test_score_thresh,
            fields={"pred_displacements": displacements},
        )

    def postprocess(
        self,
        results: List[Instances],
        output_sizes: Sequence[Tuple[int, int]],
        image_sizes: Sequence[Tuple[int, int]],
    ) -> List[Instances]:
        """CenterNet's rescaling to ``output_sizes``, ``pred_displacements`` scaled alike."""
        for r, (height, width), size in zip(results, output_sizes, image_sizes):
            scale = r.pred_displacements.new_tensor([width / size[1], height / size[0]])
            r.pred_displacements = r.pred_displacements * scale
        return super().postprocess(results, output_sizes, image_sizes)
