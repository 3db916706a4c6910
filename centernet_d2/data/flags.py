"""The dataset flags of the command-line tools (``tools/train_net.py``,
``tools/inspect_dataset.py``): ``--coco-dataset``, ``--coco-video-dataset``, ``--voc-dataset``
(``--voc-classes``, ``--voc-ignore-unknown``) and ``--yolo-dataset``, each registering a dataset
by name. Errors of the library name its arguments; these add the flags that set them."""

import argparse
import contextlib
from typing import Iterator

from ..utils.cli import flag_context
from .register import UnregisteredDatasetError, register_coco_dataset
from .video import register_coco_video_dataset
from .voc import UnknownLabelsError, register_voc_dataset
from .yolo import register_yolo_dataset

__all__ = ["add_dataset_flags", "register_dataset_flags", "dataset_hints"]


# The repeatable flags that register a dataset: (flag, its three values, help)
_DATASET_FLAGS = (
    (
        "--coco-dataset",
        ("NAME", "JSON", "IMAGE_ROOT"),
        "register a COCO-format dataset (repeatable); use NAME in DATASETS.TRAIN / TEST",
    ),
    (
        "--coco-video-dataset",
        ("NAME", "JSON", "IMAGE_ROOT"),
        "register a video dataset in CenterTrack's COCO-video json (videos, per image video_id "
        "and frame_id, per object track_id; tools/convert_mot.py writes one) (repeatable); "
        "evaluated by tracking metrics",
    ),
    (
        "--voc-dataset",
        ("NAME", "DIR", "SPLIT"),
        "register a split of a Pascal-VOC-layout folder (Annotations/, JPEGImages/, "
        "ImageSets/Main/SPLIT.txt) (repeatable); classes: --voc-classes, else every label of the "
        "folder's splits, sorted",
    ),
    (
        "--yolo-dataset",
        ("NAME", "DIR", "SPLIT"),
        "register a split of a YOLO-format folder (DIR/images/SPLIT + DIR/labels/SPLIT, or "
        "DIR/SPLIT/images + labels; classes from DIR/data.yaml or DIR/classes.txt) (repeatable)",
    ),
)


def add_dataset_flags(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--coco-dataset``, ``--coco-video-dataset``, ``--voc-dataset`` (with ``--voc-classes``,
    ``--voc-ignore-unknown``) and ``--yolo-dataset``, registered by
    :func:`register_dataset_flags`."""
    for flag, metavar, text in _DATASET_FLAGS:
        parser.add_argument(flag, nargs=3, action="append", default=[], metavar=metavar, help=text)
    parser.add_argument(
        "--voc-classes", default="", help="comma-separated class names of the --voc-dataset sets"
    )
    parser.add_argument(
        "--voc-ignore-unknown",
        action="store_true",
        help="drop objects whose label is not in --voc-classes (with a warning listing them) "
        "instead of stopping",
    )
    return parser


def register_dataset_flags(args: argparse.Namespace) -> None:
    """Register the datasets of :func:`add_dataset_flags`' flags; errors name the flag."""
    for name, json_file, image_root in args.coco_dataset:
        with flag_context(f"--coco-dataset {name}"):
            register_coco_dataset(name, json_file, image_root)
    for name, json_file, image_root in args.coco_video_dataset:
        with flag_context(f"--coco-video-dataset {name}"):
            register_coco_video_dataset(name, json_file, image_root)
    voc_classes = [c.strip() for c in args.voc_classes.split(",") if c.strip()]
    fix = "(--voc-classes names the classes; --voc-ignore-unknown drops these objects)"
    for name, dirname, split in args.voc_dataset:
        with flag_context(f"--voc-dataset {name}"):
            try:
                register_voc_dataset(
                    name, dirname, split, voc_classes or None, args.voc_ignore_unknown
                )
            except UnknownLabelsError as e:
                raise ValueError(f"{e} {fix}") from e
    for name, dirname, split in args.yolo_dataset:
        with flag_context(f"--yolo-dataset {name}"):
            register_yolo_dataset(name, dirname, split)


@contextlib.contextmanager
def dataset_hints(args: argparse.Namespace) -> Iterator[None]:
    """Add the command line's way to the fix to the library's dataset errors raised inside."""
    try:
        yield
    except UnregisteredDatasetError as e:
        flags = (
            "--coco-dataset, --voc-dataset or --yolo-dataset registers a dataset, "
            "--coco-video-dataset a video dataset"
        )
        raise UnregisteredDatasetError(f"{e} ({flags})") from e
    except ValueError as e:
        if not args.voc_dataset or args.voc_classes:
            raise
        raise ValueError(f"{e} (--voc-classes a,b names the classes of a VOC folder)") from e
