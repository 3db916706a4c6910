"""Writes splits of the synthetic "shapes" dataset to disk, each from a :class:`ShapesSpec`.

What an image holds is drawn by :mod:`.shapes_render` (see its docstring); this module encodes the
images (JPEG quality 90 or PNG), writes the COCO json, and skips a split that is already on disk
with the same spec. Image ``i`` of a split depends only on ``(seed, i)`` and the drawing
parameters, not on ``num_images``.

Layout written by :func:`generate_shapes_split`::

    root/<split>/000001.jpg ...          # images
    root/annotations/<split>.json         # COCO json, written last, so it marks completion

Categories carry COCO's ``keypoints`` names and ``skeleton``
(:data:`.shapes_render.SHAPE_KEYPOINTS`; ``[]`` for circles), annotations ``keypoints`` and
``num_keypoints`` in COCO's convention: x, y of a keypoint are its continuous position minus 0.5
(Detectron2's ``load_coco_json`` adds the 0.5 back). The classes have different keypoints, so
:func:`.keypoints.load_coco_keypoint_json` loads them into a union layout.

The json's ``info.generator`` records :data:`.shapes_render.GENERATOR_VERSION` and the spec's
fields; a split is regenerated when they differ from what is asked for.
"""

import contextlib
import dataclasses
import json
import logging
import os
import shutil
import tempfile
from typing import Any, Dict, List, Tuple

import cv2
from tqdm import tqdm

from .shapes_render import (
    GENERATOR_VERSION,
    SHAPE_CLASSES,
    SHAPE_KEYPOINTS,
    SHAPE_SKELETONS,
    render_shapes,
    render_shapes_image,
)
from .shapes_spec import IMAGE_FORMATS, ShapesSpec

__all__ = [
    "IMAGE_FORMATS",
    "SHAPE_CLASSES",
    "ShapesSpec",
    "generate_shapes_dataset",
    "generate_shapes_split",
    "render_shapes",
    "render_shapes_image",
    "shapes_coco_categories",
    "shapes_dataset_paths",
]

logger = logging.getLogger(__name__)

JPEG_QUALITY = 90


def shapes_dataset_paths(root: str, split: str) -> Tuple[str, str]:
    """Returns ``(json_file, image_root)`` of ``split`` under ``root``; nothing is generated."""
    return os.path.join(root, "annotations", f"{split}.json"), os.path.join(root, split)


def shapes_coco_categories() -> List[Dict[str, Any]]:
    """The COCO ``categories`` of a shapes split: ids 1..K, with ``keypoints`` and ``skeleton``."""
    return [
        {
            "id": k + 1,
            "name": name,
            "supercategory": "shape",
            "keypoints": list(SHAPE_KEYPOINTS[k]),
            "skeleton": [list(pair) for pair in SHAPE_SKELETONS[k]],
        }
        for k, name in enumerate(SHAPE_CLASSES)
    ]


def _coco_keypoints(keypoints: List[float]) -> List[float]:
    """Continuous ``[x, y, v, ...]`` -> COCO's convention (x, y minus 0.5 where v > 0)."""
    out = list(keypoints)
    for j in range(0, len(out), 3):
        if out[j + 2] > 0:
            out[j] -= 0.5
            out[j + 1] -= 0.5
    return out


def _is_complete(json_file: str, image_root: str, record: Dict[str, Any]) -> bool:
    if not (os.path.isfile(json_file) and os.path.isdir(image_root)):
        return False
    try:
        with open(json_file) as f:
            info = json.load(f).get("info", {})
    except (OSError, ValueError):
        return False
    return info.get("generator") == record


@contextlib.contextmanager
def _file_lock(path: str):
    """An exclusive lock across processes (POSIX; elsewhere no lock), e.g. for DDP workers."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def generate_shapes_split(root: str, split: str, spec: ShapesSpec) -> str:
    """
    Write split ``split`` of the shapes dataset, drawn as ``spec`` says, unless it is already
    there.

    Image files go to ``root/<split>/`` and the COCO json to ``root/annotations/<split>.json``
    (see :func:`shapes_dataset_paths`). Images are written to a temporary directory that is then
    renamed, and the json, written last, is renamed into place too, so an interrupted run leaves
    no complete-looking split. A split whose json records the same spec is kept as is (no file is
    rewritten); one with another spec is replaced. Concurrent calls (one per process) wait for
    each other.

    Args:
        root: dataset directory, created if missing.
        split: name of the split, e.g. ``"train"``; a plain directory name.
        spec: what to draw and how many images.

    Returns:
        The path of the COCO json file.
    """
    return generate_once(root, split, spec, ShapesSpec, _generator_record, _write_split)


def generate_once(
    root: str, split: str, spec, spec_type: type, generator_record, write_split
) -> str:
    """The json of ``split`` under ``root``, made by ``write_split(json_file, image_root, split,
    spec, record)`` unless a complete one with the same ``record = generator_record(spec)``
    exists, under a file lock (concurrent calls wait for each other). ``spec`` must be a
    ``spec_type``."""
    if not split or os.sep in split or split.startswith("."):
        raise ValueError(f"split must be a plain directory name, got {split!r}")
    if not isinstance(spec, spec_type):
        raise TypeError(f"spec must be a {spec_type.__name__}, got {type(spec).__name__}")
    record = generator_record(spec)
    json_file, image_root = shapes_dataset_paths(root, split)
    if _is_complete(json_file, image_root, record):
        return json_file
    os.makedirs(os.path.dirname(json_file), exist_ok=True)
    with _file_lock(os.path.join(root, f".{split}.lock")):
        if not _is_complete(json_file, image_root, record):  # or made by another process
            write_split(json_file, image_root, split, spec, record)
    return json_file


def generate_shapes_dataset(root: str, split: str, *args: Any, **kwargs: Any) -> str:
    """
    ``generate_shapes_split(root, split, ShapesSpec(*args, **kwargs))``: the spec's fields as
    arguments, e.g. ``generate_shapes_dataset(root, "val", num_images=200, seed=1)``.
    """
    return generate_shapes_split(root, split, ShapesSpec(*args, **kwargs))


def _generator_record(spec: ShapesSpec) -> Dict[str, Any]:
    """What the json records in ``info.generator``, in this order (the json's bytes depend on it):
    the version, then the spec's fields, ``image_size`` as the list that json gives back."""
    record = {"version": GENERATOR_VERSION, **dataclasses.asdict(spec)}
    record["image_size"] = list(spec.image_size)  # keeps its place among the keys
    return record


def write_json_atomically(data: Any, json_file: str) -> None:
    """Write ``data`` as JSON to ``json_file`` through a temporary file in the same folder and an
    atomic rename: a reader never sees a half-written file, and an interrupted write leaves the
    old one (or none)."""
    fd, tmp_json = tempfile.mkstemp(
        prefix=f".{os.path.basename(json_file)}.", dir=os.path.dirname(json_file)
    )
    os.fchmod(fd, 0o644)  # mkstemp makes it private
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f)
        os.replace(tmp_json, json_file)
    except BaseException:
        if os.path.exists(tmp_json):
            os.remove(tmp_json)
        raise


@contextlib.contextmanager
def folder_written_atomically(folder: str, prefix: str):
    """A new temporary folder next to ``folder`` to write into: when the block ends without an
    error it replaces ``folder`` (by a rename), else it is removed and ``folder`` is untouched."""
    tmp_dir = tempfile.mkdtemp(prefix=f".{prefix}.tmp-", dir=os.path.dirname(folder) or ".")
    os.chmod(tmp_dir, 0o755)  # mkdtemp makes it private
    try:
        yield tmp_dir
        if os.path.exists(folder):
            shutil.rmtree(folder)
        os.rename(tmp_dir, folder)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def write_image(path: str, image, image_format: str) -> None:
    """Encode ``image`` (H, W, 3) BGR uint8 as ``image_format`` ("jpg" at :data:`JPEG_QUALITY`
    or "png") into ``path``."""
    args = [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY] if image_format == "jpg" else []
    ok, buf = cv2.imencode(f".{image_format}", image, args)
    assert ok, path
    with open(path, "wb") as f:
        f.write(buf.tobytes())


def _write_split(
    json_file: str, image_root: str, split: str, spec: ShapesSpec, record: Dict[str, Any]
) -> None:
    logger.info(f"Generating shapes split {split!r} ({spec.num_images} images) ...")
    # The json marks completion: remove a stale one before touching the images.
    if os.path.exists(json_file):
        os.remove(json_file)
    h, w = spec.image_size
    images, annotations = [], []
    progress = tqdm(range(spec.num_images), desc=f"shapes {split}", unit="img", leave=False)
    with folder_written_atomically(image_root, split) as tmp_dir:
        for i in progress:
            img, objects = render_shapes(spec, i)
            file_name = f"{i + 1:06d}.{spec.image_format}"
            write_image(os.path.join(tmp_dir, file_name), img, spec.image_format)
            images.append({"id": i + 1, "file_name": file_name, "height": h, "width": w})
            for obj in objects:
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": i + 1,
                        "category_id": obj["category_id"],
                        "bbox": obj["bbox"],
                        "area": round(obj["area"], 4),
                        "iscrowd": 0,
                        "keypoints": _coco_keypoints(obj["keypoints"]),
                        "num_keypoints": sum(v > 0 for v in obj["keypoints"][2::3]),
                    }
                )

    coco = {
        "info": {"description": "centernet-d2 synthetic shapes", "generator": record},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": shapes_coco_categories(),
    }
    write_json_atomically(coco, json_file)
    logger.info(f"Wrote {len(images)} images, {len(annotations)} objects to {image_root}")
