"""Datasets and data loading. Importing this package registers the built-in ``shapes_train`` /
``shapes_val`` datasets (see :mod:`.builtin`)."""
from . import builtin  # noqa: F401  (registers datasets)
from .augmentation import build_centernet_augmentation
from .builtin import BUILTIN_SHAPES_SPLITS, ensure_builtin_generated, register_all_shapes
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
    "ensure_builtin_generated",
    "generate_shapes_dataset",
    "register_all_shapes",
    "render_shapes_image",
    "shapes_dataset_paths",
]
