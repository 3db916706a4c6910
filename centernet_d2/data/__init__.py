"""Datasets and data loading. Importing this package registers the built-in ``shapes_train`` /
``shapes_val`` datasets (see :mod:`.builtin`)."""

from . import builtin  # noqa: F401  (registers datasets)
from .augmentation import build_centernet_augmentation
from .builtin import BUILTIN_SHAPES_SPLITS, ensure_builtin_generated, register_all_shapes
from .checks import BAD_IMAGES_MODES, check_annotations, check_image_files, find_bad_image_files
from .image_io import UnreadableImageError, read_image
from .mapper import CenterNetDatasetMapper
from .register import (
    check_num_classes,
    dataset_classes,
    register_coco_dataset,
    register_voc_dataset,
    voc_class_names,
)
from .sampler import ResumableTrainingSampler
from .synthetic import (
    SHAPE_CLASSES,
    generate_shapes_dataset,
    render_shapes_image,
    shapes_dataset_paths,
)
from .train_loader import SeededMapDataset, build_resumable_train_loader

__all__ = [
    "BAD_IMAGES_MODES",
    "BUILTIN_SHAPES_SPLITS",
    "CenterNetDatasetMapper",
    "UnreadableImageError",
    "check_annotations",
    "check_image_files",
    "find_bad_image_files",
    "read_image",
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
    "ResumableTrainingSampler",
    "SeededMapDataset",
    "build_resumable_train_loader",
]
