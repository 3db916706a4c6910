"""centernet_d2.engine.predictor.CenterTrackPredictor and the tracking snippet of the docs, run as
written."""

import contextlib
import io
import os
import re
import shutil
import tempfile
import unittest
from unittest import mock

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import transforms as T
from detectron2.modeling import build_model

from centernet_d2.data import ShapesVideoSpec, render_shapes_video
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterTrackPredictor
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


def scripted(t, num_classes, mirror=False):
    """The head's outputs on a 64 x 64 input (16 x 16 cells of 4 px) at frame t: object A
    (class 1) at the centre of cell (2 + 2 t, 5), moving 8 px right per frame (displacement -2
    cells), and from frame 1 object B (class 3) standing at the centre of cell (10, 11); boxes
    12 x 12 px. ``mirror``: the same scene mirrored (cell x -> 15 - x, x motion negated)."""
    heatmap = torch.full((1, num_classes, 16, 16), -10.0)
    displacement = torch.zeros(1, 2, 16, 16)

    def column(x):
        return 15 - x if mirror else x

    heatmap[0, 1, 5, column(2 + 2 * t)] = 5.0
    displacement[0, 0, 5, column(2 + 2 * t)] = 2.0 if mirror else -2.0
    if t >= 1:
        heatmap[0, 3, 11, column(10)] = 4.0
    return {
        "heatmap": heatmap,
        "size": torch.full((1, 2, 16, 16), 3.0),
        "offset": torch.full((1, 2, 16, 16), 0.5),
        "displacement": displacement,
    }


class TestScriptedTracks(unittest.TestCase):
    """The predictor around a network whose outputs are scripted: ids, boxes in the frame's
    size, the previous frame passed on, and the flip test of a mirror-consistent network."""

    OPTS = ["MODEL.WEIGHTS", "", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64"]

    def track(self, *opts):
        predictor = CenterTrackPredictor(setup_cfg(TRACK_CONFIG, self.OPTS + list(opts)))
        K, calls = predictor.detector.num_classes, []

        def network(images, prev_images, prev_heatmaps):
            calls.append((images.clone(), prev_images.clone(), prev_heatmaps.clone()))
            t = len(calls) - 1 if len(calls) <= 3 else len(calls) - 4  # reset after 3 frames
            out = scripted(t, K)
            if len(images) == 2:
                out = {k: torch.cat([v, scripted(t, K, mirror=True)[k]]) for k, v in out.items()}
            return out

        g = np.random.default_rng(0)
        frames = [g.integers(0, 256, (128, 128, 3), dtype=np.uint8) for _ in range(3)]
        with mock.patch.object(predictor.detector, "run_network", side_effect=network):
            outputs = [predictor(frame) for frame in frames]
            predictor.reset()
            outputs.append(predictor(frames[0]))
        return outputs, calls, frames, predictor.detector

    def test_ids_boxes_and_previous_frame(self):
        outputs, calls, frames, model = self.track()
        ids = [out["instances"].pred_track_ids.tolist() for out in outputs]
        self.assertEqual(ids, [[1], [1, 2], [1, 2], [1]])  # reset: ids from 1 again
        # frame 2 in the frame's pixels (twice the input's): A's centre (2 (10 + 16), 44), B's
        # (84, 92), boxes 24 px; A moved 16 px right
        tracks = outputs[2]["instances"]
        self.assertEqual(tracks.image_size, (128, 128))
        expected = torch.tensor([[40.0, 32, 64, 56], [72, 80, 96, 104]])
        torch.testing.assert_close(tracks.pred_boxes.tensor, expected)
        torch.testing.assert_close(tracks.pred_displacements[0], torch.tensor([-16.0, 0]))
        # the network saw frame 2 and, as its previous frame, frame 1 (in the config's RGB,
        # resized to 64 by Detectron2's resize, normalised), and A's box of frame 1, centre
        # (18, 22) px of the input, in the heatmap
        images, prev_images, prev_heatmaps = calls[2]
        for seen, frame in ((images, frames[2]), (prev_images, frames[1])):
            rgb = frame[:, :, ::-1]
            resized = T.ResizeShortestEdge(64, 64).get_transform(rgb).apply_image(rgb)
            x = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
            torch.testing.assert_close(seen[0], (x - model.pixel_mean) / model.pixel_std)
        self.assertEqual(prev_heatmaps[0, 0, 22, 18].item(), 1.0)
        self.assertEqual(calls[0][2].abs().sum().item(), 0.0)  # the first frame: no tracks
        self.assertEqual(calls[3][2].abs().sum().item(), 0.0)  # nor after reset

    def test_flip_test_of_a_mirror_consistent_network(self):
        plain, _, _, _ = self.track()
        flipped, calls, _, _ = self.track("TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "()")
        images, prev_images, prev_heatmaps = calls[2]
        self.assertEqual(len(images), 2)  # the frame and its mirror, with mirrored inputs
        for x in (images, prev_images, prev_heatmaps):
            torch.testing.assert_close(x[1], x[0].flip(-1))
        for a, b in zip(plain, flipped):
            for key in ("instances", "detections"):
                self.assertEqual(len(a[key]), len(b[key]))
                torch.testing.assert_close(a[key].pred_boxes.tensor, b[key].pred_boxes.tensor)
                torch.testing.assert_close(a[key].scores, b[key].scores)
                torch.testing.assert_close(a[key].pred_displacements, b[key].pred_displacements)
            self.assertEqual(
                a["instances"].pred_track_ids.tolist(), b["instances"].pred_track_ids.tolist()
            )


if __name__ == "__main__":
    unittest.main()
