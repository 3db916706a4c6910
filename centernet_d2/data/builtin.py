"""Registers the built-in synthetic "shapes" datasets (see :mod:`.synthetic`) into Detectron2.

Importing this module registers ``shapes_train`` (2000 images, seed 0) and ``shapes_val`` (200
images, seed 1), and the wide-scale ``shapes_wide_train`` / ``shapes_wide_val`` (512 px images,
1-60 objects of 4-256 px, log-uniform sizes), under ``$DETECTRON2_DATASETS/shapes`` (default
``datasets/shapes``), the way
Detectron2's ``data/datasets/builtin.py`` registers COCO. It also registers the video sets
of moving shapes (see :mod:`.synthetic_video`), 30 frames a video: ``shapes_video_train`` (300
videos, seed 10), ``shapes_video_val`` (8 videos, seed 11) and ``shapes_video_holdout`` (8
videos, seed 12: for choosing settings), 128 px frames, 1-6 objects; the crowds
``shapes_video_crowd_train`` / ``_holdout`` / ``_val`` (100 / 6 / 6 videos, seeds 20-22), 256 px
frames, 30-80 look-alike objects (about 20-50 in view) moving up to 8 px per frame, two pillars hiding them; under
``$DETECTRON2_DATASETS/shapes_video``, as COCO-video datasets (:mod:`.video`). Registration writes
nothing: a split is generated the first time ``DatasetCatalog.get`` asks for it. Call
:func:`ensure_builtin_generated` before anything that reads ``metadata.json_file`` directly, such as
``COCOEvaluator``.

The shapes splits have per-class keypoints (:data:`.shapes_render.SHAPE_KEYPOINTS`), loaded in the
union layout of :mod:`.keypoints`; their metadata has the layout's attributes from registration
on (``keypoint_names``, ``keypoint_flip_map``, ``keypoint_connection_rules``,
``class_keypoints``; :func:`shapes_keypoint_layout`) and ``keypoint_json_file`` once loaded.
"""

import functools
import logging
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

from .keypoints import KeypointLayout, keypoint_layout, load_coco_keypoint_json
from .register import replace_registration
from .shapes_render import SHAPE_CLASSES
from .shapes_spec import ShapesSpec
from .synthetic import generate_shapes_split, shapes_coco_categories, shapes_dataset_paths
from .synthetic_video import ShapesVideoSpec, generate_shapes_video_split
from .video import load_coco_video_json

__all__ = [
    "BUILTIN_SHAPES_SPLITS",
    "BUILTIN_SHAPES_VIDEO_SPLITS",
    "ensure_builtin_generated",
    "register_all_shapes",
    "register_all_shapes_video",
    "shapes_keypoint_layout",
]

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

_CROWD = dict(
    image_size=256, min_objects=30, max_objects=80, min_size=10.0, max_size=28.0, max_speed=8.0,
    num_colors=3, num_occluders=2,
)  # fmt: skip
BUILTIN_SHAPES_VIDEO_SPLITS: Dict[str, Tuple[str, ShapesVideoSpec]] = {
    # dataset name: (split directory, spec); 128 px frames, 1-6 objects of 12-36 px
    "shapes_video_train": ("train", ShapesVideoSpec(num_videos=300, seed=10)),
    "shapes_video_val": ("val", ShapesVideoSpec(num_videos=8, seed=11)),
    "shapes_video_holdout": ("holdout", ShapesVideoSpec(num_videos=8, seed=12)),  # for settings
    # crowds: 256 px frames, 30-80 objects of 10-28 px in 3 colours, up to 8 px per frame, two
    # pillars in front
    "shapes_video_crowd_train": ("crowd_train", ShapesVideoSpec(num_videos=100, seed=20, **_CROWD)),
    "shapes_video_crowd_holdout": (
        "crowd_holdout",
        ShapesVideoSpec(num_videos=6, seed=21, **_CROWD),
    ),
    "shapes_video_crowd_val": ("crowd_val", ShapesVideoSpec(num_videos=6, seed=22, **_CROWD)),
}


def _shape_class_metadata() -> Dict[str, object]:
    """The classes of every shapes set (new objects for each dataset's metadata); COCO category
    ids are 1..K, the mapping load_coco_json sets when it runs."""
    return dict(
        thing_classes=list(SHAPE_CLASSES),
        thing_dataset_id_to_contiguous_id={k + 1: k for k in range(len(SHAPE_CLASSES))},
    )


# dataset name -> the function that generates it and returns its json, for the names registered
# here
_REGISTERED: Dict[str, Callable[[], str]] = {}


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
    return _REGISTERED[name]()


def shapes_keypoint_layout() -> KeypointLayout:
    """The union keypoint layout of the shapes datasets, without generating any: J = 16,
    ``class_keypoints`` ``[[], [0, 1, 2], [3, ..., 6], [7, ..., 11], [12, ..., 15]]`` (circle,
    triangle, rectangle, star, cross), names ``"triangle_top"``, ..."""
    return keypoint_layout(shapes_coco_categories())


def _load_shapes(name: str, image_root: str) -> List[dict]:
    return load_coco_keypoint_json(ensure_builtin_generated(name), image_root, name)


def _load_shapes_video(name: str, image_root: str) -> List[dict]:
    return load_coco_video_json(ensure_builtin_generated(name), image_root, name)


def _register_generated(root, splits, spec_type, generate, load, **metadata) -> None:
    """Register each ``name: (split, spec)`` of ``splits`` (spec a ``spec_type``) under
    ``root``: generated by ``generate(root, split, spec)`` when first loaded, loaded by
    ``load(name, image_root)``, with ``metadata`` and the shape classes'."""
    for name, value in splits.items():
        split, spec = value if isinstance(value, tuple) and len(value) == 2 else (None, None)
        if not isinstance(split, str) or not isinstance(spec, spec_type):
            raise TypeError(
                f"splits[{name!r}] must be (split name, {spec_type.__name__}), got {value!r}"
            )
        json_file, image_root = shapes_dataset_paths(root, split)
        _REGISTERED[name] = functools.partial(generate, root, split, spec)
        replace_registration(
            name,
            functools.partial(load, name, image_root),
            json_file=json_file,
            image_root=image_root,
            **metadata,
            **_shape_class_metadata(),
        )


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
    _register_generated(
        root,
        BUILTIN_SHAPES_SPLITS if splits is None else splits,
        ShapesSpec,
        generate_shapes_split,
        _load_shapes,
        evaluator_type="coco",
        # the same values as load_coco_keypoint_json sets when the split is loaded
        **shapes_keypoint_layout().as_metadata(),
    )


def register_all_shapes_video(
    root: str, splits: Optional[Mapping[str, Tuple[str, ShapesVideoSpec]]] = None
) -> None:
    """
    Register shapes video datasets under ``root``, as :func:`register_all_shapes` (cheap;
    generated when first loaded; a name registered before is registered again).

    Args:
        root: directory of the generated files.
        splits: dataset name -> ``(split, spec)``, the arguments of
            :func:`.synthetic_video.generate_shapes_video_split` other than ``root``; default
            :data:`BUILTIN_SHAPES_VIDEO_SPLITS`.
    """
    _register_generated(
        root,
        BUILTIN_SHAPES_VIDEO_SPLITS if splits is None else splits,
        ShapesVideoSpec,
        generate_shapes_video_split,
        _load_shapes_video,
        evaluator_type="mot",
    )


_datasets = os.path.expanduser(os.getenv("DETECTRON2_DATASETS", "datasets"))
register_all_shapes(os.path.join(_datasets, "shapes"))
register_all_shapes_video(os.path.join(_datasets, "shapes_video"))
