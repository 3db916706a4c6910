"""Registering a user's COCO-format json files, and the class checks shared by every format
(Pascal VOC folders: :mod:`.voc`; YOLO folders: :mod:`.yolo`)."""

import difflib
import os
from typing import Any, Callable, List, Mapping, Optional, Sequence

from detectron2.data import DatasetCatalog, MetadataCatalog

from .keypoints import load_coco_keypoint_json
from .stats import DatasetStatistics

__all__ = [
    "register_coco_dataset",
    "register_json_dataset",
    "replace_registration",
    "UnregisteredDatasetError",
    "check_registered",
    "dataset_classes",
    "check_num_classes",
]


def register_coco_dataset(name: str, json_file: str, image_root: str) -> None:
    """``register_coco_instances`` after checking that both paths exist, loading through
    :func:`.keypoints.load_coco_keypoint_json` (keypoints in the union layout, if the json has
    any); evaluated by COCO AP. A name registered before is replaced."""
    # what register_coco_instances sets
    register_json_dataset(
        name, json_file, image_root, load_coco_keypoint_json, "coco", "COCO annotation file"
    )


def register_json_dataset(
    name: str,
    json_file: str,
    image_root: str,
    load: Callable[[str, str, str], List[dict]],
    evaluator_type: str,
    json_kind: str,
) -> None:
    """Register dataset ``name`` as ``load(json_file, image_root, name)`` with the metadata
    ``json_file``, ``image_root`` and ``evaluator_type``, replacing an earlier one of that name,
    after checking that both paths exist (``FileNotFoundError`` naming the ``json_kind`` file or
    the image folder)."""
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"{json_kind} {json_file} not found")
    if not os.path.isdir(image_root):
        raise FileNotFoundError(f"image folder {image_root} not found")
    replace_registration(
        name,
        lambda: load(json_file, image_root, name),
        json_file=json_file,
        image_root=image_root,
        evaluator_type=evaluator_type,
    )


def replace_registration(name: str, loader: Callable[[], List[dict]], **metadata: Any) -> None:
    """Register ``loader`` as dataset ``name`` with ``metadata``, replacing a dataset (and its
    metadata) registered under that name before."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)


class UnregisteredDatasetError(ValueError):
    """A config names a dataset that is not in Detectron2's ``DatasetCatalog``."""


def check_registered(names: Sequence[str], key: str) -> None:
    """Raise :class:`UnregisteredDatasetError` for a name of ``names`` (from config ``key``)
    that is not registered, with the closest registered name."""
    registered = DatasetCatalog.list()
    for name in names:
        if name not in registered:
            close = difflib.get_close_matches(name, registered, n=1)
            guess = f" (did you mean {close[0]!r}?)" if close else ""
            raise UnregisteredDatasetError(
                f"{key} names dataset {name!r}, which is not registered{guess}; register it "
                "before the run (centernet_d2.data.register_*_dataset) or name a registered one"
            )


def dataset_classes(name: str) -> List[str]:
    """The ``thing_classes`` of a registered dataset, loading it if its metadata lacks them."""
    meta = MetadataCatalog.get(name)
    if not meta.get("thing_classes"):
        DatasetCatalog.get(name)  # load_coco_json fills thing_classes
    return list(meta.thing_classes)


def check_num_classes(
    num_classes: int,
    dataset_names: Sequence[str],
    statistics: Optional[Mapping[str, DatasetStatistics]] = None,
) -> None:
    """Raise ``ValueError`` when a dataset has not ``num_classes`` classes, naming both numbers
    and each class with its object count (from ``statistics``, if given): a class of a handful
    of objects is often a mislabelled object."""
    for name in dataset_names:
        classes = dataset_classes(name)
        if len(classes) == num_classes:
            continue
        listing = ", ".join(classes)
        if statistics and name in statistics:
            counts = statistics[name].objects_per_class
            listing = ", ".join(
                f"{c} ({n} object{'' if n == 1 else 's'})" for c, n in zip(classes, counts)
            )
        raise ValueError(
            f"MODEL.CENTERNET.NUM_CLASSES is {num_classes} but dataset {name!r} has "
            f"{len(classes)} categories: {listing}. Set MODEL.CENTERNET.NUM_CLASSES "
            f"{len(classes)}, or, if a label is a mistake, fix it or give the dataset's class "
            "names when registering it"
        )
