"""Test-time augmentation of CenterNet: :class:`CenterNetWithTTA`, a wrapper around a trained
``CenterNet`` like Detectron2's ``GeneralizedRCNNWithTTA``, and the pure functions it runs: flip
merging of the head's outputs, resizing for multi-scale testing, and merging of the detections of
several scales.

Per scale the wrapper runs the model's network on the images and their mirror images in one
batch, merges the two outputs with :func:`merge_flipped` before decoding, maps the detections to
the original images, and merges the scales with :func:`merge_detections`.

Shape shorthand:
    N: images, K: classes, H/W: output grid, V: views (augmented copies) of an image.
"""

from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.structures import Instances
from torch import Tensor, nn
from torchvision.ops import batched_nms

__all__ = [
    "CANVASES",
    "CenterNetWithTTA",
    "canvas_size",
    "place_on_canvas",
    "mean_probability_logits",
    "merge_flipped",
    "scaled_size",
    "resize_image",
    "resize_input",
    "merge_detections",
]

# Test-time canvases (INPUT.CENTERNET.TEST_CANVAS): "" Detectron2's (the image at the top left,
# padded with the mean colour to the backbone's size divisibility); "square" CenterNet's default
# test input (the image centred on a black square of its long side); "keep_res" CenterNet's
# --keep_res (the image centred on black, each side padded to (side | 31) + 1).
CANVASES = ("", "square", "keep_res")
# The ltrb channels (l, t, r, b) of a mirror image, mirrored back: l and r swap.
_MIRROR_LTRB = [2, 1, 0, 3]


def mean_probability_logits(logits: Sequence[Tensor]) -> Tensor:
    """The logits of the mean of the probabilities ``sigmoid(x_v)`` of V views (CenterNet's flip
    test averages heatmap probabilities, not logits):
    ``log(sum_v sigmoid(x_v)) - log(sum_v sigmoid(-x_v))`` by ``logsumexp`` of ``logsigmoid``,
    finite for any finite logits (the 1 / V of both means cancels).

    Args:
        logits: V tensors of one shape, e.g. (N, K, H, W).
    Returns:
        float32 logits of that shape; ``sigmoid`` of them is the mean probability.
    """
    x = torch.stack(list(logits)).float()  # (V, ...)
    return torch.logsumexp(F.logsigmoid(x), dim=0) - torch.logsumexp(F.logsigmoid(-x), dim=0)


def merge_flipped(
    predictions: Dict[str, Tensor],
    mirrored: Dict[str, Tensor],
    box_head: str,
    keypoint_flip_indices: Optional[Sequence[int]] = None,
) -> Dict[str, Tensor]:
    """Merge the head's outputs on images and on their horizontal mirror images (the whole padded
    input flipped, so output cell x of the mirror is cell W - 1 - x of the image).

    The mirror's outputs are flipped back along W, then:
      * "heatmap": logits of the mean probability (:func:`mean_probability_logits`);
      * "size": mean of the two;
      * "box" (ltrb): mean of the two, the mirror's l and r swapped (a cell centre maps onto a
        cell centre, see :mod:`.targets`);
      * "offset": the image's alone, as CenterNet's reference code (a mirrored sub-cell offset
        belongs to the neighbouring cell when the centre is not on a cell boundary);
      * keypoints (the paper's flip test), their types swapped by ``keypoint_flip_indices``
        (Detectron2's ``create_keypoint_hflip_indices``: keypoint j of the mirror is keypoint
        ``keypoint_flip_indices[j]`` of the image): "keypoint_heatmap" as "heatmap";
        "keypoints" the mean offset, a mirrored x offset ``dx'`` from a mirrored cell being
        ``1 - dx'`` from the cell (a cell spans [x, x + 1) cells); "keypoint_offset" as
        "offset";

    A model with more outputs merges them in its ``merge_mirrored`` (CenterTrack's).

    Args:
        predictions, mirrored: the head's outputs, "heatmap" (N, K, H, W) logits and "size" /
            "offset" (N, 2, H, W) (``box_head`` "size_offset") or "box" (N, 4, H, W) ("ltrb"),
            in cells; with keypoints "keypoints" (N, 2J, H, W), "keypoint_heatmap" (N, J, H, W)
            and "keypoint_offset" (N, 2, H, W).
        box_head: the head's ``box_head``.
        keypoint_flip_indices: J indices; None: keypoints are not swapped.
    Returns:
        the merged outputs, same keys and shapes.
    """
    back = {name: x.flip(-1) for name, x in mirrored.items()}
    merged = {"heatmap": mean_probability_logits([predictions["heatmap"], back["heatmap"]])}
    if box_head == "ltrb":
        merged["box"] = (predictions["box"] + back["box"][:, _MIRROR_LTRB]) / 2
    else:
        merged["size"] = (predictions["size"] + back["size"]) / 2
        merged["offset"] = predictions["offset"]
    if "keypoints" in predictions:
        N, J2, H, W = predictions["keypoints"].shape
        order = list(range(J2 // 2)) if keypoint_flip_indices is None else keypoint_flip_indices
        order = torch.as_tensor(list(order), dtype=torch.long, device=back["keypoints"].device)
        heat = back["keypoint_heatmap"][:, order]
        offsets = back["keypoints"].view(N, J2 // 2, 2, H, W)[:, order]
        offsets = torch.stack([1 - offsets[:, :, 0], offsets[:, :, 1]], dim=2).view(N, J2, H, W)
        merged["keypoint_heatmap"] = mean_probability_logits(
            [predictions["keypoint_heatmap"], heat]
        )
        merged["keypoints"] = (predictions["keypoints"] + offsets) / 2
        merged["keypoint_offset"] = predictions["keypoint_offset"]
    return merged


def scaled_size(height: int, width: int, min_size: int, max_size: int) -> Tuple[int, int]:
    """(height, width) of an image of the given size resized so that its short side is
    ``min_size``, unless its long side would exceed ``max_size`` (Detectron2's
    ``ResizeShortestEdge``, as TEST.AUG.MIN_SIZES / MAX_SIZE for Detectron2's R-CNN TTA), each
    side at least 1 pixel (a 1x1000 image would otherwise get a side of 0)."""
    h, w = ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)
    return max(h, 1), max(w, 1)


def resize_image(image: Tensor, size: Tuple[int, int]) -> Tensor:
    """An image (C, h, w), any dtype, resized bilinearly to ``size`` (height, width), as float32;
    returned unresized (as float32) if it has that size already."""
    image = image.float()
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def resize_input(
    model: nn.Module, x: Dict, size: Tuple[int, int], device: torch.device
) -> Dict[str, Tensor]:
    """A model input (dict) with its "image" resized to ``size`` (height, width) by
    :func:`resize_image`, and the model's other per-image inputs alike (``model.map_input``:
    CenterTrack's "prev_image" resized, "prev_boxes" scaled)."""
    h, w = x["image"].shape[-2:]
    scale = torch.tensor([size[1] / w, size[0] / h] * 2, device=device)
    return model.map_input(
        x, lambda image: resize_image(image.to(device), size), lambda b: b.to(device) * scale
    )


def canvas_size(height: int, width: int, canvas: str, divisibility: int = 1) -> Tuple[int, int]:
    """(height, width) of the test canvas (:data:`CANVASES`) for an image of the given size:
    "square": the long side, rounded up to ``divisibility``; "keep_res": ``(side | 31) + 1``
    each (CenterNet's ``--keep_res``, a multiple of 32 strictly above the side's last one)."""
    if canvas == "square":
        side = -(-max(height, width) // divisibility) * divisibility
        return side, side
    if canvas == "keep_res":
        return (height | 31) + 1, (width | 31) + 1
    raise ValueError(f"INPUT.CENTERNET.TEST_CANVAS must be one of {list(CANVASES)}, got {canvas!r}")


def place_on_canvas(
    model: nn.Module, x: Dict, size: Tuple[int, int], device: torch.device
) -> Tuple[Dict, Tensor]:
    """A model input (dict) with its "image" (C, h, w) centred on a canvas of ``size`` (height,
    width) of 0-valued (black) pixels, as CenterNet's test-time affine warp places it, and the
    model's other per-image inputs alike (``model.map_input``: CenterTrack's "prev_image"
    placed, "prev_boxes" shifted).

    Returns:
        the input and the image's offset on the canvas, (2,) float (x, y) pixels.
    """
    h, w = x["image"].shape[-2:]
    top, left = (size[0] - h) // 2, (size[1] - w) // 2
    pad = (left, size[1] - w - left, top, size[0] - h - top)
    offset = torch.tensor([float(left), float(top)], device=device)
    placed = model.map_input(
        x,
        lambda image: F.pad(image.to(device).float(), pad),
        lambda boxes: boxes.to(device) + offset.repeat(2),
    )
    return placed, offset


def _off_canvas(result: Instances, offset: Tensor, size: Tuple[int, int]) -> Instances:
    """Detections on a canvas moved to the image placed at ``offset`` of size ``size``."""
    moved = Instances(size)
    for name, value in result.get_fields().items():
        if name == "pred_boxes":
            value = type(value)(value.tensor - offset.repeat(2))
        elif name == "pred_keypoints":
            value = torch.cat([value[..., :2] - offset, value[..., 2:]], dim=-1)
        moved.set(name, value)
    return moved


def merge_detections(instances: List[Instances], nms_thresh: float, topk: int) -> Instances:
    """One image's detections from several scales, in the same (original) image size, merged:
    duplicates removed by class-wise NMS (``torchvision.ops.batched_nms``), then the ``topk``
    highest scores kept.

    Args:
        instances: Instances with ``pred_boxes`` (XYXY pixels), ``scores``, ``pred_classes``.
        nms_thresh: IoU above which the lower-scored of two same-class boxes is dropped.
        topk: detections kept.
    Returns:
        Instances sorted by descending score.
    """
    merged = Instances.cat(instances)
    keep = batched_nms(
        merged.pred_boxes.tensor.float(), merged.scores.float(), merged.pred_classes, nms_thresh
    )
    return merged[keep[:topk]]


class CenterNetWithTTA(nn.Module):
    """A trained ``CenterNet`` with test-time augmentation, same inputs and outputs as its
    inference (``[{"instances": Instances}]`` in each input's "height" x "width"), built from
    Detectron2's ``TEST.AUG`` keys: ``FLIP``, ``MIN_SIZES`` (empty: the inputs' own size) and
    ``MAX_SIZE``, and ``MODEL.CENTERNET.TTA_NMS_THRESH``. Used by ``Trainer.test_with_TTA``,
    ``tools/train_net.py --eval-only`` and ``CenterNetPredictor`` when ``TEST.AUG.ENABLED``.

    It also places each view on the authors' test canvas (``INPUT.CENTERNET.TEST_CANVAS``,
    :data:`CANVASES`: the image centred on black, :func:`place_on_canvas`) and moves the
    detections back; with ``TEST.AUG.ENABLED`` False it does only that (``Trainer.test`` and the
    predictor wrap the model for it).
    """

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        flip: bool = True,
        min_sizes: Sequence[int] = (),
        max_size: int = 4000,
        nms_thresh: float = 0.5,
        keypoint_flip_indices: Optional[Sequence[int]] = None,
        canvas: str = "",
    ):
        """
        Args:
            model: a ``CenterNet`` (not wrapped in DistributedDataParallel), run in eval mode.
            flip: also run on the mirror images and merge the outputs (flip test).
            min_sizes: run at each of these short sides (long side at most ``max_size``), input
                pixels, and merge the detections; empty: the inputs' own size alone.
            nms_thresh: IoU of the class-wise NMS that merges the detections of several scales.
            keypoint_flip_indices: for a model with keypoints, keypoint j of a mirror image is
                keypoint ``keypoint_flip_indices[j]`` (``MODEL.CENTERNET.KEYPOINT_FLIP_INDICES``;
                None: the model's saved ``keypoint_flip_indices``, else an error).
            canvas: each view's canvas, one of :data:`CANVASES` ("": Detectron2's padding).
        """
        super().__init__()
        if canvas not in CANVASES:
            raise ValueError(
                f"INPUT.CENTERNET.TEST_CANVAS must be one of {list(CANVASES)}, got {canvas!r}"
            )
        if any(int(s) != s or s <= 0 for s in min_sizes):
            raise ValueError(
                f"TEST.AUG.MIN_SIZES must be positive integers (pixels), got {min_sizes}"
            )
        if not 0 < nms_thresh <= 1:
            raise ValueError(f"MODEL.CENTERNET.TTA_NMS_THRESH must be in (0, 1], got {nms_thresh}")
        self.model = model
        self.flip = flip
        self.min_sizes = tuple(int(s) for s in min_sizes)
        self.max_size = max_size
        self.nms_thresh = nms_thresh
        self.keypoint_flip_indices = keypoint_flip_indices
        self.canvas = canvas

    @classmethod
    def from_config(cls, cfg, model: nn.Module):
        """``TEST.AUG`` when ``TEST.AUG.ENABLED``, else no augmentation (the canvas alone)."""
        aug, enabled = cfg.TEST.AUG, cfg.TEST.AUG.ENABLED
        return {
            "model": model,
            "flip": aug.FLIP and enabled,
            "min_sizes": tuple(aug.MIN_SIZES) if enabled else (),
            "max_size": aug.MAX_SIZE,
            "canvas": cfg.INPUT.CENTERNET.TEST_CANVAS,
            "nms_thresh": cfg.MODEL.CENTERNET.TTA_NMS_THRESH,
            "keypoint_flip_indices": list(cfg.MODEL.CENTERNET.KEYPOINT_FLIP_INDICES) or None,
        }

    def predict(self, *inputs: Tensor) -> Dict[str, Tensor]:
        """The model's network outputs on its inputs (``model.network_inputs``: normalised
        images (N, 3, H, W), and for CenterTrack their previous frames and heatmaps); with
        ``flip`` the outputs on the inputs and on their mirror images (one batch of 2N) merged
        by :func:`merge_flipped`."""
        if not self.flip:
            return self.model.run_network(*inputs)
        n = inputs[0].shape[0]
        out = self.model.run_network(*(torch.cat([x, x.flip(-1)]) for x in inputs))
        halves = [
            {k: [x[i] for x in v] if isinstance(v, list) else v[i] for k, v in out.items()}
            for i in (slice(None, n), slice(n, None))
        ]
        flip_indices = self._keypoint_flip_indices() if "keypoints" in out else None
        return self.model.merge_mirrored(*halves, flip_indices)

    def _keypoint_flip_indices(self) -> List[int]:
        """The keypoint flip map: the config's, else the one saved with the model's weights;
        ``ValueError`` if neither is known (the flip test would average left and right)."""
        if self.keypoint_flip_indices:
            return list(self.keypoint_flip_indices)
        saved = getattr(self.model, "keypoint_flip_indices", None)
        if saved is not None and bool((saved >= 0).all()):
            return saved.tolist()
        raise ValueError(
            "the flip test of a keypoint model needs its left/right keypoint pairs: set "
            "MODEL.CENTERNET.KEYPOINT_FLIP_INDICES (a trained run's config.yaml has them), use "
            "weights that hold them, or set TEST.AUG.FLIP False"
        )

    def forward(self, batched_inputs: List[Dict[str, Tensor]]) -> List[Dict[str, Instances]]:
        """The model's inference with test-time augmentation (:meth:`detect`)."""
        return self.detect(batched_inputs)[0]

    def detect(
        self, batched_inputs: List[Dict[str, Tensor]]
    ) -> Tuple[List[Dict[str, Instances]], Dict[str, Tensor]]:
        """For each short side of ``min_sizes`` (or the inputs' own size) the images are resized
        from their "image" tensors to that scale of the original "height"/"width"
        (:func:`scaled_size`; CenterTrack's "prev_image" and "prev_boxes" alike:
        :func:`resize_input`), run (:meth:`predict`), decoded and mapped to the original size;
        with several scales an image's detections are merged by class-wise NMS and the top
        ``TEST.DETECTIONS_PER_IMAGE`` kept (one scale needs no NMS: CenterNet has none).

        Returns:
            the outputs, as the model's ``detect``, and the (flip-merged) head's outputs of the
            first scale, with "view_offsets" (N, 2) (x, y) and "view_sizes" (N, 2) (h, w): where
            each image lies in the network's input of that scale, in its pixels.
        """
        model = self.model
        sizes = [
            (x.get("height", x["image"].shape[-2]), x.get("width", x["image"].shape[-1]))
            for x in batched_inputs
        ]
        per_scale, first = [], None  # per scale, per image: Instances in the original size
        min_sizes: Sequence[Optional[int]] = self.min_sizes or (None,)
        for min_size in min_sizes:
            inputs = batched_inputs
            if min_size is not None:
                inputs = [
                    resize_input(model, x, scaled_size(h, w, min_size, self.max_size), model.device)
                    for x, (h, w) in zip(batched_inputs, sizes)
                ]
            with torch.no_grad():
                placed, offsets = self._on_canvas(inputs)
                images = model.preprocess_image(placed)
                predictions = self.predict(*model.network_inputs(placed, images))
                results = model.inference(images, predictions)
            if first is None:
                first = dict(predictions)
                first["view_sizes"] = torch.tensor([x["image"].shape[-2:] for x in inputs])
                first["view_offsets"] = (
                    torch.stack(offsets).cpu().long()
                    if offsets is not None
                    else torch.zeros(len(inputs), 2, dtype=torch.long)
                )
            image_sizes = images.image_sizes
            if offsets is not None:  # the image's own size within the canvas
                image_sizes = [tuple(x["image"].shape[-2:]) for x in inputs]
                results = [_off_canvas(r, o, s) for r, o, s in zip(results, offsets, image_sizes)]
            per_scale.append(model.postprocess(results, sizes, image_sizes))
        if len(per_scale) == 1:
            merged = per_scale[0]
        else:
            merged = [
                merge_detections(list(r), self.nms_thresh, model.test_topk) for r in zip(*per_scale)
            ]
        return [{"instances": r} for r in merged], first

    def _on_canvas(self, inputs: List[Dict]) -> Tuple[List[Dict], Optional[List[Tensor]]]:
        """The inputs placed on :attr:`canvas` and their offsets (None without a canvas)."""
        if not self.canvas:
            return inputs, None
        divisibility = max(self.model.backbone.size_divisibility, 1)
        placed = [
            place_on_canvas(
                self.model,
                x,
                canvas_size(*x["image"].shape[-2:], self.canvas, divisibility),
                self.model.device,
            )
            for x in inputs
        ]
        return [p[0] for p in placed], [p[1] for p in placed]
