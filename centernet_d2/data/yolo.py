"""YOLO-format folders: one ``labels/*.txt`` per image with a line ``class cx cy w h`` per object,
normalised to the image's width and height, and the class names in ``data.yaml`` (``names:``, a
list or an ``{id: name}`` mapping) or ``classes.txt`` (one per line).

Two layouts are found, the ones Ultralytics and Roboflow write:
``DIR/images/SPLIT/`` + ``DIR/labels/SPLIT/`` and ``DIR/SPLIT/images/`` + ``DIR/SPLIT/labels/``.
A label line of more than 5 numbers is a polygon (``class x1 y1 x2 y2 ...``, YOLO segmentation
sets): its bounding box is used. In a pose set (``kpt_shape: [J, 2 or 3]`` in ``data.yaml``) a
line is ``class cx cy w h`` and J keypoints ``x y [visibility]``: the box and COCO-style
keypoints (x, y in pixels, visibility 0 not labelled / 1 hidden / 2 visible; without a
visibility column, a keypoint at (0, 0) is not labelled), with the keypoint names of
``kpt_names`` (else ``kp0``, ``kp1``, ...) and the left/right pairs of ``flip_idx`` as the
dataset's keypoint metadata. An image without a label file has no objects; a split without a
labels folder is refused, and one where most images have no label file gets a warning.
"""

import logging
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import tqdm
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from .image_io import oriented_size

__all__ = [
    "YOLO_IMAGE_EXTENSIONS",
    "YOLOPose",
    "yolo_pose",
    "yolo_split_dirs",
    "yolo_class_names",
    "parse_yolo_labels",
    "load_yolo_dataset",
    "register_yolo_dataset",
]

YOLO_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PROGRESS_MIN_IMAGES = 1000  # a progress bar while reading image sizes of larger sets
# a warning when more than this fraction of a split's images have no label file
UNLABELLED_WARNING_FRACTION = 0.5

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class YOLOPose:
    """A YOLO pose set's keypoints (``data.yaml``): J, values per keypoint (2 or 3), names and
    ``flip_idx`` (keypoint j of a mirror image is keypoint ``flip_idx[j]``, or None)."""

    num_keypoints: int
    dims: int
    names: Tuple[str, ...]
    flip_idx: Optional[Tuple[int, ...]] = None

    def as_metadata(self) -> Dict[str, list]:
        """Detectron2's keypoint metadata: ``keypoint_names`` and ``keypoint_flip_map``."""
        meta = {"keypoint_names": list(self.names)}
        if self.flip_idx is not None:
            meta["keypoint_flip_map"] = [
                (self.names[j], self.names[k]) for j, k in enumerate(self.flip_idx) if j < k
            ]
        return meta


def yolo_split_dirs(dirname: str, split: str) -> Tuple[str, str]:
    """(images folder, labels folder) of ``split``; ``FileNotFoundError`` lists what was tried."""
    layouts = [
        (os.path.join(dirname, "images", split), os.path.join(dirname, "labels", split)),
        (os.path.join(dirname, split, "images"), os.path.join(dirname, split, "labels")),
    ]
    for images, labels in layouts:
        if os.path.isdir(images):
            if not os.path.isdir(labels):
                raise FileNotFoundError(
                    f"YOLO folder {dirname} split {split!r}: images in {images}, but no labels "
                    f"folder {labels} (one <image name>.txt per image)"
                )
            return images, labels
    tried = " or ".join(images for images, _ in layouts)
    raise FileNotFoundError(f"YOLO folder {dirname} split {split!r}: no {tried}")


def _data_yaml(dirname: str) -> Optional[dict]:
    """``DIR/data.yaml`` as a dict, or None without the file."""
    data_yaml = os.path.join(dirname, "data.yaml")
    if not os.path.isfile(data_yaml):
        return None
    with open(data_yaml) as f:
        try:
            return yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            raise ValueError(f"{data_yaml} is not valid YAML: {e}") from e


def yolo_pose(dirname: str) -> Optional[YOLOPose]:
    """The keypoints of a YOLO pose set (``kpt_shape``, ``kpt_names``, ``flip_idx`` of
    ``data.yaml``), or None for a box (or segmentation) set."""
    data = _data_yaml(dirname) or {}
    shape = data.get("kpt_shape")
    if shape is None:
        return None
    data_yaml = os.path.join(dirname, "data.yaml")
    if not (isinstance(shape, list) and len(shape) == 2 and shape[0] > 0 and shape[1] in (2, 3)):
        raise ValueError(f"{data_yaml}: kpt_shape must be [keypoints, 2 or 3], got {shape!r}")
    J = int(shape[0])
    names = data.get("kpt_names") or [f"kp{j}" for j in range(J)]
    if isinstance(names, dict):  # Ultralytics: {class id: [names]}; one layout for all here
        names = next(iter(names.values()))
    flip = data.get("flip_idx")
    if len(names) != J or (flip is not None and sorted(flip) != list(range(J))):
        raise ValueError(
            f"{data_yaml}: kpt_names must be {J} names and flip_idx a permutation of 0..{J - 1}"
        )
    return YOLOPose(J, int(shape[1]), tuple(str(n) for n in names), flip and tuple(flip))


def yolo_class_names(dirname: str) -> List[str]:
    """Class names from ``DIR/data.yaml`` (``names``) or else ``DIR/classes.txt``."""
    data_yaml = os.path.join(dirname, "data.yaml")
    data = _data_yaml(dirname)
    if data is not None:
        names = data.get("names")
        if isinstance(names, dict):  # {0: "hat", 1: "person"}
            if sorted(int(k) for k in names) != list(range(len(names))):
                raise ValueError(f"{data_yaml}: names ids must be 0..{len(names) - 1}")
            names = [names[k] for k in sorted(names, key=int)]
        if not isinstance(names, list) or not names:
            raise ValueError(f"{data_yaml} has no 'names' list of class names")
        return [str(n) for n in names]
    classes_txt = os.path.join(dirname, "classes.txt")
    if os.path.isfile(classes_txt):
        with open(classes_txt) as f:
            names = [line.strip() for line in f if line.strip()]
        if names:
            return names
        raise ValueError(f"{classes_txt} is empty; write one class name per line")
    raise FileNotFoundError(
        f"YOLO folder {dirname} has neither data.yaml (with 'names') nor classes.txt"
    )


def parse_yolo_labels(
    path: str, num_classes: int, width: int, height: int, pose: Optional[YOLOPose] = None
) -> List[Tuple[int, List[float], Optional[List[float]]]]:
    """(class, [x0, y0, x1, y1] in pixels, keypoints) per line of a label file; keypoints are
    COCO's ``[x, y, v] * J`` in pixels for a pose set (``pose``), else None.

    Raises:
        ValueError: naming the file and line, for a line that is not a class and 4 numbers (a
            polygon; with ``pose`` 4 + J x dims numbers) or a class outside 0..num_classes-1.
    """
    objects = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            fields = line.split()
            if not fields:
                continue
            where = f"YOLO label file {path} line {number}"
            try:
                cls, values = int(fields[0]), [float(v) for v in fields[1:]]
            except ValueError:
                raise ValueError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
            if not 0 <= cls < num_classes:
                raise ValueError(
                    f"{where}: class {cls} is not in 0..{num_classes - 1} ({num_classes} names)"
                )
            keypoints = None
            if pose is not None:
                if len(values) != 4 + pose.num_keypoints * pose.dims:
                    raise ValueError(
                        f"{where}: expected 'class cx cy w h' and {pose.num_keypoints} keypoints "
                        f"of {pose.dims} values (kpt_shape of data.yaml), got {len(values)} "
                        "numbers after the class"
                    )
                keypoints = _keypoints(values[4:], pose.dims, width, height)
                values = values[:4]
            if len(values) == 4:
                cx, cy, w, h = values
                box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            elif len(values) >= 6 and len(values) % 2 == 0:  # polygon x1 y1 x2 y2 ...
                box = [min(values[0::2]), min(values[1::2]), max(values[0::2]), max(values[1::2])]
            else:
                raise ValueError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
            scale = (width, height, width, height)
            objects.append((cls, [v * s for v, s in zip(box, scale)], keypoints))
    return objects


def _keypoints(values: Sequence[float], dims: int, width: int, height: int) -> List[float]:
    """COCO keypoints ``[x, y, v] * J`` in pixels from YOLO's normalised ``x y [v]`` per
    keypoint; without a visibility, (0, 0) is not labelled (v 0), anything else visible (2)."""
    out = []
    for j in range(0, len(values), dims):
        x, y = values[j], values[j + 1]
        v = values[j + 2] if dims == 3 else (0.0 if x == 0 and y == 0 else 2.0)
        out += [x * width, y * height, float(v)] if v > 0 else [0.0, 0.0, 0.0]
    return out


def _image_files(images_dir: str) -> List[str]:
    """Image files under ``images_dir`` (sub-folders included), sorted."""
    found = []
    for root, _, files in os.walk(images_dir):
        found += [os.path.join(root, f) for f in files if f.lower().endswith(YOLO_IMAGE_EXTENSIONS)]
    return sorted(found)


def _size(path: str) -> Tuple[int, int]:
    """(width, height) after the EXIF orientation, (0, 0) for an unreadable file (the image check
    reports it)."""
    try:
        with Image.open(path) as image:
            return oriented_size(image)
    except (OSError, SyntaxError, ValueError):
        return 0, 0


def load_yolo_dataset(
    dirname: str, split: str, class_names: Optional[Sequence[str]] = None
) -> List[dict]:
    """Detectron2 dataset dicts of a YOLO split; ``image_id`` is the image's index.

    Args:
        class_names: default :func:`yolo_class_names`; only their number is used here.
    """
    images_dir, labels_dir = yolo_split_dirs(dirname, split)
    num_classes = len(class_names or yolo_class_names(dirname))
    pose = yolo_pose(dirname)
    files = _image_files(images_dir)
    if not files:
        raise FileNotFoundError(f"no image file in YOLO images folder {images_dir}")
    dicts, unlabelled = [], 0
    progress = tqdm.tqdm(
        files, desc="reading YOLO labels", unit="img", disable=len(files) < PROGRESS_MIN_IMAGES
    )
    for index, path in enumerate(progress):
        width, height = _size(path)
        relative = os.path.splitext(os.path.relpath(path, images_dir))[0]
        label = os.path.join(labels_dir, relative + ".txt")
        objects = []
        if os.path.isfile(label):
            objects = parse_yolo_labels(label, num_classes, width, height, pose)
        else:
            unlabelled += 1
        annotations = []
        for cls, box, keypoints in objects:
            a = {"category_id": cls, "bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "iscrowd": 0}
            if keypoints is not None:
                a["keypoints"] = keypoints
            annotations.append(a)
        dicts.append(
            {
                "file_name": path,
                "image_id": index,
                "height": height,
                "width": width,
                "annotations": annotations,
            }
        )
    if unlabelled > UNLABELLED_WARNING_FRACTION * len(files):
        logger.warning(
            f"YOLO split {split!r} of {dirname}: {unlabelled} of {len(files)} images have no label "
            f"file in {labels_dir}, so they are images without objects; check the labels folder"
        )
    return dicts


def register_yolo_dataset(name: str, dirname: str, split: str) -> List[str]:
    """Register a YOLO split, evaluated with ``COCOEvaluator`` (which converts it to a COCO json
    in its output folder). The folders and class names are checked now; labels are read when the
    dataset is first used. A name registered before is replaced.

    Returns:
        The class names.
    """
    if not os.path.isdir(dirname):
        raise FileNotFoundError(f"YOLO folder {dirname} not found")
    yolo_split_dirs(dirname, split)
    class_names = yolo_class_names(dirname)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    pose = yolo_pose(dirname)
    DatasetCatalog.register(name, lambda: load_yolo_dataset(dirname, split, class_names))
    MetadataCatalog.get(name).set(thing_classes=class_names, evaluator_type="coco")
    if pose is not None:
        MetadataCatalog.get(name).set(**pose.as_metadata())
    return class_names
