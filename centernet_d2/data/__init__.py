"""Datasets and data loading. Importing this package registers the built-in ``shapes_train`` /
``shapes_val`` datasets (see :mod:`.builtin`)."""

from . import builtin  # noqa: F401  (registers datasets)
from .augmentation import build_centernet_augmentation
from .builtin import BUILTIN_SHAPES_SPLITS, ensure_builtin_generated, register_all_shapes
from .register import (
    check_num_classes,
    dataset_classes,
    register_coco_dataset,
    register_voc_dataset,
    voc_class_names,
)
from .synthetic import (
    SHAPE_CLASSES,
    generate_shapes_dataset,
    render_shapes_image,
    shapes_dataset_paths,
)

__all__ = [
    "BUILTIN_SHAPES_SPLITS",
    "SHAPE_CLASSES",
    "build_centernet_augmentation",
    "check_num_classes",
    "dataset_classes",
    "register_coco_dataset",
    "register_voc_dataset",
    "voc_class_names",
    "ensure_builtin_generated",
    "generate_shapes_dataset",
    "register_all_shapes",
    "render_shapes_image",
    "shapes_dataset_paths",
]
