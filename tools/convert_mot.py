#!/usr/bin/env python
"""Convert a MOTChallenge split folder (MOT16/17/20) into CenterTrack's COCO-video json.

    python tools/convert_mot.py datasets/MOT17/train datasets/MOT17/annotations/val_half.json \\
        --half val --ignore-classes 2 7 8 12 --sequences MOT17-02-FRCNN MOT17-04-FRCNN ...
    python tools/train_net.py --coco-video-dataset mot17_val_half \\
        datasets/MOT17/annotations/val_half.json datasets/MOT17/train ...

See ``centernet_d2/data/motchallenge.py`` for what is kept; the images are not copied (their
``file_name`` are relative to the MOT folder, the IMAGE_ROOT to register the json with).
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import logging

from detectron2.utils.logger import setup_logger

from centernet_d2.data.motchallenge import HALVES, convert_mot
from centernet_d2.utils.cli import add_debug_flag, run_tool

logger = logging.getLogger("centernet_d2")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mot_root", help="the split folder, holding <seq>/seqinfo.ini")
    parser.add_argument("output", help="the json to write")
    parser.add_argument(
        "--half",
        choices=HALVES,
        help="only the first (train) or second (val) half of each sequence, as CenterTrack's "
        "train_half / val_half",
    )
    parser.add_argument(
        "--classes",
        type=int,
        nargs="+",
        default=[1],
        help="MOT class ids kept as objects, categories 1, 2, ... in this order (default: 1, "
        "pedestrians)",
    )
    parser.add_argument(
        "--ignore-classes",
        type=int,
        nargs="*",
        default=[],
        help="MOT class ids kept as crowd annotations that evaluation ignores (CenterTrack: "
        "2 7 8 12, the ignored persons)",
    )
    parser.add_argument(
        "--min-visibility",
        type=float,
        default=0.0,
        help="no longer a conversion option: the json keeps every object with its visibility, "
        "and training leaves out the less visible ones by DATALOADER.MIN_VISIBILITY",
    )
    parser.add_argument(
        "--sequences", nargs="+", help="sequence folders to convert (default: all, sorted)"
    )
    return add_debug_flag(parser)


def main(args: argparse.Namespace) -> dict:
    setup_logger(name="centernet_d2")
    if args.min_visibility:
        raise ValueError(
            "--min-visibility is no longer a conversion option: evaluation must count every "
            "object, as TrackEval does. Convert without it and set DATALOADER.MIN_VISIBILITY "
            f"{args.min_visibility:g} in the training config instead"
        )
    coco = convert_mot(
        args.mot_root,
        args.output,
        half=args.half,
        classes=args.classes,
        ignore_classes=args.ignore_classes,
        sequences=args.sequences,
    )
    crowd = sum(a["iscrowd"] for a in coco["annotations"])
    logger.info(
        f"wrote {args.output}: {len(coco['videos'])} videos, {len(coco['images'])} frames, "
        f"{len(coco['annotations']) - crowd} objects, {crowd} crowd boxes"
    )
    return coco


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
