"""centernet_d2.evaluation.mot: MOTA / IDF1 / HOTA against hand-computed values."""

import math
import random
import unittest

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from centernet_d2.evaluation import MOTEvaluator, mot_metrics
from centernet_d2.tracking import Tracker, track_instances
from tests.common import pred_instances, square

# Two static squares, ground-truth ids 1 (at x = 20) and 2 (at x = 70), in 4 frames: 8 boxes.
# Predictions (exact boxes): frames 1-2: 1 -> 10, 2 -> 20; frame 3: 1 -> 30 (an identity
# switch), 2 -> 20; frame 4: 1 -> 30, 2 missed, and 40 on nothing (a false positive).
GT = {1: square(20, 50), 2: square(70, 50)}
PRED = [{10: 1, 20: 2}, {10: 1, 20: 2}, {30: 1, 20: 2}, {30: 1, 40: None}]
FAR = square(110, 110)
# MOTA = 1 - (FN + FP + IDSW) / GT = 1 - (1 + 1 + 1) / 8 = 0.625.
# IDF1 = 2 IDTP / (GT boxes + predicted boxes): the best one-to-one id mapping is 1 -> 10 (or
# 30), 2 frames, and 2 -> 20, 3 frames: IDTP = 5; 8 predicted boxes: 10 / 16 = 0.625.
# HOTA (all IoUs are 1 or 0, so every alpha gives the same): TP 7, FN 1, FP 1: DetA = 7 / 9;
# AssA averages over the TPs TPA / (|gt id| + |pred id| - TPA): (1, 10): 2 / (4 + 2 - 2) = 1/2
# twice, (2, 20): 3 / (4 + 3 - 3) = 3/4 three times, (1, 30): 1/2 twice:
# AssA = (1 + 9/4 + 1) / 7 = 17/28; HOTA = sqrt(7/9 * 17/28) = sqrt(17/36).
EXPECTED = {"MOTA": 62.5, "IDF1": 62.5, "IDSW": 1, "FP": 1, "FN": 1, "GT": 8}
EXPECTED_HOTA = {"HOTA": 100 * math.sqrt(17 / 36), "DetA": 100 * 7 / 9, "AssA": 100 * 17 / 28}


def toy_frames(gt_class=0, pred_class=0):
    """The frames of :func:`mot_metrics` for the sequence above."""
    frames = []
    for pred in PRED:
        pred_boxes = [GT[g] if g else FAR for g in pred.values()]
        frames.append(
            {
                "gt_ids": np.array(list(GT)),
                "gt_boxes": np.array(list(GT.values()), dtype=float),
                "gt_classes": np.full(2, gt_class),
                "gt_crowd": np.zeros(2, dtype=bool),
                "pred_ids": np.array(list(pred)),
                "pred_boxes": np.array(pred_boxes, dtype=float),
                "pred_classes": np.full(len(pred), pred_class),
            }
        )
    return frames


def toy_dataset(name, num_videos=2):
    """Register ``name``: ``num_videos`` copies of the sequence above (dicts as
    register_coco_video_dataset gives them, boxes XYWH), with a crowd box at FAR in frame 4.
    Returns (dataset dicts, (inputs, outputs) for process)."""
    dicts, inputs, outputs = [], [], []
    for v in range(num_videos):
        for t, pred in enumerate(PRED):
            image_id = 100 * v + t + 1
            annos = [
                {"bbox": [x0, y0, x1 - x0, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS,
                 "category_id": 0, "iscrowd": 0, "track_id": g}
                for g, (x0, y0, x1, y1) in GT.items()
            ]  # fmt: skip
            if t == 3:
                x0, y0, x1, y1 = FAR
                annos.append({"bbox": [x0, y0, x1 - x0, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS,
                              "category_id": 0, "iscrowd": 1, "track_id": 3})  # fmt: skip
            d = {"file_name": f"{image_id}.jpg", "image_id": image_id, "height": 128,
                 "width": 128, "video_id": v + 1, "frame_id": t + 1,
                 "annotations": annos}  # fmt: skip
            dicts.append(d)
            boxes = [GT[g] if g else FAR for g in pred.values()]
            inputs.append({"image_id": image_id})
            out = pred_instances(boxes, [0] * len(boxes), track_ids=list(pred))
            outputs.append({"instances": out})
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["box"], video_names={1: "seq-a", 2: "seq-b"})
    return dicts, (inputs, outputs)


class TestMOTMetrics(unittest.TestCase):
    def assert_results(self, results, expected):
        for k, v in expected.items():
            self.assertAlmostEqual(results[k], v, places=6, msg=k)

    def test_hand_computed(self):
        overall, per_video = mot_metrics({"toy": toy_frames()})
        self.assert_results(overall, {**EXPECTED, **EXPECTED_HOTA})
        self.assert_results(per_video["toy"], {**EXPECTED, **EXPECTED_HOTA})

    def test_partial_overlaps_around_the_threshold(self):
        # one object, one track, two frames: IoU 0.55 (a match at 0.5) then 0.45 (a miss and a
        # false positive at 0.5), from a 10 x 10 box and boxes 5.5 and 4.5 wide
        gt = [0.0, 0.0, 10.0, 10.0]
        frames = [
            {
                "gt_ids": np.array([1]),
                "gt_boxes": np.array([gt]),
                "gt_classes": np.zeros(1, int),
                "gt_crowd": np.zeros(1, bool),
                "pred_ids": np.array([7]),
                "pred_boxes": np.array([[0.0, 0.0, width, 10.0]]),
                "pred_classes": np.zeros(1, int),
            }
            for width in (5.5, 4.5)
        ]
        overall, _ = mot_metrics({"v": frames})
        # MOTA = 1 - (FN 1 + FP 1 + IDSW 0) / 2 = 0; IDF1 = 2 IDTP / (2 + 2) = 2 / 4
        self.assertEqual((overall["FN"], overall["FP"], overall["IDSW"]), (1, 1, 0))
        self.assertAlmostEqual(overall["MOTA"], 0.0, places=4)
        self.assertAlmostEqual(overall["IDF1"], 50.0, places=4)
        # HOTA over alpha = 0.05 .. 0.95: c frames matched of F = 2 gives DetA = AssA =
        # c / (2F - c): c = 2 for the 9 alphas up to 0.45, c = 1 for 0.50 and 0.55, 0 above
        hota = (9 * 1.0 + 2 * (1 / 3)) / 19
        self.assertAlmostEqual(overall["HOTA"], 100 * hota, places=3)

    def test_videos_combined(self):
        # the same video twice: ratios unchanged, counts doubled
        overall, per_video = mot_metrics({"a": toy_frames(), "b": toy_frames()})
        self.assertEqual(sorted(per_video), ["a", "b"])
        counts = {k: 2 * EXPECTED[k] for k in ("IDSW", "FP", "FN", "GT")}
        self.assert_results(overall, {"MOTA": 62.5, "IDF1": 62.5, **counts, **EXPECTED_HOTA})

    def test_class_aware(self):
        # predictions of another class match nothing: 8 misses, 8 false positives
        overall, _ = mot_metrics({"toy": toy_frames(gt_class=1)})
        self.assert_results(overall, {"MOTA": 100 * (1 - 16 / 8), "FN": 8, "FP": 8, "IDSW": 0})
        self.assertEqual(overall["HOTA"], 0.0)
        overall, _ = mot_metrics({"toy": toy_frames(gt_class=1)}, class_aware=False)
        self.assert_results(overall, EXPECTED)

    def test_crowd_ground_truth(self):
        # a crowd box where the false positive is: neither counted nor a false positive
        frames = toy_frames()
        last = frames[-1]
        for key, extra in (("gt_ids", [3]), ("gt_boxes", [FAR]), ("gt_classes", [0])):
            last[key] = np.concatenate([last[key], np.array(extra, dtype=last[key].dtype)])
        last["gt_crowd"] = np.array([False, False, True])
        overall, _ = mot_metrics({"toy": frames})
        # MOTA = 1 - (1 + 0 + 1) / 8
        self.assert_results(overall, {"MOTA": 75.0, "FP": 0, "FN": 1, "GT": 8})

    def test_empty_predictions(self):
        frames = toy_frames()
        for f in frames:
            f.update(
                pred_ids=np.zeros(0, int),
                pred_boxes=np.zeros((0, 4)),
                pred_classes=np.zeros(0, int),
            )
        overall, _ = mot_metrics({"toy": frames})
        self.assert_results(overall, {"MOTA": 0.0, "IDF1": 0.0, "HOTA": 0.0, "FN": 8, "FP": 0})


class TestMOTEvaluator(unittest.TestCase):
    def setUp(self):
        self.name = "mot_evaluator_test_toy"

    def tearDown(self):
        DatasetCatalog.remove(self.name)
        MetadataCatalog.remove(self.name)

    def test_evaluate(self):
        _, (inputs, outputs) = toy_dataset(self.name)
        evaluator = MOTEvaluator(self.name)
        evaluator.reset()
        order = list(range(len(inputs)))
        random.Random(0).shuffle(order)  # frames need not come in order
        for i in order:
            evaluator.process([inputs[i]], [outputs[i]])
        with self.assertLogs("centernet_d2.evaluation.mot", "INFO") as logs:
            results = evaluator.evaluate()
        tracking = results["tracking"]
        # Two videos; the crowd box drops the false positive of each: per video MOTA = 1 - 2 / 8,
        # IDF1 = 2 * 5 / (8 + 7); HOTA: DetA = 7 / 8, AssA as before: sqrt(7/8 * 17/28)
        expected = {"MOTA": 75.0, "IDF1": 100 * 2 / 3, "IDSW": 2, "FP": 0, "FN": 2, "GT": 16,
                    "HOTA": 100 * math.sqrt(17 / 32), "DetA": 87.5,
                    "AssA": 100 * 17 / 28}  # fmt: skip
        for k, v in expected.items():
            self.assertAlmostEqual(tracking[k], v, places=6, msg=k)
        text = "\n".join(logs.output)
        self.assertIn("| seq-a ", text)
        self.assertIn("|  MOTA  |", text)  # create_small_table's markdown header

    def test_only_processed_frames(self):
        _, (inputs, outputs) = toy_dataset(self.name)
        evaluator = MOTEvaluator(self.name)
        evaluator.process(inputs[:2], outputs[:2])  # video 1, frames 1-2: all correct
        tracking = evaluator.evaluate()["tracking"]
        self.assertEqual((tracking["MOTA"], tracking["GT"], tracking["IDSW"]), (100.0, 4, 0))

    def test_errors(self):
        dicts, (inputs, outputs) = toy_dataset(self.name)
        evaluator = MOTEvaluator(self.name)
        self.assertEqual(evaluator.evaluate(), {})  # nothing processed: a warning
        no_ids = pred_instances([square(20, 50)], [0])
        with self.assertRaisesRegex(ValueError, "pred_track_ids"):
            evaluator.process(inputs[:1], [{"instances": no_ids}])
        del dicts[0]["annotations"][1]["track_id"]
        evaluator.process(inputs[:1], outputs[:1])
        with self.assertRaisesRegex(ValueError, "track_id"):
            evaluator.evaluate()
        del dicts[0]["video_id"]
        with self.assertRaisesRegex(ValueError, "video_id"):
            evaluator.evaluate()


# A scripted video of 10 frames (16 px squares, class 0), centre (x0 + v t, y) in frames
# [first, last] and not in the frames listed hidden:
# A and B cross at y = 40 (12 px per frame each way; at frame 5 each is 12 px from the other's
# previous centre, within the 16 px limit, so only the displacements keep their ids); C moves
# 8 px per frame and is hidden in frames 4-5: its lost track moves at its velocity and takes it
# back (max_age 2); D stands still and is hidden in frames 3-6, longer than max_age: it comes
# back with a new id, one identity switch.
PIPELINE = {  # gt id: (x0, v, y, hidden frames)
    1: (20, 12, 40, ()),
    2: (128, -12, 40, ()),
    3: (30, 8, 100, (4, 5)),
    4: (130, 0, 110, (3, 4, 5, 6)),
}


def pipeline_video(name):
    """Register ``name`` with the scripted video; return (dicts, per frame the detections'
    gt ids, boxes, displacements (the true motion back to the previous frame))."""
    dicts, frames = [], []
    for t in range(10):
        annos, ids, boxes, disp = [], [], [], []
        for g, (x0, v, y, hidden) in PIPELINE.items():
            if t in hidden:
                continue
            x0_, y0, x1, y1 = square(x0 + v * t, y, side=16)
            annos.append({"bbox": [x0_, y0, x1 - x0_, y1 - y0], "bbox_mode": BoxMode.XYWH_ABS,
                          "category_id": 0, "iscrowd": 0, "track_id": g})  # fmt: skip
            ids.append(g)
            boxes.append([x0_, y0, x1, y1])
            disp.append([-v if t else 0, 0])
        dicts.append({"file_name": f"{t}.jpg", "image_id": t + 1, "height": 160, "width": 160,
                      "video_id": 1, "frame_id": t + 1, "annotations": annos})  # fmt: skip
        frames.append((ids, boxes, disp))
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["box"])
    return dicts, frames


class TestTrackingPipeline(unittest.TestCase):
    def run_pipeline(self, with_displacements):
        name = "mot_pipeline_test"
        dicts, frames = pipeline_video(name)
        try:
            evaluator, tracker = MOTEvaluator(name), Tracker(max_age=2)
            seen = {}  # gt id -> track ids per frame
            for d, (ids, boxes, disp) in zip(dicts, frames):
                scores = [0.9 - 0.1 * i for i in range(len(ids))]
                detections = pred_instances(
                    boxes, [0] * len(ids), scores, size=(160, 160),
                    displacements=disp if with_displacements else None,
                )  # fmt: skip
                tracks = track_instances(tracker, detections)
                # every detection is linked or starts a track, in the detections' order
                self.assertEqual(len(tracks), len(ids))
                for g, track_id in zip(ids, tracks.pred_track_ids.tolist()):
                    seen.setdefault(g, []).append(track_id)
                evaluator.process([{"image_id": d["image_id"]}], [{"instances": tracks}])
            return seen, evaluator.evaluate()["tracking"]
        finally:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)

    def test_scripted_video_through_tracker_and_evaluator(self):
        seen, tracking = self.run_pipeline(with_displacements=True)
        self.assertEqual(seen[1], [1] * 10)
        self.assertEqual(seen[2], [2] * 10)
        self.assertEqual(seen[3], [3] * 8)
        self.assertEqual(seen[4], [4] * 3 + [5] * 3)
        gt = 10 + 10 + 8 + 6
        self.assertEqual(
            {k: tracking[k] for k in ("GT", "FP", "FN", "IDSW")},
            {"GT": gt, "FP": 0, "FN": 0, "IDSW": 1},
        )
        self.assertAlmostEqual(tracking["MOTA"], 100 * (1 - 1 / gt), places=6)
        # IDF1: D's best id covers 3 of its 6 boxes
        self.assertAlmostEqual(tracking["IDF1"], 100 * (gt - 3) / gt, places=6)

    def test_without_displacements_the_crossing_switches(self):
        # from frame 5, A's box is nearest B's track and B's nearest A's: both swap ids
        seen, tracking = self.run_pipeline(with_displacements=False)
        self.assertEqual(seen[1], [1] * 5 + [2] * 5)
        self.assertEqual(seen[2], [2] * 5 + [1] * 5)
        self.assertEqual(tracking["IDSW"], 3)
