#!/usr/bin/env python
"""Time Detectron2's COCO evaluation, fast path (compiled COCOeval, or faster-coco-eval in the
pure-Python install) against pycocotools, on a generated COCO-sized set, and check they agree.

    python tools/time_coco_eval.py --images 5000 --classes 80 --detections 100

The set: ``--images`` images of 640x480 with 0-15 objects each (7 on average, 10 % crowd) of
``--classes`` classes; per image ``--detections`` detections: jittered copies of most objects plus
false positives, as a detector's top-K output. Prints seconds per implementation and the largest
difference of their 12 COCO numbers.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import contextlib
import io
import time

import numpy as np
from detectron2.evaluation.coco_evaluation import _evaluate_predictions_on_coco
from pycocotools.coco import COCO

from centernet_d2.utils.cli import add_debug_flag, run_tool


def generated_coco(num_images, num_classes, detections, seed=0):
    """(pycocotools COCO of the ground truth, list of COCO-format detections)."""
    rng = np.random.default_rng(seed)
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "width": 640, "height": 480})
        n = int(rng.integers(0, 16))
        xy = rng.uniform(0, 560, (n, 2)) * [1, 0.75]
        wh = rng.uniform(8, 160, (n, 2))
        cls = rng.integers(1, num_classes + 1, n)
        for box, c in zip(np.hstack([xy, wh]), cls):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": image_id, "category_id": int(c),
                 "bbox": box.tolist(), "area": float(box[2] * box[3]),
                 "iscrowd": int(rng.random() < 0.1)}
            )  # fmt: skip
        found = rng.random(n) < 0.8
        boxes = np.hstack([xy, wh])[found] + rng.normal(0, 4, (found.sum(), 4))
        classes = cls[found]
        fp = detections - len(boxes)
        boxes = np.vstack(
            [boxes, np.hstack([rng.uniform(0, 560, (fp, 2)), rng.uniform(8, 160, (fp, 2))])]
        )
        classes = np.concatenate([classes, rng.integers(1, num_classes + 1, fp)])
        scores = np.concatenate([rng.uniform(0.3, 1, found.sum()), rng.uniform(0, 0.6, fp)])
        for box, c, s in zip(boxes, classes, scores):
            results.append(
                {
                    "image_id": image_id,
                    "category_id": int(c),
                    "bbox": box.tolist(),
                    "score": float(s),
                }
            )
    gt = COCO()
    gt.dataset = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": k, "name": str(k)} for k in range(1, num_classes + 1)],
    }
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
    return gt, results


def main(args):
    if min(args.images, args.classes, args.detections) < 1:
        raise ValueError("--images, --classes and --detections must be at least 1")
    gt, results = generated_coco(args.images, args.classes, args.detections)
    print(f"{args.images} images, {len(gt.anns)} objects, {len(results)} detections")
    stats = {}
    for name, fast in (("fast (COCOeval_opt)", True), ("pycocotools COCOeval", False)):
        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            coco_eval = _evaluate_predictions_on_coco(gt, results, "bbox", use_fast_impl=fast)
        seconds = time.perf_counter() - start
        stats[name] = coco_eval.stats[:12]
        print(f"{name}: {seconds:.1f} s, AP {100 * coco_eval.stats[0]:.3f}")
    a, b = stats.values()
    print(f"largest difference of the 12 COCO numbers: {np.abs(a - b).max():.2e}")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=5000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--detections", type=int, default=100, help="per image")
    return add_debug_flag(parser)


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
