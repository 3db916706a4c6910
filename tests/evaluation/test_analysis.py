"""centernet_d2.evaluation.analysis on a set with planted errors: each error in its category,
the confusion matrix by hand, the precision-recall curves' area equal to COCO's per-class AP,
the pictures written after an evaluation."""

import contextlib
import io
import json
import os
import tempfile
import unittest

import cv2
import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from centernet_d2.evaluation import DetectionAnalysis, analyze_detections
from centernet_d2.evaluation.analysis import confusion_matrix, error_breakdown, pr_curves
from centernet_d2.evaluation.mot import identity_switches, mot_metrics
from tests.common import load_tool, run_tool_in_process

A, B = 1, 2  # category ids
OBJECTS = {  # image id -> [(category, XYWH box)]
    1: [(A, [10, 10, 20, 20]), (B, [50, 50, 20, 20]), (A, [10, 60, 20, 20])],
    2: [(A, [30, 30, 20, 20])],
    3: [(B, [40, 40, 20, 20])],
}
DETECTIONS = [  # (image, category, box, score, the planted error)
    (1, A, [10, 10, 20, 20], 0.9, "true_positive"),
    (1, A, [11, 10, 20, 20], 0.8, "duplicate"),  # the same object again
    (1, A, [50, 50, 20, 20], 0.85, "class"),  # B's object called A
    (1, A, [22, 60, 20, 20], 0.75, "localization"),  # off its object: IoU 0.25
    (1, B, [75, 5, 15, 15], 0.7, "background"),  # nothing there
    (3, B, [40, 40, 20, 20], 0.95, "true_positive"),
    (3, A, [0, 80, 10, 10], 0.1, None),  # below the score threshold: not counted
]  # image 2's object is missed


def ground_truth():
    images = [{"id": i, "width": 100, "height": 100, "file_name": f"{i}.png"} for i in OBJECTS]
    annotations = []
    for image_id, objects in OBJECTS.items():
        for category, box in objects:
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "iscrowd": 0,
                                "category_id": category, "bbox": box, "area": box[2] * box[3]})  # fmt: skip
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations,
                    "categories": [{"id": A, "name": "a"}, {"id": B, "name": "b"}]}  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        coco.createIndex()
    return coco


def detections():
    return [
        {"image_id": i, "category_id": c, "bbox": b, "score": s} for i, c, b, s, _ in DETECTIONS
    ]


class TestPlantedErrors(unittest.TestCase):
    def test_each_error_in_its_category(self):
        counts, per_image = error_breakdown(ground_truth(), detections(), score_thresh=0.3)
        self.assertEqual(
            counts,
            {"true_positive": 2, "objects": 5, "localization": 1, "class": 1, "duplicate": 1,
             "background": 1, "both": 0, "missed": 1},
        )  # fmt: skip
        planted = {i: kind for i, (*_, kind) in enumerate(DETECTIONS) if kind}
        found = {i: kind for image in per_image.values() for i, kind in image["detections"]}
        self.assertEqual(found, planted)
        self.assertEqual(per_image[2]["missed"], [4])  # image 2's object, annotation 4
        self.assertEqual([per_image[i]["errors"] for i in (1, 2, 3)], [4, 1, 0])

    def test_confusion_matrix_by_hand(self):
        matrix = confusion_matrix(ground_truth(), detections(), iou_thresh=0.5, score_thresh=0.3)
        # rows: objects a, b, background; columns: detected as a, b, nothing. Image 1: A1 found
        # (a, a); B1 called a (b, a); the duplicate and the shifted box took no object
        # (background, a) x 2 and A2 was left (a, nothing); the background detection
        # (background, b). Image 2: its object left (a, nothing). Image 3: B2 found (b, b).
        expected = [[1, 0, 2], [1, 1, 0], [2, 1, 0]]
        self.assertEqual(matrix.tolist(), expected)

    def test_pr_curve_area_is_cocos_ap_per_class(self):
        coco = ground_truth()
        curves = pr_curves(coco, detections())
        for k, category in enumerate((A, B)):
            with contextlib.redirect_stdout(io.StringIO()):
                evaluation = COCOeval(coco, coco.loadRes(detections()), "bbox")
                evaluation.params.catIds = [category]
                evaluation.evaluate()
                evaluation.accumulate()
                evaluation.summarize()
            self.assertAlmostEqual(curves["ap"][k], 100 * evaluation.stats[0], places=6)
            self.assertAlmostEqual(curves["ap50"][k], 100 * evaluation.stats[1], places=6)
        self.assertGreater(curves["ap"][1], curves["ap"][0])  # b's detections are better
        # a class without ground truth has no curve
        lonely = ground_truth()
        lonely.dataset["categories"].append({"id": 3, "name": "c"})
        with contextlib.redirect_stdout(io.StringIO()):
            lonely.createIndex()
        self.assertTrue(np.isnan(pr_curves(lonely, detections())["precision"][2]).all())

    def test_pictures_and_tables(self):
        coco = ground_truth()
        with tempfile.TemporaryDirectory() as tmp:
            files = {}
            for i in OBJECTS:
                files[i] = os.path.join(tmp, f"{i}.png")
                cv2.imwrite(files[i], np.full((100, 100, 3), 128, np.uint8))
            out = os.path.join(tmp, "analysis")
            report = analyze_detections(coco, detections(), out, files, worst_images=8)
            names = sorted(os.listdir(out))
            worst = sorted(os.listdir(os.path.join(out, "worst")))
            picture = cv2.imread(os.path.join(out, "worst", worst[0]))
            table = open(os.path.join(out, "analysis.md")).read()
            saved = json.load(open(os.path.join(out, "analysis.json")))
        for name in ("analysis.json", "analysis.md", "confusion_matrix.png", "errors.png",
                     "pr_curves.png"):  # fmt: skip
            self.assertIn(name, names)
        # the two images with errors, most first; ground truth and detections side by side
        self.assertEqual(worst, ["01_image1_4errors.png", "02_image2_1errors.png"])
        self.assertEqual(picture.shape, (500, 1008, 3))  # 5x: labels legible
        self.assertIn("| 1 | 1 | 1 | 1 | 0 | 1 |", table)
        self.assertEqual(saved["errors"], report["errors"])


class TestAfterEvaluation(unittest.TestCase):
    def test_evaluator_writes_into_the_dataset_folder(self):
        name = "analysis_planted_test"
        with tempfile.TemporaryDirectory() as tmp:
            dicts = []
            for i, objects in OBJECTS.items():
                path = os.path.join(tmp, f"{i}.png")
                cv2.imwrite(path, np.full((100, 100, 3), 90, np.uint8))
                annos = [{"bbox": b, "bbox_mode": BoxMode.XYWH_ABS, "category_id": c - 1}
                         for c, b in objects]  # fmt: skip
                dicts.append({"file_name": path, "image_id": i, "height": 100, "width": 100,
                              "annotations": annos})  # fmt: skip
            DatasetCatalog.register(name, lambda: dicts)
            MetadataCatalog.get(name).set(thing_classes=["a", "b"])
            try:
                evaluator = DetectionAnalysis(name, tmp, distributed=False)
                evaluator.reset()
                for i in OBJECTS:
                    rows = [d for d in DETECTIONS if d[0] == i]
                    boxes = [[x, y, x + w, y + h] for _, _, (x, y, w, h), _, _ in rows]
                    instances = Instances((100, 100))
                    instances.pred_boxes = Boxes(
                        torch.tensor(boxes, dtype=torch.float32).view(-1, 4)
                    )
                    instances.scores = torch.tensor([d[3] for d in rows])
                    instances.pred_classes = torch.tensor([d[1] - 1 for d in rows])
                    evaluator.process([{"image_id": i}], [{"instances": instances}])
                self.assertEqual(evaluator.evaluate(), {})  # no numbers: the AP stays the AP's
                saved = json.load(open(os.path.join(tmp, name, "analysis.json")))
                # tools/analyze.py on the same detections saved (category ids 0, 1 here)
                results = os.path.join(tmp, "results.json")
                with open(results, "w") as f:
                    json.dump([dict(d, category_id=d["category_id"] - 1) for d in detections()], f)
                tool = load_tool("analyze")
                args = ["--results", results, "--dataset", name, "--output", tmp + "/tool"]
                with contextlib.redirect_stdout(io.StringIO()):
                    report = tool.main(tool.get_parser().parse_args(args))
                self.assertEqual(report["errors"], saved["errors"])
                self.assertEqual(report["confusion_matrix"], saved["confusion_matrix"])
                with open(results, "w") as f:
                    json.dump([dict(detections()[0], category_id=7)], f)
                with self.assertRaisesRegex(ValueError, r"results\.json has category ids \[7\]"):
                    tool.main(tool.get_parser().parse_args(args))
                with open(results, "w") as f:  # another set's image: one line, no assertion
                    json.dump([dict(detections()[0], category_id=0, image_id=99)], f)
                code, stderr = run_tool_in_process(tool, args)
                self.assertEqual(code, 2, stderr)
                self.assertIn("image ids [99] that the dataset does not have", stderr)
            finally:
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)
        self.assertEqual(saved["errors"]["missed"], 1)
        self.assertEqual(saved["confusion_matrix"], [[1, 0, 2], [1, 1, 0], [2, 1, 0]])


class TestIdentitySwitches(unittest.TestCase):
    def test_switches_per_frame_add_up_to_idsw(self):
        box = np.array([[10.0, 10.0, 30.0, 30.0]])
        frame = lambda pred_id: {  # noqa: E731
            "gt_ids": np.array([1]), "gt_boxes": box, "gt_classes": np.array([0]),
            "gt_crowd": np.array([False]), "pred_ids": np.array([pred_id]),
            "pred_boxes": box, "pred_classes": np.array([0]),
        }  # fmt: skip
        videos = {"v": [frame(5), frame(5), frame(6), frame(6), frame(5)]}
        switches = identity_switches(videos)
        self.assertEqual(switches["v"].tolist(), [0, 0, 1, 0, 1])
        self.assertEqual(mot_metrics(videos)[0]["IDSW"], 2)


if __name__ == "__main__":
    unittest.main()
