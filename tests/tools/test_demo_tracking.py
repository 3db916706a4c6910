"""tools/demo.py with a tracking config: a video or a folder of frames in, a video with the tracks'
ids and trails out; the drawing helpers."""

import os
import tempfile
import unittest
from unittest import mock

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.data import Metadata
from detectron2.data.detection_utils import read_image
from detectron2.modeling import build_model

from centernet_d2.data import ShapesVideoSpec, render_shapes_video
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterTrackPredictor
from centernet_d2.evaluation import read_mot_results
from centernet_d2.utils.visualize import draw_tracks, update_trails
from tests.common import TRACK_CONFIG, load_tool, pred_instances, square

# every detection is tracked
LOW = ["TEST.TRACKING.SCORE_THRESH", "0.0", "TEST.TRACKING.NEW_TRACK_SCORE", "0.0"]


def read_frames(path):
    video, frames = cv2.VideoCapture(path), []
    while True:
        ok, frame = video.read()
        if not ok:
            return frames
        frames.append(frame)


class TestTrackingDemo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        frames, _ = render_shapes_video(ShapesVideoSpec(num_videos=1, seed=4, num_frames=4), 0)
        cls.frames = os.path.join(root, "clip7")
        os.makedirs(cls.frames)
        for t, frame in enumerate(frames):
            cv2.imwrite(os.path.join(cls.frames, f"{t + 1:06d}.png"), frame)
        cls.video = os.path.join(root, "clip8.mp4")
        writer = cv2.VideoWriter(cls.video, cv2.VideoWriter_fourcc(*"mp4v"), 5, (128, 128))
        for frame in frames:
            writer.write(frame)
        writer.release()
        torch.manual_seed(0)
        model = build_model(setup_cfg(TRACK_CONFIG))
        # untrained sizes are ~0 and Detectron2's postprocessing drops empty boxes: 4-cell boxes
        torch.nn.init.constant_(model.head.branches["size"][-1].bias, 4.0)
        DetectionCheckpointer(model, save_dir=root).save("model")
        cls.weights = os.path.join(root, "model.pth")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def run_demo(self, *video_input):
        """Run the demo; return its output folder and, per frame, the tracks and trails it
        drew."""
        demo = load_tool("demo")
        out = os.path.join(self.tmp.name, "out")
        args = ["--config-file", TRACK_CONFIG, "--video-input", *video_input, "--output", out]
        args += ["--confidence-threshold", "0.05", "--opts"] + self.opts()
        drawn = []

        def record(image, instances, metadata, trails):
            drawn.append((instances, dict(trails)))
            return draw_tracks(image, instances, metadata, trails)

        with mock.patch.object(demo, "draw_tracks", side_effect=record):
            demo.main(demo.get_parser().parse_args(args))
        return out, drawn

    def opts(self):
        return ["MODEL.WEIGHTS", self.weights, "TEST.DETECTIONS_PER_IMAGE", "3"] + LOW

    def test_folder_of_frames(self):
        out, drawn = self.run_demo(self.frames)
        written = read_frames(os.path.join(out, "clip7.mp4"))
        self.assertEqual(len(written), 4)
        self.assertEqual(written[0].shape, (128, 128, 3))
        first = cv2.imread(os.path.join(self.frames, "000001.png"))
        # the boxes and labels are drawn (beyond the video codec's noise)
        self.assertGreater(np.abs(written[0].astype(int) - first.astype(int)).max(), 100)
        # what was drawn: the tracks of the library's predictor on the frames in name order,
        # and as trails the centres of each track in the frames it was seen in a row
        cfg = setup_cfg(TRACK_CONFIG, self.opts() + ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.05"])
        predictor, trails = CenterTrackPredictor(cfg), {}
        self.assertEqual(len(drawn), 4)
        for t, (instances, drawn_trails) in enumerate(drawn):
            frame = read_image(os.path.join(self.frames, f"{t + 1:06d}.png"), format="BGR")
            expected = predictor(frame)["instances"]
            ids = expected.pred_track_ids.tolist()
            self.assertEqual(instances.pred_track_ids.tolist(), ids)
            torch.testing.assert_close(instances.pred_boxes.tensor, expected.pred_boxes.tensor)
            boxes = expected.pred_boxes.tensor
            centres = dict(zip(ids, map(tuple, ((boxes[:, :2] + boxes[:, 2:]) / 2).tolist())))
            trails = {i: (trails.get(i, []) + [c])[-15:] for i, c in centres.items()}
            self.assertEqual(drawn_trails, trails)
        self.assertGreater(max(len(x) for x in trails.values()), 1)  # a track lived on
        # the MOTChallenge result file beside the video: the tracks drawn, frame by frame
        results = read_mot_results(os.path.join(out, "clip7.txt"))
        for t, (instances, _) in enumerate(drawn):
            rows = results.get(t + 1, {"pred_ids": np.zeros(0)})
            self.assertEqual(rows["pred_ids"].tolist(), instances.pred_track_ids.tolist())
            if len(instances):
                np.testing.assert_allclose(
                    rows["pred_boxes"], instances.pred_boxes.tensor.numpy(), atol=1e-4
                )

    def test_video_file_and_a_motchallenge_sequence_in_one_run(self):
        sequence = os.path.join(self.tmp.name, "MOT-02")
        if not os.path.isdir(sequence):
            os.makedirs(sequence)
            os.symlink(self.frames, os.path.join(sequence, "img1"))
        out, drawn = self.run_demo(self.video, sequence)
        self.assertEqual(len(read_frames(os.path.join(out, "clip8.mp4"))), 4)
        self.assertEqual(len(read_frames(os.path.join(out, "MOT-02.mp4"))), 4)
        self.assertEqual(len(drawn), 8)
        # each video's tracks start at id 1
        first = [drawn[0][0].pred_track_ids.tolist(), drawn[4][0].pred_track_ids.tolist()]
        self.assertEqual(first[0], first[1])
        self.assertEqual(sorted(first[0])[:1], [1])
        self.assertTrue(os.path.isfile(os.path.join(out, "MOT-02.txt")))


class TestDrawing(unittest.TestCase):
    def test_trails(self):
        trails = {}
        for t in range(4):
            tracks = pred_instances(
                [square(20 + 5 * t, 30), square(80, 80)], [0, 1], track_ids=[3, 9]
            )
            trails = update_trails(trails, tracks, length=3)
        self.assertEqual(trails[3], [(25.0, 30.0), (30.0, 30.0), (35.0, 30.0)])
        self.assertEqual(len(trails[9]), 3)
        gone = update_trails(trails, pred_instances([square(80, 80)], [1], track_ids=[9]))
        self.assertEqual(sorted(gone), [9])  # track 3 ended: its trail goes

    def test_draw(self):
        image = np.zeros((100, 120, 3), np.uint8)
        tracks = pred_instances([square(40, 40)], [1], track_ids=[5])
        trails = {5: [(20.0, 40.0), (30.0, 40.0), (40.0, 40.0)]}
        drawn = draw_tracks(image, tracks, Metadata(thing_classes=["a", "b"]), trails)
        self.assertEqual(drawn.shape, image.shape)
        self.assertGreater(drawn[40, 20:40].max(), 0)  # the trail
        self.assertGreater(drawn[30:50, 30].max(), 0)  # the box's left edge


if __name__ == "__main__":
    unittest.main()
