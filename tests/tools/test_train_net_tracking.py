"""tools/train_net.py with a tracking config end to end on a generated COCO-video json: COCO AP
and MOTA / IDF1 / HOTA in the results and the log, and --eval-only giving the same numbers."""

import json
import math
import os
import tempfile
import unittest

from detectron2.data import DatasetCatalog
from detectron2.data.detection_utils import read_image

from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterTrackPredictor
from centernet_d2.evaluation import MOTEvaluator, evaluate_mot_results
from tests.common import (
    TINY,
    TRACK_CONFIG,
    coco_video_json,
    load_tool,
    run_main,
    run_tool_in_process,
    write_coco_video,
)

# the tracker takes every detection above 0.05: a model of a few iterations has tracks
LOW_THRESHOLDS = [
    "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.05",
    "TEST.TRACKING.SCORE_THRESH", "0.05",
    "TEST.TRACKING.NEW_TRACK_SCORE", "0.05",
    "TEST.TRACKING.PREV_HEATMAP_SCORE", "0.05",
]  # fmt: skip


class TestTrackingTrainNet(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        coco = coco_video_json(num_videos=2, num_frames=4, size=(64, 64))
        json_file = write_coco_video(cls.tmp.name, coco, draw_objects=True)
        cls.argv = ["--config-file", TRACK_CONFIG]
        cls.argv += ["--coco-video-dataset", "toy_video", json_file, cls.tmp.name] + TINY
        cls.argv += ["MODEL.CENTERNET.NUM_CLASSES", "2", "DATASETS.TRAIN", "('toy_video',)"]
        cls.argv += ["DATASETS.TEST", "('toy_video',)", "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)"]
        cls.argv += ["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64"] + LOW_THRESHOLDS
        cls.argv += ["TEST.ANALYSIS.ENABLED", "True"]
        cls.out = os.path.join(cls.tmp.name, "out")
        cls.results = run_main(cls.argv + ["SOLVER.MAX_ITER", "6", "OUTPUT_DIR", cls.out])

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_results_and_log(self):
        self.assertIn("AP", self.results["bbox"])
        tracking = self.results["tracking"]
        for key in ("MOTA", "IDF1", "HOTA", "IDSW", "FP", "FN"):
            self.assertIn(key, tracking)
        self.assertEqual(tracking["GT"], 16)  # 2 videos x 4 frames x 2 objects
        self.assertGreater(tracking["FP"] + tracking["IDF1"], 0)  # the tracker output tracks
        with open(os.path.join(self.out, "eval_results.json")) as f:
            self.assertEqual(json.load(f)["tracking"], tracking)
        log = open(os.path.join(self.out, "log.txt")).read()
        self.assertIn("Tracking results of toy_video (2 videos, 8 frames)", log)
        self.assertRegex(log, r"\|\s+MOTA\s+\|\s+IDF1\s+\|\s+HOTA\s+\|")
        self.assertIn("Evaluation results for bbox", log)
        self.assertIn("loss_displacement", log)

    def test_mot_result_files_evaluate_to_the_trainers_numbers(self):
        folder = os.path.join(self.out, "inference", "toy_video", "mot_results")
        self.assertEqual(sorted(os.listdir(folder)), ["vid1.txt", "vid2.txt"])  # per video
        with open(os.path.join(folder, "vid1.txt")) as f:
            first = f.readline().strip().split(",")
        self.assertEqual(first[0], "1")
        self.assertIn(first[7], ("1", "2"))  # two classes: the class in the 8th column
        self.assertEqual(first[8:], ["-1", "-1"])
        tool = load_tool("eval_mot")
        args = tool.get_parser().parse_args(["--results", folder, "--dataset", "toy_video"])
        tracking = tool.main(args)["tracking"]
        self.assertEqual(tracking, evaluate_mot_results(folder, "toy_video")["tracking"])
        self.assertEqual(tracking.keys(), self.results["tracking"].keys())
        for key, value in self.results["tracking"].items():
            self.assertAlmostEqual(tracking[key], value, places=4, msg=key)

    def test_analysis_of_a_video_set(self):
        folder = os.path.join(self.out, "inference", "toy_video")
        table = open(os.path.join(folder, "tracking_per_video.md")).read()
        self.assertIn("| vid1 ", table)
        self.assertIn("| vid2 ", table)
        self.assertTrue(os.path.isfile(os.path.join(folder, "identity_switches.png")))
        with open(os.path.join(folder, "analysis.json")) as f:  # of the frames' detections
            self.assertEqual(json.load(f)["errors"]["objects"], 16)

    def test_eval_mot_names_a_missing_file(self):
        tool = load_tool("eval_mot")
        args = tool.get_parser().parse_args(["--results", self.tmp.name, "--dataset", "toy_video"])
        with self.assertRaisesRegex(FileNotFoundError, r"vid1\.txt not found"):
            tool.main(args)
        # a still-image set: one line naming what is needed, not a KeyError
        argv = ["--results", self.tmp.name, "--dataset", "shapes_val"]
        code, stderr = run_tool_in_process(tool, argv)
        self.assertEqual(code, 2, stderr)
        self.assertIn("'shapes_val' has images without video_id", stderr)

    def test_eval_only_gives_the_same_numbers(self):
        weights = os.path.join(self.out, "model_final.pth")
        with tempfile.TemporaryDirectory() as out:
            argv = ["--eval-only"] + self.argv + ["MODEL.WEIGHTS", weights, "OUTPUT_DIR", out]
            results = run_main(argv)
        self.assertEqual(results["tracking"], self.results["tracking"])
        for key, value in self.results["bbox"].items():  # APm, APl: NaN (no such objects)
            if not math.isnan(value):
                self.assertAlmostEqual(results["bbox"][key], value, places=6, msg=key)

    def test_numbers_of_the_library_path(self):
        # the tool's MOT numbers are those of the library: CenterTrackPredictor over each
        # video's frames in order (reset between videos), the tracks fed to MOTEvaluator
        weights = os.path.join(self.out, "model_final.pth")
        opts = self.argv[self.argv.index("--coco-video-dataset") + 4 :] + ["MODEL.WEIGHTS", weights]
        predictor = CenterTrackPredictor(setup_cfg(TRACK_CONFIG, opts))
        evaluator = MOTEvaluator("toy_video")
        evaluator.reset()
        dicts = sorted(
            DatasetCatalog.get("toy_video"), key=lambda d: (d["video_id"], d["frame_id"])
        )
        for d in dicts:
            if d["frame_id"] == dicts[0]["frame_id"]:
                predictor.reset()
            output = predictor(read_image(d["file_name"], format="BGR"))
            evaluator.process([{"image_id": d["image_id"]}], [output])
        tracking = evaluator.evaluate()["tracking"]
        self.assertEqual(tracking.keys(), self.results["tracking"].keys())
        for key, value in self.results["tracking"].items():
            self.assertAlmostEqual(tracking[key], value, places=6, msg=key)
        self.assertGreater(tracking["FP"], 0)  # the numbers count tracks, not an empty output

    def test_eval_only_with_test_time_augmentation(self):
        # the tracker runs on the flip-merged detections of two scales
        weights = os.path.join(self.out, "model_final.pth")
        aug = ["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(48, 64)"]
        with tempfile.TemporaryDirectory() as out:
            argv = ["--eval-only"] + self.argv + ["MODEL.WEIGHTS", weights, "OUTPUT_DIR", out]
            results = run_main(argv + aug)
            log = open(os.path.join(out, "log.txt")).read()
        self.assertEqual(results["tracking"], self.results["tracking"])
        self.assertEqual(results["tracking_TTA"]["GT"], 16)
        self.assertIn("AP", results["bbox_TTA"])
        self.assertNotEqual(results["tracking_TTA"], results["tracking"])  # other detections
        self.assertEqual(log.count("Tracking results of toy_video (2 videos, 8 frames)"), 2)


if __name__ == "__main__":
    unittest.main()
