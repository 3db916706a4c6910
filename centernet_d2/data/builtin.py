"""Registers the built-in synthetic "shapes" datasets (see :mod:`.synthetic`) into Detectron2.

Importing this module registers ``shapes_train`` (2000 images, seed 0) and ``shapes_val`` (200
images, seed 1), and the wide-scale ``shapes_wide_train`` / ``shapes_wide_val`` (512 px images,
1-60 objects of 4-256 px, log-uniform sizes), under ``$DETECTRON2_DATASETS/shapes`` (default
``datasets/shapes``), the way
Detectron2's ``data/datasets/builtin.py`` registers COCO. Registration writes nothing: a split is
generated the first time ``DatasetCatalog.get`` asks for it. Call
:func:`ensure_builtin_generated` before anything that reads ``metadata.json_file`` directly, such as
``COCOEvaluator``.
"""

import functools
import logging
import os
from typing import Dict, List, Mapping, Optional, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

from .shapes_render import SHAPE_CLASSES
from .shapes_spec import ShapesSpec
from .synthetic import generate_shapes_split, shapes_dataset_paths

__all__ = ["BUILTIN_SHAPES_SPLITS", "ensure_builtin_generated", "register_all_shapes"]

logger = logging.getLogger(__name__)

_WIDE = dict(
    image_size=512, min_objects=1, max_objects=60, min_size=4.0, max_size=256.0,
    size_distribution="log",
)  # fmt: skip
BUILTIN_SHAPES_SPLITS: Dict[str, Tuple[str, ShapesSpec]] = {
    # dataset name: (split directory, spec); the other fields keep ShapesSpec's defaults
    "shapes_train": ("train", ShapesSpec(num_images=2000, seed=0)),
    "shapes_val": ("val", ShapesSpec(num_images=200, seed=1)),
    # wide scale range and dense small objects: 4-256 px (log-uniform), 1-60 per image, 512 px
    "shapes_wide_train": ("wide_train", ShapesSpec(num_images=2000, seed=2, **_WIDE)),
    "shapes_wide_val": ("wide_val", ShapesSpec(num_images=200, seed=3, **_WIDE)),
}

# dataset name -> (root, split, spec), for the names registered here
_REGISTERED: Dict[str, Tuple[str, str, ShapesSpec]] = {}


def ensure_builtin_generated(name: str) -> str:
    """
    Generate the registered shapes dataset ``name`` unless it is already on disk (then this is
    instant).

    Returns:
        The path of its COCO json file (also ``MetadataCatalog.get(name).json_file``).
    """
    if name not in _REGISTERED:
        raise KeyError(
            f"{name!r} is not a shapes dataset registered by centernet_d2; registered: "
            f"{sorted(_REGISTERED)}"
        )
    return generate_shapes_split(*_REGISTERED[name])


def _load_shapes(name: str, image_root: str) -> List[dict]:
    return load_coco_json(ensure_builtin_generated(name), image_root, name)


def register_all_shapes(
    root: str, splits: Optional[Mapping[str, Tuple[str, ShapesSpec]]] = None
) -> None:
    """
    Register shapes datasets under ``root``; cheap, nothing is generated or read.

    Args:
        root: directory of the generated files (see :func:`.synthetic.shapes_dataset_paths`).
        splits: dataset name -> ``(split, spec)``, the arguments of
            :func:`.synthetic.generate_shapes_split` other than ``root``; default
            :data:`BUILTIN_SHAPES_SPLITS`. A name that is already registered is registered
            again, with these values.
    """
    splits = BUILTIN_SHAPES_SPLITS if splits is None else splits
    for name, value in splits.items():
        split, spec = value if isinstance(value, tuple) and len(value) == 2 else (None, None)
        if not isinstance(split, str) or not isinstance(spec, ShapesSpec):
            raise TypeError(f"splits[{name!r}] must be (split name, ShapesSpec), got {value!r}")
        json_file, image_root = shapes_dataset_paths(root, split)
        if name in DatasetCatalog.list():
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        _REGISTERED[name] = (root, split, spec)
        DatasetCatalog.register(name, functools.partial(_load_shapes, name, image_root))
        MetadataCatalog.get(name).set(
            thing_classes=list(SHAPE_CLASSES),
            # COCO category ids are 1..K; load_coco_json sets the same mapping when it runs
            thing_dataset_id_to_contiguous_id={k + 1: k for k in range(len(SHAPE_CLASSES))},
            json_file=json_file,
            image_root=image_root,
            evaluator_type="coco",
        )


_root = os.path.join(os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets")), "shapes")
register_all_shapes(_root)
