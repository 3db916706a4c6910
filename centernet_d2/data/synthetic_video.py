"""The synthetic "shapes video" dataset: moving shapes to track, written as a COCO-video json
(see :mod:`.video`) from a :class:`ShapesVideoSpec`.

A video is a fixed camera over one background with distractors (drawn as the still shapes set's,
by :mod:`.shapes_render`) and 1-6 shapes of :data:`SHAPE_CLASSES`, each with its own class,
shape, size, rotation and colour for the whole video, moving at a constant velocity (up to
``max_speed`` px per frame, any direction) plus a small jitter per frame (``motion_noise``, px,
around the straight path). What makes it a tracking task:

* objects enter: some start outside an edge at a random frame and move in; objects leave by
  moving out;
* objects cross: in about half of the videos a second object's path crosses the first one's in
  the middle half of the video, across or against its motion, and any two objects may pass over
  each other; a later object is drawn over an
  earlier one (a fixed depth order);
* an object is annotated in a frame while at least ``min_visibility`` of its area is visible
  (inside the image and not covered), so it may drop out while hidden and come back under the
  same ``track_id``.

A crowd (``shapes_video_crowd_*``) adds to this: tens of objects, a few colours shared by all
(``num_colors``: objects look alike), static bars in front of them (``num_occluders``: long
occlusions) and fast motion (``max_speed``), so that paths cross all the time.

Boxes are XYWH in image pixels, the amodal box clipped to the image; ``area`` is the object's
pixel count inside the image; each annotation also has ``visibility``. ``track_id`` is unique
within the split: ``v * max_objects + k + 1`` for object ``k`` of video ``v`` (0-based; an object
never annotated leaves its id unused). Video ``v`` of a split
depends only on ``(seed, v)`` and the drawing fields, not on ``num_videos``.

Layout written by :func:`generate_shapes_video_split`::

    root/<split>/0001/000001.jpg ...      # video 1, frames 1, 2, ...
    root/annotations/<split>.json         # COCO-video json, written last: marks completion
"""

import dataclasses
import logging
import math
import os
from typing import Any, Dict, List, Tuple, Union

import cv2
import numpy as np
from tqdm import tqdm

from .shapes_render import (
    _SHAPE_FNS,
    GENERATOR_VERSION,
    GRID,
    SHAPE_CLASSES,
    SHIFT,
    _background,
    _draw_distractors,
    _pick_color,
    _to_cv,
)
from .shapes_spec import IMAGE_FORMATS, normalize_spec_fields
from .synthetic import (
    folder_written_atomically,
    generate_once,
    write_image,
    write_json_atomically,
)

__all__ = [
    "VIDEO_GENERATOR_VERSION",
    "ShapesVideoSpec",
    "generate_shapes_video_split",
    "render_shapes_video",
]

logger = logging.getLogger(__name__)

# Bump when the drawing changes, so that splits made by an older generator are remade.
VIDEO_GENERATOR_VERSION = 1
ENTER_PROBABILITY = 0.4  # an object enters from outside an edge at a random frame
CROSSING_PROBABILITY = 0.5  # a video's second object crosses the first one's path
MIN_SPEED = 0.5  # px per frame


@dataclasses.dataclass(frozen=True)
class ShapesVideoSpec:
    """
    The generation parameters of one split of the shapes video set; invalid values raise
    ``ValueError`` naming the field.

    Attributes:
        num_videos: videos in the split, at least 1.
        seed: video ``v`` is drawn from ``np.random.default_rng([seed, v])``; >= 0.
        num_frames: frames per video, at least 2.
        image_size: ``S`` or ``(H, W)`` in pixels; stored as ``(H, W)``.
        min_objects, max_objects: range of the number of objects of a video.
        min_size, max_size: range of an object's long side (of its box), in pixels.
        max_speed: the largest speed, px per frame, >= 1 (speeds are uniform in [0.5,
            max_speed], a crossing object's in [max_speed / 2, max_speed]).
        motion_noise: standard deviation of an object's jitter around its straight path, px.
        min_visibility: an object is annotated in the frames where at least this fraction of its
            area is visible, in (0, 1].
        image_format: one of :data:`~.shapes_spec.IMAGE_FORMATS`.
        num_colors: 0: each object a colour of its own; n >= 1: the objects' colours are drawn
            from n colours, so that objects look alike (a crowd).
        num_occluders: static upright bars in front of the objects (pillars), each
            ``max_size`` to twice as wide, hiding the objects that pass behind them.
    """

    num_videos: int
    seed: int
    num_frames: int = 30
    image_size: Union[int, Tuple[int, int]] = 128
    min_objects: int = 1
    max_objects: int = 6
    min_size: float = 12.0
    max_size: float = 36.0
    max_speed: float = 3.0
    motion_noise: float = 0.3
    min_visibility: float = 0.25
    image_format: str = "jpg"
    num_colors: int = 0
    num_occluders: int = 0

    def __post_init__(self):
        normalize_spec_fields(self)
        if self.num_videos < 1 or self.num_frames < 2 or self.seed < 0:
            raise ValueError(
                "need num_videos >= 1, num_frames >= 2, seed >= 0, got "
                f"{self.num_videos}, {self.num_frames}, {self.seed}"
            )
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got {self.min_objects}, {self.max_objects}"
            )
        if not 2 <= self.min_size <= self.max_size <= min(self.image_size) / 2:
            raise ValueError(
                f"need 2 <= min_size <= max_size <= min(image_size) / 2, got "
                f"min_size={self.min_size}, max_size={self.max_size}"
            )
        if self.max_speed < 1.0 or self.motion_noise < 0:
            raise ValueError(
                f"need max_speed >= 1 and motion_noise >= 0, got "
                f"{self.max_speed}, {self.motion_noise}"
            )
        if not 0.0 < self.min_visibility <= 1.0:
            raise ValueError(f"min_visibility must be in (0, 1], got {self.min_visibility}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(
                f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}"
            )
        if self.num_colors < 0 or self.num_occluders < 0:
            raise ValueError(
                f"need num_colors >= 0 and num_occluders >= 0, got {self.num_colors}, "
                f"{self.num_occluders}"
            )


def _unit_direction(angle: float) -> np.ndarray:
    return np.array([math.cos(angle), math.sin(angle)])


def _objects(rng: np.random.Generator, spec: ShapesVideoSpec, background: np.ndarray):
    """The video's objects: shape (V, 2) around its box centre, class, colour, and centre (T, 2)
    per frame (NaN before it appears)."""
    h, w = spec.image_size
    size_wh = np.array([w, h], dtype=np.float64)
    T = spec.num_frames
    objects: List[Dict[str, Any]] = []
    colors = [background.reshape(-1, 3).mean(0)]
    palette = []  # with num_colors: the colours the objects share
    for _ in range(spec.num_colors):
        palette.append(_pick_color(rng, np.stack(colors + palette)))
    for k in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        cls = int(rng.integers(0, len(SHAPE_CLASSES)))
        pts = _SHAPE_FNS[cls](rng)
        if cls != 0:
            a = rng.uniform(0, 2 * math.pi)
            pts = pts @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        pts = pts - (pts.min(0) + pts.max(0)) / 2
        pts = pts * (rng.uniform(spec.min_size, spec.max_size) / (pts.max(0) - pts.min(0)).max())
        half = pts.max(0)  # half the box's (w, h)
        velocity = rng.uniform(MIN_SPEED, spec.max_speed) * _unit_direction(
            rng.uniform(0, 2 * math.pi)
        )
        start, t0 = rng.uniform(half, size_wh - half), 0  # inside at frame 0
        crossing = k == 1 and rng.random() < CROSSING_PROBABILITY
        if crossing:  # through where object 0 is at a frame when it is inside
            # across or against object 0's motion, so that they part again: the relative speed
            # is at least this one's
            v0 = objects[0]["velocity"]
            angle = math.atan2(v0[1], v0[0]) + rng.uniform(0.5 * math.pi, 1.5 * math.pi)
            velocity = rng.uniform(spec.max_speed / 2, spec.max_speed) * _unit_direction(angle)
            path0 = objects[0]["path"]
            inside = ((path0 >= 0) & (path0 <= size_wh)).all(1)
            middle = np.flatnonzero(inside & (np.abs(np.arange(T) - T / 2) <= T / 4))
            tc = int(rng.choice(middle)) if len(middle) else 0
            start = path0[tc] - velocity * tc
        elif k > 0 and rng.random() < ENTER_PROBABILITY:  # from outside an edge, inwards
            t0 = int(rng.integers(0, max(1, 2 * T // 3)))
            edge = int(rng.integers(0, 4))  # left, right, top, bottom
            inward = (0.0, math.pi, 0.5 * math.pi, 1.5 * math.pi)[edge]
            velocity = np.linalg.norm(velocity) * _unit_direction(
                inward + rng.uniform(-math.pi / 3, math.pi / 3)
            )
            start = rng.uniform(half, size_wh - half)
            axis, outside = edge // 2, (-half, size_wh + half)[edge % 2]
            start[axis] = outside[axis]
        jitter = rng.normal(0, spec.motion_noise, (T, 2)) if spec.motion_noise else np.zeros((T, 2))
        t = np.arange(T)[:, None]
        path = start + velocity * (t - t0) + jitter
        path[: int(t0)] = np.nan
        if palette:
            color = palette[int(rng.integers(0, len(palette)))]
        else:
            color = _pick_color(rng, np.stack(colors))
            colors.append(color)
        objects.append({"pts": pts, "cls": cls, "color": color, "path": path, "velocity": velocity})
    return objects


def _occluders(rng: np.random.Generator, spec: ShapesVideoSpec):
    """``num_occluders`` static bars, ((x0, y0, x1, y1) pixels, colour): upright, ``max_size``
    to twice as wide, half to all of the frame's height."""
    h, w = spec.image_size
    bars = []
    for _ in range(spec.num_occluders):
        width = int(rng.uniform(spec.max_size, 2 * spec.max_size))
        height = int(rng.uniform(h / 2, h))
        x0, y0 = int(rng.integers(0, max(w - width, 1))), int(rng.integers(0, h - height + 1))
        color = tuple(int(c) for c in rng.integers(0, 256, 3))
        bars.append(((x0, y0, x0 + width, y0 + height), color))
    return bars


def render_shapes_video(
    spec: ShapesVideoSpec, index: int
) -> Tuple[List[np.ndarray], List[List[Dict[str, Any]]]]:
    """
    Render video ``index`` (0-based) of the split that ``spec`` describes, from
    ``np.random.default_rng([spec.seed, index])``.

    Returns:
        frames: ``num_frames`` images, (H, W, 3) uint8.
        objects: per frame, the annotated objects: ``bbox`` (XYWH pixels, clipped to the image),
            ``area`` (pixels inside the image), ``category_id`` (1-based), ``object`` (0-based
            index in the video, the same in every frame), ``visibility``.
    """
    if not 0 <= index < spec.num_videos:
        raise ValueError(f"index must be in [0, num_videos = {spec.num_videos}), got {index}")
    rng = np.random.default_rng([spec.seed, index])
    h, w = spec.image_size
    background = np.clip(_background(rng, h, w), 0, 255).astype(np.uint8)
    _draw_distractors(rng, background, int(rng.integers(2, 9)))
    objects = _objects(rng, spec, background)
    noise = rng.uniform(2, 6)
    occluders = _occluders(rng, spec)
    frames, annotations = [], []
    for t in range(spec.num_frames):
        img = background.copy()
        ids = np.zeros((h, w), np.int32)  # index + 1 of the topmost object, 0: none
        placed = []
        for k, obj in enumerate(objects):
            if np.isnan(obj["path"][t]).any():
                continue
            pts = obj["pts"] + obj["path"][t]
            pts = np.rint(pts * GRID) / GRID
            mask = np.zeros((h, w), np.uint8)
            cv2.fillPoly(mask, [_to_cv(pts)], 1, cv2.LINE_8, SHIFT)
            pixels = int(mask.sum())
            if pixels == 0:
                continue
            color = tuple(int(c) for c in obj["color"])
            cv2.fillPoly(img, [_to_cv(pts)], color, cv2.LINE_AA, SHIFT)
            ids[mask.astype(bool)] = k + 1
            placed.append((k, pts, pixels))
        for (x0, y0, x1, y1), color in occluders:
            img[y0:y1, x0:x1] = color
            ids[y0:y1, x0:x1] = 0
        visible = np.bincount(ids.ravel(), minlength=len(objects) + 1)
        frame_objects = []
        for k, pts, pixels in placed:
            # amodal pixel count: the part outside the image counts as hidden
            full = max(_polygon_pixels(pts), pixels)
            visibility = float(visible[k + 1]) / full
            if visibility < spec.min_visibility:
                continue
            x0, y0 = np.clip(pts.min(0), 0, [w, h])
            x1, y1 = np.clip(pts.max(0), 0, [w, h])
            frame_objects.append(
                {
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "area": float(pixels),
                    "category_id": objects[k]["cls"] + 1,
                    "object": k,
                    "visibility": round(visibility, 4),
                }
            )
        noisy = img.astype(np.float32) + rng.standard_normal((h, w, 3), np.float32) * noise
        frames.append(np.clip(noisy, 0, 255).astype(np.uint8))
        annotations.append(frame_objects)
    return frames, annotations


def _polygon_pixels(pts: np.ndarray) -> int:
    """Pixels of the polygon drawn whole (on a canvas around it)."""
    lo = np.floor(pts.min(0)) - 1
    size = (np.ceil(pts.max(0)) - lo + 2).astype(int)
    mask = np.zeros((size[1], size[0]), np.uint8)
    cv2.fillPoly(mask, [_to_cv(pts - lo)], 1, cv2.LINE_8, SHIFT)
    return int(mask.sum())


def _generator_record(spec: ShapesVideoSpec) -> Dict[str, Any]:
    record = {
        "version": VIDEO_GENERATOR_VERSION,
        "shapes_version": GENERATOR_VERSION,  # the background and shapes are drawn by it
        **dataclasses.asdict(spec),
    }
    record["image_size"] = list(spec.image_size)  # as json gives it back
    for key in ("num_colors", "num_occluders"):  # later fields: off leaves older splits valid
        if not record[key]:
            del record[key]
    return record


def generate_shapes_video_split(root: str, split: str, spec: ShapesVideoSpec) -> str:
    """
    Write split ``split`` of the shapes video set, drawn as ``spec`` says, unless it is already
    there (then this is instant). Images go to ``root/<split>/<video>/``, the json to
    ``root/annotations/<split>.json``; as :func:`.synthetic.generate_shapes_split`, an
    interrupted run leaves no complete-looking split and concurrent calls wait for each other.

    Returns:
        The path of the COCO-video json.
    """
    return generate_once(root, split, spec, ShapesVideoSpec, _generator_record, _write_split)


def _write_split(
    json_file: str, image_root: str, split: str, spec: ShapesVideoSpec, record: Dict[str, Any]
) -> None:
    logger.info(f"Generating shapes video split {split!r} ({spec.num_videos} videos) ...")
    if os.path.exists(json_file):  # the json marks completion: remove it first
        os.remove(json_file)
    h, w = spec.image_size
    ext = spec.image_format
    videos, images, annotations = [], [], []
    num_tracks = 0
    with folder_written_atomically(image_root, split) as tmp_dir:
        for v in tqdm(range(spec.num_videos), desc=f"shapes video {split}", leave=False):
            frames, objects = render_shapes_video(spec, v)
            video_dir = f"{v + 1:04d}"
            os.makedirs(os.path.join(tmp_dir, video_dir))
            videos.append({"id": v + 1, "file_name": video_dir})
            first_image = len(images) + 1
            for t, (img, frame_objects) in enumerate(zip(frames, objects)):
                file_name = f"{video_dir}/{t + 1:06d}.{ext}"
                write_image(os.path.join(tmp_dir, file_name), img, ext)
                image_id = len(images) + 1
                images.append(
                    {
                        "id": image_id,
                        "file_name": file_name,
                        "height": h,
                        "width": w,
                        "video_id": v + 1,
                        "frame_id": t + 1,
                        "prev_image_id": image_id - 1 if image_id > first_image else -1,
                        "next_image_id": image_id + 1 if t + 1 < len(frames) else -1,
                    }
                )
                for obj in frame_objects:
                    annotations.append(
                        {
                            "id": len(annotations) + 1,
                            "image_id": image_id,
                            "category_id": obj["category_id"],
                            "track_id": v * spec.max_objects + obj["object"] + 1,
                            "bbox": obj["bbox"],
                            "area": obj["area"],
                            "iscrowd": 0,
                            "visibility": obj["visibility"],
                        }
                    )
            num_tracks += len({o["object"] for frame_objects in objects for o in frame_objects})
    coco = {
        "info": {"description": "centernet-d2 synthetic shapes video", "generator": record},
        "licenses": [],
        "videos": videos,
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": k + 1, "name": name, "supercategory": "shape"}
            for k, name in enumerate(SHAPE_CLASSES)
        ],
    }
    write_json_atomically(coco, json_file)
    logger.info(
        f"Wrote {len(videos)} videos, {len(images)} frames, {len(annotations)} objects of "
        f"{num_tracks} tracks to {image_root}"
    )
