"""Training pairs of CenterTrack: a frame and a previous frame with the objects of both, and the
disturbed boxes that the previous-frame heatmap is drawn from (:class:`CenterTrackDatasetMapper`).

A frame of a video is paired with a frame of the same video less than ``max_frame_dist`` frames
away (earlier, later or itself, uniformly, as CenterTrack's ``_load_pre_data``); both go through
the frame's geometric augmentation (resize, crop, flip), and each frame gets colour jitter of its
own (as CenterTrack's ``color_aug`` per image): Detectron2's contrast and saturation jitter blend
an image with its own mean and grey image, which must not be the other frame's. A still image, or a frame paired with itself, is paired with a copy of
its augmented self shifted and scaled by :func:`static_pair_transform` (CenterTrack's training on
still images: any detection set trains a tracker). The boxes of the previous frame are then
disturbed as CenterTrack's ``_get_pre_dets`` does (:func:`disturb_prev_boxes`).

Randomness comes from numpy's global RNG, as Detectron2's augmentations, which the training
loader seeds per sample (:func:`.train_loader.seeded_rngs`).

Shape shorthand: M objects of the frame, P of the previous frame, Q disturbed boxes.
"""

import copy
import dataclasses
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances
from PIL import Image

from .image_io import read_image
from .mapper import CenterNetDatasetMapper

__all__ = [
    "CenterTrackDatasetMapper",
    "FALSE_POSITIVE_JITTER",
    "PairSettings",
    "disturb_prev_boxes",
    "link_prev_boxes",
    "static_pair_transform",
]

# Jitter of a false positive around its object, in object widths / heights (CenterTrack's
# hard-coded 0.05).
FALSE_POSITIVE_JITTER = 0.05


@dataclasses.dataclass(frozen=True)
class PairSettings:
    """How training pairs are made (``INPUT.CENTERTRACK.*``); invalid values raise ``ValueError``
    naming the key.

    Attributes:
        max_frame_dist: the previous frame is less than this many frames away (``MAX_FRAME_DIST``).
        same_augmentation: the two frames of a video pair get the same augmentation; else the
            previous one is also shifted and scaled (``SAME_AUGMENTATION``).
        shift, scale: of :func:`static_pair_transform` (``SHIFT``, ``SCALE``).
        jitter, drop, false_positive: of :func:`disturb_prev_boxes` (``PREV_HEATMAP_JITTER``,
            ``PREV_HEATMAP_DROP``, ``PREV_HEATMAP_FALSE_POSITIVE``).
    """

    max_frame_dist: int = 3
    same_augmentation: bool = True
    shift: float = 0.05
    scale: float = 0.05
    jitter: float = 0.05
    drop: float = 0.4
    false_positive: float = 0.1

    def __post_init__(self):
        key = "INPUT.CENTERTRACK."
        if self.max_frame_dist < 1:
            raise ValueError(f"{key}MAX_FRAME_DIST must be >= 1, got {self.max_frame_dist}")
        if not 0 <= self.scale < 0.5:
            raise ValueError(f"{key}SCALE must be in [0, 0.5), got {self.scale}")
        for name, value in (("SHIFT", self.shift), ("PREV_HEATMAP_JITTER", self.jitter)):
            if value < 0:
                raise ValueError(f"{key}{name} must be >= 0, got {value}")
        for name, value in (
            ("PREV_HEATMAP_DROP", self.drop),
            ("PREV_HEATMAP_FALSE_POSITIVE", self.false_positive),
        ):
            if not 0 <= value <= 1:
                raise ValueError(f"{key}{name} must be a probability in [0, 1], got {value}")


def static_pair_transform(height: int, width: int, shift: float, scale: float) -> T.Transform:
    """The view of an image that CenterTrack's static-image training takes as its previous frame:
    the region of the image centred at ``(width / 2 + dx, height / 2 + dy)`` of ``f`` times the
    image's size, resized to the image's size (Detectron2's ``ExtentTransform``; outside the
    image: black). ``dx, dy`` are normal of standard deviation ``shift`` times the longer side,
    clipped to twice that; ``f`` is normal around 1 of standard deviation ``scale``, clipped to
    ``1 +- scale`` (CenterTrack's ``_get_aug_param(disturb=True)``). Objects thus move by
    ``-(dx, dy) / f`` about the centre and scale by ``1 / f``.

    Args:
        height, width: the image's size in pixels.
    Returns:
        the transform; ``apply_image`` and ``apply_box`` move pixels and boxes alike.
    """
    side = max(height, width)
    dx, dy = np.clip(np.random.randn(2) * shift, -2 * shift, 2 * shift) * side
    f = float(np.clip(np.random.randn() * scale + 1, 1 - scale, 1 + scale))
    cx, cy = width / 2 + dx, height / 2 + dy
    src = (cx - f * width / 2, cy - f * height / 2, cx + f * width / 2, cy + f * height / 2)
    return T.ExtentTransform(src, (height, width), interp=Image.BILINEAR, fill=0)


def disturb_prev_boxes(
    boxes: np.ndarray, jitter: float, drop: float, false_positive: float
) -> np.ndarray:
    """CenterTrack's disturbances of the previous frame's objects, which teach the model not to
    trust the previous-frame heatmap blindly: each box moves by a normal jitter of standard
    deviation ``jitter`` times its width (x) and height (y); it is dropped with probability
    ``drop`` (a lost object); a kept box gets a false positive next to it, moved from the true
    box by :data:`FALSE_POSITIVE_JITTER` times its size, with probability ``false_positive``.

    Args:
        boxes: (P, 4) XYXY pixels.
    Returns:
        (Q, 4) float32: the kept moved boxes, then the false positives.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    P = len(boxes)
    wh = boxes[:, 2:] - boxes[:, :2]  # (P, 2)
    moved = boxes + np.tile(np.random.randn(P, 2) * jitter * wh, 2)
    kept = np.random.rand(P) >= drop  # CenterTrack: drawn if random() > lost_disturb
    extra = kept & (np.random.rand(P) < false_positive)
    fp = boxes + np.tile(np.random.randn(P, 2) * FALSE_POSITIVE_JITTER * wh, 2)
    return np.concatenate([moved[kept], fp[extra]]).astype(np.float32)


def link_prev_boxes(instances: Instances, prev_instances: Instances) -> Boxes:
    """Per object of ``instances``, its box in ``prev_instances`` (same ``gt_track_ids``), or an
    all-zero box (no area: not tracked, see :func:`~centernet_d2.modeling.centertrack.
    displacement_targets`) when it is not there.

    Returns:
        (M, 4) Boxes, XYXY pixels.
    """
    ids, prev_ids = instances.gt_track_ids, prev_instances.gt_track_ids
    out = torch.zeros(len(ids), 4)
    if len(ids) and len(prev_ids):
        same = ids[:, None] == prev_ids[None, :]  # (M, P)
        found = same.any(dim=1)
        out[found] = prev_instances.gt_boxes.tensor[same.float().argmax(dim=1)[found]]
    return Boxes(out)


class CenterTrackDatasetMapper(CenterNetDatasetMapper):
    """:class:`.mapper.CenterNetDatasetMapper` for CenterTrack. At test time it is that mapper
    (a frame alone; the previous frame is the tracker's). In training it adds, per dataset dict:

    * "prev_image": (3, H, W) uint8, the previous frame after the same augmentation (see the
      module docstring), of the image's size;
    * "prev_boxes": (Q, 4) float32 XYXY pixels, the previous frame's boxes disturbed by
      :func:`disturb_prev_boxes`, drawn into the model's input heatmap;
    * in "instances" (with ``gt_boxes``, ``gt_classes``): ``gt_track_ids`` (an annotation's
      ``track_id``; in a still image its position) and ``gt_prev_boxes`` (:func:`link_prev_boxes`).
    """

    @configurable
    def __init__(
        self,
        is_train: bool = True,
        *,
        pair_settings: PairSettings = PairSettings(),
        frames: Sequence[dict] = (),
        **kwargs,
    ):
        """
        Args:
            pair_settings: how pairs are made (:class:`PairSettings`).
            frames: the dataset dicts that previous frames are drawn from (the training set);
                those with a ``video_id`` and ``frame_id`` (:mod:`.video`) form the videos;
                ``ValueError`` if two files are the same frame of a video id (two datasets
                sharing video ids).
            kwargs: :class:`.mapper.CenterNetDatasetMapper`'s arguments.
        """
        super().__init__(is_train, **kwargs)
        self.pair_settings = pair_settings
        augs = self.augmentations.augs
        self.geometric = T.AugmentationList([a for a in augs if not _is_photometric(a)])
        self.photometric = T.AugmentationList([a for a in augs if _is_photometric(a)])
        videos: Dict[object, Dict[int, dict]] = defaultdict(dict)
        for d in frames:
            if "video_id" not in d or "frame_id" not in d:
                continue
            other = videos[d["video_id"]].setdefault(d["frame_id"], d)
            if other["file_name"] != d["file_name"]:  # the same frame listed twice is fine
                raise ValueError(
                    f"frames {other['file_name']} and {d['file_name']} are both frame "
                    f"{d['frame_id']} of video {d['video_id']}: the training datasets' videos "
                    "need distinct video_id"
                )
        self._videos = {v: sorted(f.items(), key=lambda x: x[0]) for v, f in videos.items()}

    @classmethod
    def from_config(cls, cfg, is_train: bool = True, frames: Sequence[dict] = ()):
        ret = super().from_config(cfg, is_train)
        p = cfg.INPUT.CENTERTRACK
        ret["pair_settings"] = PairSettings(
            max_frame_dist=p.MAX_FRAME_DIST,
            same_augmentation=p.SAME_AUGMENTATION,
            shift=p.SHIFT,
            scale=p.SCALE,
            jitter=p.PREV_HEATMAP_JITTER,
            drop=p.PREV_HEATMAP_DROP,
            false_positive=p.PREV_HEATMAP_FALSE_POSITIVE,
        )
        ret["frames"] = frames
        return ret

    def prev_frame(self, dataset_dict: dict) -> Optional[dict]:
        """A frame of ``dataset_dict``'s video less than ``max_frame_dist`` frames away (it may
        be the frame itself), drawn uniformly; None for a still image or a video not in
        ``frames``."""
        frames = self._videos.get(dataset_dict.get("video_id"), [])
        frame_id = dataset_dict.get("frame_id")
        near = [d for f, d in frames if abs(f - frame_id) < self.pair_settings.max_frame_dist]
        return near[np.random.randint(len(near))] if near else None

    def _map(self, dataset_dict: dict, image: np.ndarray) -> dict:
        if not self.is_train:
            return super()._map(dataset_dict, image)
        utils.check_image_size(dataset_dict, image)
        prev_dict = self.prev_frame(dataset_dict)
        aug_input = T.AugInput(image)
        transforms = self.geometric(aug_input)  # shared by the two frames
        geometric_image = aug_input.image
        self.photometric(aug_input)  # the frame's own colours
        image = aug_input.image
        shape = image.shape[:2]
        instances = self._objects(dataset_dict.pop("annotations", []), transforms, shape)
        s = self.pair_settings
        if prev_dict is None or prev_dict["frame_id"] == dataset_dict["frame_id"]:
            # a still image: the previous frame is a shifted, scaled view of the geometrically
            # augmented image, with colours of its own
            shift = static_pair_transform(*shape, s.shift, s.scale)
            prev_image = self._recoloured(shift.apply_image(geometric_image))
            prev_boxes = Boxes(shift.apply_box(instances.gt_boxes.tensor.numpy()))
            prev_boxes.clip(shape)
            prev_instances = utils.filter_empty_instances(
                Instances(shape, gt_boxes=prev_boxes, gt_track_ids=instances.gt_track_ids)
            )
        else:
            prev_image = read_image(prev_dict["file_name"], format=self.image_format)
            utils.check_image_size(prev_dict, prev_image)
            if not s.same_augmentation:
                shift = static_pair_transform(*shape, s.shift, s.scale)
                transforms = T.TransformList(transforms.transforms + [shift])
            prev_image = self._recoloured(transforms.apply_image(prev_image))
            annotations = copy.deepcopy(prev_dict.get("annotations", []))
            prev_instances = self._objects(annotations, transforms, shape)
        instances.gt_prev_boxes = link_prev_boxes(instances, prev_instances)
        dataset_dict["instances"] = instances
        dataset_dict["image"] = _to_tensor(image)
        dataset_dict["prev_image"] = _to_tensor(prev_image)
        prev_boxes = prev_instances.gt_boxes.tensor.numpy()
        dataset_dict["prev_boxes"] = torch.from_numpy(
            disturb_prev_boxes(prev_boxes, s.jitter, s.drop, s.false_positive)
        )
        return dataset_dict

    def _recoloured(self, image: np.ndarray) -> np.ndarray:
        """``image`` after colour jitter drawn for it (the photometric augmentations)."""
        aug_input = T.AugInput(image)
        self.photometric(aug_input)
        return aug_input.image

    def _objects(
        self, annotations: List[dict], transforms: T.TransformList, shape: Tuple[int, int]
    ) -> Instances:
        """The non-crowd objects of ``annotations`` after ``transforms`` (Detectron2's
        ``DatasetMapper`` steps), with ``gt_track_ids``; those left without area dropped."""
        annotations = [a for a in annotations if a.get("iscrowd", 0) == 0]
        track_ids = [a.get("track_id", k) for k, a in enumerate(annotations)]
        for a in annotations:
            a.pop("segmentation", None)
            a.pop("keypoints", None)
        annotations = [
            utils.transform_instance_annotations(a, transforms, shape) for a in annotations
        ]
        instances = utils.annotations_to_instances(annotations, shape)
        instances.gt_track_ids = torch.tensor(track_ids, dtype=torch.int64)
        return utils.filter_empty_instances(instances)


# colour jitter: drawn per frame (geometric augmentations are shared by a pair)
_PHOTOMETRIC = (T.RandomBrightness, T.RandomContrast, T.RandomSaturation, T.RandomLighting)


def _is_photometric(aug: T.Augmentation) -> bool:
    return isinstance(aug, _PHOTOMETRIC)


def _to_tensor(image: np.ndarray) -> torch.Tensor:
    return torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
