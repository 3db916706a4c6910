#!/usr/bin/env python
"""What a detector gets wrong, from its saved detections, without running it again.

    python tools/analyze.py --results output/main_job/inference/coco_instances_results.json \\
        --dataset shapes_val --output output/main_job/analysis
    python tools/analyze.py --results dets.json --dataset helmets_test \\
        --voc-dataset helmets_test datasets/helmets test --output analysis/

``--results``: COCO-format detections (``image_id``, ``category_id``, ``bbox`` XYWH, ``score``),
as Detectron2's ``COCOEvaluator`` saves them (``coco_instances_results.json``), of a registered
dataset (a built-in one, or one the dataset flags register). Writes into ``--output``:
precision-recall curves per class, the confusion matrix, the error breakdown (``errors.png``,
``analysis.md``, ``analysis.json``) and the images of the most errors (``worst/``), as the
evaluation after training does (centernet_d2.evaluation.analysis).
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import json
import logging
import os

from detectron2.utils.logger import setup_logger

from centernet_d2.data.flags import add_dataset_flags, register_dataset_flags
from centernet_d2.data.register import check_registered
from centernet_d2.evaluation import analyze_detections
from centernet_d2.evaluation.analysis import dataset_coco
from centernet_d2.utils.cli import add_debug_flag, run_tool


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", required=True, help="COCO-format detections (.json)")
    parser.add_argument("--dataset", required=True, help="the registered dataset they are of")
    parser.add_argument("--output", required=True, help="folder for the pictures and tables")
    parser.add_argument("--score-thresh", type=float, default=0.3, help="detections counted")
    parser.add_argument("--iou-thresh", type=float, default=0.5, help="IoU of the confusion matrix")
    parser.add_argument("--worst-images", type=int, default=8, help="images drawn")
    return add_dataset_flags(add_debug_flag(parser))


def load_detections(path: str, categories, image_ids) -> list:
    """The detections of ``path``; ``ValueError`` naming the file for another layout."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"--results {path} not found")
    try:
        with open(path) as f:
            detections = json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"--results {path} is not JSON: {e}") from None
    keys = ("image_id", "category_id", "bbox", "score")
    if not isinstance(detections, list) or any(
        not isinstance(d, dict) or any(k not in d for k in keys) for d in detections
    ):
        raise ValueError(f"--results {path}: expected a list of COCO detections with {keys}")
    unknown = sorted({d["category_id"] for d in detections} - set(categories))
    if unknown:
        raise ValueError(
            f"--results {path} has category ids {unknown} that the dataset does not "
            f"({sorted(categories)})"
        )
    strays = sorted({d["image_id"] for d in detections} - set(image_ids))
    if strays:
        raise ValueError(
            f"--results {path} has detections of image ids {strays[:5]} that the dataset does "
            "not have: are they of another --dataset?"
        )
    return detections


def main(args):
    setup_logger(name="centernet_d2")
    logging.getLogger("centernet_d2").setLevel(logging.INFO)
    register_dataset_flags(args)
    check_registered([args.dataset], "--dataset")
    coco_gt, _ = dataset_coco(args.dataset)
    detections = load_detections(args.results, coco_gt.getCatIds(), coco_gt.getImgIds())
    files = {i["id"]: i["file_name"] for i in coco_gt.dataset["images"]}
    report = analyze_detections(
        coco_gt,
        detections,
        args.output,
        files,
        score_thresh=args.score_thresh,
        iou_thresh=args.iou_thresh,
        worst_images=args.worst_images,
    )
    print(open(os.path.join(args.output, "analysis.md")).read())
    return report


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
