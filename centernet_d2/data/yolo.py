"""YOLO-format folders: one ``labels/*.txt`` per image with a line ``class cx cy w h`` per object,
normalised to the image's width and height, and the class names in ``data.yaml`` (``names:``, a
list or an ``{id: name}`` mapping) or ``classes.txt`` (one per line).

Two layouts are found, the ones Ultralytics and Roboflow write:
``DIR/images/SPLIT/`` + ``DIR/labels/SPLIT/`` and ``DIR/SPLIT/images/`` + ``DIR/SPLIT/labels/``.
A label line of more than 5 numbers is a polygon (``class x1 y1 x2 y2 ...``, YOLO segmentation
sets): its bounding box is used. An image without a label file has no objects.
"""

import os
from typing import List, Optional, Sequence, Tuple

import tqdm
import yaml
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from .image_io import oriented_size

__all__ = [
    "YOLO_IMAGE_EXTENSIONS",
    "yolo_split_dirs",
    "yolo_class_names",
    "parse_yolo_labels",
    "load_yolo_dataset",
    "register_yolo_dataset",
]

YOLO_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
PROGRESS_MIN_IMAGES = 1000  # a progress bar while reading image sizes of larger sets


def yolo_split_dirs(dirname: str, split: str) -> Tuple[str, str]:
    """(images folder, labels folder) of ``split``; ``FileNotFoundError`` lists what was tried."""
    layouts = [
        (os.path.join(dirname, "images", split), os.path.join(dirname, "labels", split)),
        (os.path.join(dirname, split, "images"), os.path.join(dirname, split, "labels")),
    ]
    for images, labels in layouts:
        if os.path.isdir(images):
            return images, labels
    tried = " or ".join(images for images, _ in layouts)
    raise FileNotFoundError(f"YOLO folder {dirname} split {split!r}: no {tried}")


def yolo_class_names(dirname: str) -> List[str]:
    """Class names from ``DIR/data.yaml`` (``names``) or else ``DIR/classes.txt``."""
    data_yaml = os.path.join(dirname, "data.yaml")
    if os.path.isfile(data_yaml):
        with open(data_yaml) as f:
            try:
                names = (yaml.safe_load(f) or {}).get("names")
            except yaml.YAMLError as e:
                raise ValueError(f"{data_yaml} is not valid YAML: {e}") from e
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
    path: str, num_classes: int, width: int, height: int
) -> List[Tuple[int, List[float]]]:
    """(class, [x0, y0, x1, y1] in pixels) per line of a label file.

    Raises:
        ValueError: naming the file and line, for a line that is not a class and 4 numbers (or a
            polygon) or a class outside 0..num_classes-1.
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
            if len(values) == 4:
                cx, cy, w, h = values
                box = [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]
            elif len(values) >= 6 and len(values) % 2 == 0:  # polygon x1 y1 x2 y2 ...
                box = [min(values[0::2]), min(values[1::2]), max(values[0::2]), max(values[1::2])]
            else:
                raise ValueError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
            scale = (width, height, width, height)
            objects.append((cls, [v * s for v, s in zip(box, scale)]))
    return objects


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
    files = _image_files(images_dir)
    if not files:
        raise FileNotFoundError(f"no image file in YOLO images folder {images_dir}")
    dicts = []
    progress = tqdm.tqdm(
        files, desc="reading YOLO labels", unit="img", disable=len(files) < PROGRESS_MIN_IMAGES
    )
    for index, path in enumerate(progress):
        width, height = _size(path)
        relative = os.path.splitext(os.path.relpath(path, images_dir))[0]
        label = os.path.join(labels_dir, relative + ".txt")
        objects = (
            parse_yolo_labels(label, num_classes, width, height) if os.path.isfile(label) else []
        )
        dicts.append(
            {
                "file_name": path,
                "image_id": index,
                "height": height,
                "width": width,
                "annotations": [
                    {"category_id": cls, "bbox": box, "bbox_mode": BoxMode.XYXY_ABS, "iscrowd": 0}
                    for cls, box in objects
                ],
            }
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
    DatasetCatalog.register(name, lambda: load_yolo_dataset(dirname, split, class_names))
    MetadataCatalog.get(name).set(thing_classes=class_names, evaluator_type="coco")
    return class_names
