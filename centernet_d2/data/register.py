"""Registering a user's datasets: COCO-format json files and Pascal-VOC-layout folders."""

import glob
import logging
import os
import xml.etree.ElementTree as ET
from typing import List, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances, register_pascal_voc

__all__ = [
    "register_coco_dataset",
    "register_voc_dataset",
    "voc_class_names",
    "dataset_classes",
    "check_num_classes",
]

logger = logging.getLogger(__name__)


def register_coco_dataset(name: str, json_file: str, image_root: str) -> None:
    """``register_coco_instances`` after checking that both paths exist; evaluated by COCO AP."""
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"--coco-dataset {name}: annotation file {json_file} not found")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"--coco-dataset {name}: image folder {image_root} not found")
    register_coco_instances(name, {}, json_file, image_root)


# what Detectron2's VOC loader and Pascal VOC evaluator read from each <object>
VOC_OBJECT_FIELDS = ("name", "pose", "truncated", "difficult", "bndbox")
VOC_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")


def voc_class_names(dirname: str, split: str) -> List[str]:
    """Sorted object names in the XML annotations of the images of ``split``.

    Every annotation is checked for what Detectron2's VOC loader and evaluator read: a
    ``ValueError`` names the first file that lacks a field or has a non-integer box coordinate.
    """
    names = set()
    for fileid in _voc_split_ids(dirname, split):
        path = os.path.join(dirname, "Annotations", fileid + ".xml")
        try:
            tree = ET.parse(path)
        except (OSError, ET.ParseError) as e:
            raise ValueError(f"cannot read VOC annotation {path}: {e}") from e
        for obj in tree.findall("object"):
            missing = [f for f in VOC_OBJECT_FIELDS if obj.find(f) is None]
            box = obj.find("bndbox")
            if box is not None:
                missing += [f"bndbox/{f}" for f in VOC_BOX_FIELDS if box.find(f) is None]
            if missing:
                raise ValueError(f"VOC annotation {path}: an <object> lacks {missing}")
            coords = [box.find(f).text.strip() for f in VOC_BOX_FIELDS]
            if not all(c.lstrip("-").isdigit() for c in coords):
                raise ValueError(
                    f"VOC annotation {path}: box {coords} is not in integer pixels, which "
                    "Detectron2's Pascal VOC evaluator expects; round the coordinates"
                )
            names.add(obj.findtext("name").strip())
    if not names:
        raise ValueError(f"no <object> in the annotations of {dirname} split {split!r}")
    return sorted(names)


def _voc_split_ids(dirname: str, split: str) -> List[str]:
    path = os.path.join(dirname, "ImageSets", "Main", split + ".txt")
    if not os.path.isfile(path):
        found = sorted(
            os.path.splitext(os.path.basename(p))[0]
            for p in glob.glob(os.path.join(dirname, "ImageSets", "Main", "*.txt"))
        )
        raise FileNotFoundError(f"VOC split file {path} not found; splits there: {found}")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def register_voc_dataset(
    name: str, dirname: str, split: str, class_names: Optional[Sequence[str]] = None
) -> List[str]:
    """Register a Pascal-VOC-layout folder (``Annotations/*.xml``, ``JPEGImages/*.jpg``,
    ``ImageSets/Main/<split>.txt``) with Detectron2's ``register_pascal_voc``; evaluated by VOC AP.

    Args:
        class_names: the classes in training order; default: the names in the XML files, sorted.
    Returns:
        The class names.
    """
    if not os.path.isdir(os.path.join(dirname, "Annotations")):
        raise FileNotFoundError(f"--voc-dataset {name}: {dirname}/Annotations not found")
    found = voc_class_names(dirname, split)  # also checks every annotation file
    unknown = sorted(set(found) - set(class_names or found))
    if unknown:
        raise ValueError(f"--voc-dataset {name}: classes {unknown} are not in {list(class_names)}")
    class_names = list(class_names) if class_names else found
    register_pascal_voc(name, dirname, split, 2012, class_names)
    MetadataCatalog.get(name).set(evaluator_type="pascal_voc")
    return class_names


def dataset_classes(name: str) -> List[str]:
    """The ``thing_classes`` of a registered dataset, loading it if its metadata lacks them."""
    meta = MetadataCatalog.get(name)
    if not meta.get("thing_classes"):
        DatasetCatalog.get(name)  # load_coco_json fills thing_classes
    return list(meta.thing_classes)


def check_num_classes(num_classes: int, dataset_names: Sequence[str]) -> None:
    """Raise ``ValueError`` naming both numbers when a dataset has not ``num_classes`` classes."""
    for name in dataset_names:
        n = len(dataset_classes(name))
        if n != num_classes:
            raise ValueError(
                f"MODEL.CENTERNET.NUM_CLASSES is {num_classes} but dataset {name!r} has {n} "
                f"categories; set MODEL.CENTERNET.NUM_CLASSES {n}"
            )
