"""centernet_d2.tracking.CenterTrackPredictor and the tracking snippet of the docs, run as
written."""

import contextlib
import io
import os
import re
import shutil
import tempfile
import unittest

import cv2
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from centernet_d2.data import ShapesVideoSpec, render_shapes_video
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.tracking import CenterTrackPredictor
from tests.common import CONFIG, ROOT, TRACK_CONFIG

SNIPPET = re.compile(r"<!-- tracking-snippet -->\s*```python\n(.*?)```", re.S)
# every detection is tracked
LOW = ["TEST.TRACKING.SCORE_THRESH", "0.0", "TEST.TRACKING.NEW_TRACK_SCORE", "0.0"]


def snippet() -> str:
    """The tracking snippet of README.md, docs/guide.md or docs/tracking.md."""
    for name in (
        "README.md",
        os.path.join("docs", "guide.md"),
        os.path.join("docs", "tracking.md"),
    ):
        with open(os.path.join(ROOT, name)) as f:
            found = SNIPPET.findall(f.read())
        if found:
            return found[0]
    raise AssertionError("no <!-- tracking-snippet --> in README.md or docs/")


class TestPredictor(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        torch.manual_seed(0)
        model = build_model(setup_cfg(TRACK_CONFIG))
        # untrained sizes are ~0 and Detectron2's postprocessing drops empty boxes: 4-cell boxes
        torch.nn.init.constant_(model.head.branches["size"][-1].bias, 4.0)
        cls.weights_dir = os.path.join(cls.tmp.name, "output", "centertrack")
        os.makedirs(cls.weights_dir)
        DetectionCheckpointer(model, save_dir=cls.weights_dir).save("model_final")
        spec = ShapesVideoSpec(num_videos=1, seed=6, num_frames=3)
        cls.frames, _ = render_shapes_video(spec, 0)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_frames_in_order_then_reset(self):
        weights = os.path.join(self.weights_dir, "model_final.pth")
        cfg = setup_cfg(
            TRACK_CONFIG, ["MODEL.WEIGHTS", weights, "TEST.DETECTIONS_PER_IMAGE", "4"] + LOW
        )
        predictor = CenterTrackPredictor(cfg)
        seen = [predictor(frame) for frame in self.frames]
        for out in seen:
            self.assertEqual(out["instances"].image_size, (128, 128))
            self.assertTrue(out["instances"].has("pred_track_ids"))
        self.assertEqual(seen[0]["instances"].pred_track_ids.tolist(), [1, 2, 3, 4])
        self.assertEqual(len(seen[1]["detections"]), 4)
        self.assertEqual(predictor.metadata.thing_classes[0], "circle")
        predictor.reset()
        again = predictor(self.frames[0])["instances"]
        self.assertEqual(again.pred_track_ids.tolist(), [1, 2, 3, 4])
        torch.testing.assert_close(again.pred_boxes.tensor, seen[0]["instances"].pred_boxes.tensor)

    def test_test_time_augmentation(self):
        weights = os.path.join(self.weights_dir, "model_final.pth")
        opts = ["MODEL.WEIGHTS", weights, "TEST.DETECTIONS_PER_IMAGE", "4"] + LOW
        plain = CenterTrackPredictor(setup_cfg(TRACK_CONFIG, opts))
        predictor = CenterTrackPredictor(
            setup_cfg(TRACK_CONFIG, opts + ["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "()"])
        )
        for t, frame in enumerate(self.frames):
            out, ref = predictor(frame), plain(frame)
            self.assertEqual(len(out["instances"].pred_track_ids), 4)
            if t == 0:
                self.assertEqual(out["instances"].pred_track_ids.tolist(), [1, 2, 3, 4])
            self.assertEqual(out["detections"].pred_displacements.shape, (4, 2))
            self.assertFalse(torch.equal(out["detections"].scores, ref["detections"].scores))

    def test_needs_a_tracking_config(self):
        with self.assertRaisesRegex(ValueError, "CenterTrack"):
            CenterTrackPredictor(setup_cfg(CONFIG, ["MODEL.WEIGHTS", ""]))

    def test_snippet_runs_as_written(self):
        code = snippet()
        with tempfile.TemporaryDirectory() as work:
            shutil.copytree(os.path.join(ROOT, "configs"), os.path.join(work, "configs"))
            weights = re.search(r'"(output/[^"]+\.pth)"', code).group(1)
            os.makedirs(os.path.dirname(os.path.join(work, weights)))
            shutil.copy(
                os.path.join(self.weights_dir, "model_final.pth"), os.path.join(work, weights)
            )
            video = re.search(r'"(datasets/[^"]+\.mp4)"', code).group(1)
            os.makedirs(os.path.dirname(os.path.join(work, video)))
            writer = cv2.VideoWriter(
                os.path.join(work, video), cv2.VideoWriter_fourcc(*"mp4v"), 5, (128, 128)
            )
            for frame in self.frames:
                writer.write(frame)
            writer.release()
            cwd, printed = os.getcwd(), io.StringIO()
            os.chdir(work)
            try:
                scope = {}
                with contextlib.redirect_stdout(printed):
                    exec(compile(code, "docs/tracking.md", "exec"), scope)
            finally:
                os.chdir(cwd)
        self.assertIn("tensor(", printed.getvalue())
        self.assertIsInstance(scope["predictor"], CenterTrackPredictor)
        self.assertTrue(scope["tracks"].has("pred_track_ids"))


if __name__ == "__main__":
    unittest.main()
