#!/usr/bin/env python
"""Evaluate MOTChallenge result files against a video dataset with the trainer's evaluator.

    python tools/eval_mot.py --results output/demo --dataset shapes_video_val
    python tools/convert_mot.py datasets/MOT17/train datasets/mot17_train.json   # ground truth
    python tools/eval_mot.py --results tracker_output/ --dataset mot17 \\
        --coco-video-dataset mot17 datasets/mot17_train.json datasets/MOT17/train

``--results`` holds one ``<video>.txt`` per video of the dataset (``tools/demo.py
--video-input`` writes them for a tracking config; so do MOTChallenge trackers), named as the
dataset's videos (a MOTChallenge sequence's folder name; ``0001``... for the built-in sets).
Prints MOTA, IDF1, HOTA and the counts per video and for all, as training's evaluation does, and
returns them.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import logging

from detectron2.utils.logger import setup_logger

from centernet_d2.data.flags import add_dataset_flags, register_dataset_flags
from centernet_d2.data.register import check_registered
from centernet_d2.evaluation import evaluate_mot_results
from centernet_d2.utils.cli import add_debug_flag, run_tool


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="folder of <video>.txt result files")
    parser.add_argument("--dataset", required=True, help="a registered video dataset")
    parser.add_argument("--iou", type=float, default=0.5, help="least IoU of a match")
    return add_dataset_flags(add_debug_flag(parser))


def main(args):
    setup_logger(name="centernet_d2")
    logging.getLogger("centernet_d2").setLevel(logging.INFO)
    register_dataset_flags(args)
    check_registered([args.dataset], "--dataset")
    return evaluate_mot_results(args.results, args.dataset, args.iou)


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
