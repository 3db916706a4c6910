"""Datasets and data loading. Importing this package registers the built-in ``shapes_train`` /
``shapes_val`` datasets and the video sets ``shapes_video_train`` / ``shapes_video_val`` (see
:mod:`.builtin`)."""

from . import builtin  # noqa: F401  (registers datasets)
from .augmentation import build_centernet_augmentation
from .builtin import (
    BUILTIN_SHAPES_SPLITS,
    BUILTIN_SHAPES_VIDEO_SPLITS,
    ensure_builtin_generated,
    register_all_shapes,
    register_all_shapes_video,
    shapes_keypoint_layout,
)
from .checks import BAD_IMAGES_MODES, check_annotations, check_image_files, find_bad_image_files
from .frame_pairs import CenterTrackDatasetMapper, PairSettings
from .image_io import UnreadableImageError, read_image
from .keypoints import (
    KeypointLayout,
    keypoint_flip_pairs,
    keypoint_layout,
    keypoint_metadata,
    load_coco_keypoint_json,
    to_union_keypoints,
    union_coco_json,
)
from .mapper import CenterNetDatasetMapper
from .motchallenge import convert_mot, mot_to_coco_video
from .register import (
    UnregisteredDatasetError,
    check_num_classes,
    check_registered,
    dataset_classes,
    register_coco_dataset,
)
from .sampler import ResumableTrainingSampler
from .stats import DatasetStatistics, dataset_statistics, format_statistics, log_dataset_statistics
from .synthetic import (
    SHAPE_CLASSES,
    ShapesSpec,
    generate_shapes_dataset,
    generate_shapes_split,
    render_shapes,
    render_shapes_image,
    shapes_dataset_paths,
)
from .synthetic_video import ShapesVideoSpec, generate_shapes_video_split, render_shapes_video
from .train_loader import SeededMapDataset, build_resumable_train_loader
from .video import (
    VideoInferenceSampler,
    build_video_test_loader,
    load_coco_video_json,
    register_coco_video_dataset,
    sort_video_frames,
)
from .voc import UnknownLabelsError, load_voc_folder, register_voc_dataset, voc_class_names
from .yolo import load_yolo_dataset, register_yolo_dataset, yolo_class_names

__all__ = [
    "BAD_IMAGES_MODES",
    "BUILTIN_SHAPES_SPLITS",
    "BUILTIN_SHAPES_VIDEO_SPLITS",
    "CenterNetDatasetMapper",
    "UnreadableImageError",
    "check_annotations",
    "check_image_files",
    "find_bad_image_files",
    "read_image",
    "SHAPE_CLASSES",
    "ShapesSpec",
    "generate_shapes_split",
    "render_shapes",
    "build_centernet_augmentation",
    "check_num_classes",
    "check_registered",
    "UnregisteredDatasetError",
    "dataset_classes",
    "register_coco_dataset",
    "register_voc_dataset",
    "register_yolo_dataset",
    "load_voc_folder",
    "load_yolo_dataset",
    "voc_class_names",
    "yolo_class_names",
    "UnknownLabelsError",
    "DatasetStatistics",
    "dataset_statistics",
    "format_statistics",
    "log_dataset_statistics",
    "ensure_builtin_generated",
    "generate_shapes_dataset",
    "register_all_shapes",
    "render_shapes_image",
    "shapes_dataset_paths",
    "shapes_keypoint_layout",
    "KeypointLayout",
    "keypoint_flip_pairs",
    "keypoint_layout",
    "keypoint_metadata",
    "load_coco_keypoint_json",
    "to_union_keypoints",
    "union_coco_json",
    "ResumableTrainingSampler",
    "SeededMapDataset",
    "build_resumable_train_loader",
    "ShapesVideoSpec",
    "generate_shapes_video_split",
    "render_shapes_video",
    "register_all_shapes_video",
    "load_coco_video_json",
    "register_coco_video_dataset",
    "convert_mot",
    "mot_to_coco_video",
    "CenterTrackDatasetMapper",
    "PairSettings",
    "VideoInferenceSampler",
    "build_video_test_loader",
    "sort_video_frames",
]
