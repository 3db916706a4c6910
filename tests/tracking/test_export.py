"""Export of CenterTrack (centernet_d2.export) and tools/export_model.py with a tracking config:
two images and a heatmap in, detections and displacements out, against PyTorch."""

import contextlib
import dataclasses
import io
import os
import tempfile
import unittest

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from centernet_d2.data import ShapesVideoSpec, render_shapes_video
from centernet_d2.deploy import DeployPredictor, DeployTracker
from centernet_d2.deploy.tracking import prev_heatmap
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import ExportAdapter, ExportedModel, export_and_check, export_metadata
from centernet_d2.modeling.centertrack import render_prev_heatmap
from centernet_d2.tracking import CenterTrackWithTracker, TrackerSettings
from tests.common import TRACK_CONFIG, load_tool
from tests.tiny_backbone import tiny_backbone_opts

try:
    import onnx
    import onnxruntime
    import onnxscript
except ImportError:
    onnx = onnxruntime = onnxscript = None

SIZE = 64
OPTS = ["INPUT.MIN_SIZE_TEST", str(SIZE), "INPUT.MAX_SIZE_TEST", str(SIZE), "MODEL.DEVICE", "cpu"]
OPTS += tiny_backbone_opts()  # a small graph to export: tests/tiny_backbone.py
TOLERANCE = 1e-3
NAMES_IN = ["images", "prev_images", "prev_heatmaps"]
NAMES_OUT = ["boxes", "scores", "classes", "displacements"]
# the tracker of the deployment test: both stages, lost tracks kept
TRACKER = TrackerSettings(
    score_thresh=0.14, new_track_score=0.15, max_age=2, second_stage=True, low_score_thresh=0.12
)


def tracking_model(fusion="stem"):
    """Random weights with 4-cell boxes and a fusion ("stem" or "input") that passes the previous
    frame on."""
    torch.manual_seed(0)
    model = build_model(setup_cfg(TRACK_CONFIG, [*OPTS, "MODEL.CENTERTRACK.FUSION", fusion]))
    torch.nn.init.constant_(model.head.branches["size"][-1].bias, 4.0)
    torch.nn.init.normal_(model.head.branches["heatmap"][-1].weight, std=0.2)  # scores apart
    if fusion == "input":
        torch.nn.init.normal_(model.fusion.conv.weight, std=0.5)
    elif model.fusion.gains is not None:
        torch.nn.init.constant_(model.fusion.gains, 1.0)
    return model.eval()


def random_inputs(seed, n=2, size=SIZE):
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 3, size, size, generator=g) * 255
    prev = torch.rand(n, 3, size, size, generator=g) * 255
    return images, prev, torch.rand(n, 1, size, size, generator=g)


@unittest.skipIf(onnxscript is None, "onnx / onnxruntime / onnxscript not installed")
class TestTrackingExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = tracking_model()
        cls.model.test_score_thresh = 0.1
        cls.out = tempfile.TemporaryDirectory()
        inputs = random_inputs(1)
        tracking = {"settings": dataclasses.asdict(TRACKER), "prev_heatmap_score": 0.15}
        metadata = export_metadata(
            ExportAdapter(cls.model), (SIZE, SIZE), "BGR", 0.1, None, True, (SIZE, SIZE), tracking
        )
        cls.path, cls.diffs = export_and_check(
            cls.model, tuple(x[:1] for x in inputs), cls.out.name, "onnx", inputs, metadata
        )

    @classmethod
    def tearDownClass(cls):
        cls.out.cleanup()

    def test_onnx_parity_and_names(self):
        proto = onnx.load(self.path)
        self.assertEqual([i.name for i in proto.graph.input], NAMES_IN)
        self.assertEqual([o.name for o in proto.graph.output], NAMES_OUT)
        for key in ("boxes", "scores", "displacements"):
            self.assertLessEqual(self.diffs[key], TOLERANCE, key)
        self.assertEqual(self.diffs["classes"], 0)

    def test_previous_frame_and_heatmap_are_inputs_of_the_file(self):
        images, prev, heatmaps = (x.numpy() for x in random_inputs(2, n=3, size=96))
        exported = ExportedModel(self.path)
        a = exported(images=images, prev_images=prev, prev_heatmaps=heatmaps)
        b = exported(images=images, prev_images=images, prev_heatmaps=heatmaps * 0)
        self.assertEqual(a["displacements"].shape, (3, 100, 2))  # another batch and size
        self.assertFalse(np.array_equal(a["displacements"], b["displacements"]))

    def test_onnx_matches_the_models_inference(self):
        # the file, fed the previous tracks drawn as the heatmap, gives what CenterTrack's own
        # forward gives for the frame, its previous frame and those tracks
        model = self.model
        g = torch.Generator().manual_seed(3)
        image = torch.rand(3, SIZE, SIZE, generator=g) * 255
        prev_image = torch.rand(3, SIZE, SIZE, generator=g) * 255
        prev_boxes = torch.tensor([[4.0, 6.0, 20.0, 30.0], [36.0, 30.0, 60.0, 50.0]])
        heatmap = render_prev_heatmap([prev_boxes], (1, 1, SIZE, SIZE))
        inputs = (image[None], prev_image[None], heatmap)
        outputs = ExportedModel(self.path)(**{n: x.numpy() for n, x in zip(NAMES_IN, inputs)})
        boxes, scores, classes, displacements = (outputs[n][0] for n in NAMES_OUT)
        with torch.no_grad():
            (result,) = model(
                [{"image": image, "prev_image": prev_image, "prev_boxes": prev_boxes,
                  "height": SIZE, "width": SIZE}]  # fmt: skip
            )
        expected = result["instances"]
        kept = scores >= model.test_score_thresh
        self.assertGreater(len(expected), 3)
        self.assertEqual(int(kept.sum()), len(expected))
        self.assertEqual(classes[kept].tolist(), expected.pred_classes.tolist())
        for name, actual, reference in (
            ("boxes", boxes[kept], expected.pred_boxes.tensor),
            ("scores", scores[kept], expected.scores),
            ("displacements", displacements[kept], expected.pred_displacements),
        ):
            self.assertLessEqual(
                float(abs(torch.from_numpy(actual) - reference).max()), TOLERANCE, name
            )

    def test_deploy_tracker_equals_the_model_with_its_tracker(self):
        # a video through the file with DeployTracker (numpy heatmap, tracker settings from the
        # file) and through the PyTorch model with CenterTrackWithTracker: the same tracks
        frames, _ = render_shapes_video(
            ShapesVideoSpec(num_videos=1, seed=5, num_frames=6, image_size=SIZE, max_size=24), 0
        )
        deployed = DeployTracker(self.path)
        self.assertEqual(deployed.tracker.settings, TRACKER)
        wrapper = CenterTrackWithTracker(self.model, tracker_settings=TRACKER)
        wrapper.prev_heatmap_score = 0.15
        total, first = 0, None
        for t, frame in enumerate(frames):
            result = deployed(frame)
            first = set(result["track_ids"].tolist()) if first is None else first
            image = torch.from_numpy(np.ascontiguousarray(frame.transpose(2, 0, 1))).float()
            inputs = {"image": image, "height": SIZE, "width": SIZE, "video_id": 0, "frame_id": t}
            with torch.no_grad():
                (expected,) = wrapper([inputs])
            tracks = expected["instances"]
            order = np.argsort(result["track_ids"])
            expected_order = torch.argsort(tracks.pred_track_ids).numpy()
            self.assertEqual(
                result["track_ids"][order].tolist(),
                tracks.pred_track_ids[expected_order].tolist(),
                f"frame {t}",
            )
            for name, reference in (
                ("boxes", tracks.pred_boxes.tensor),
                ("displacements", tracks.pred_displacements),
            ):
                diff = np.abs(result[name][order] - reference[expected_order].numpy())
                self.assertLessEqual(float(diff.max(initial=0)), TOLERANCE, name)
            total += len(order)
        self.assertGreater(total, 20)
        self.assertTrue(first & set(result["track_ids"].tolist()))  # tracks went on
        with self.assertRaisesRegex(ValueError, "DeployTracker"):
            DeployPredictor(self.path)

    def test_prev_heatmap_in_numpy_equals_the_models(self):
        g = torch.Generator().manual_seed(7)
        corners = torch.rand(12, 2, generator=g) * 80 - 10
        sizes = torch.rand(12, 2, generator=g) * 40
        boxes = torch.cat([corners, corners + sizes], 1)
        boxes[0, 2] = boxes[0, 0]  # no area: skipped
        expected = render_prev_heatmap([boxes], (1, 1, 70, 90)).numpy()
        actual = prev_heatmap(boxes.numpy(), 70, 90)
        self.assertEqual(actual.shape, (1, 1, 70, 90))
        self.assertGreater(int((expected == 1.0).sum()), 5)
        np.testing.assert_allclose(actual, expected, atol=1e-6, rtol=0)

    def test_input_fusion_exports(self):
        # the other fusion: previous frame and heatmap concatenated to the image (a new stem)
        model = tracking_model("input")
        inputs = random_inputs(4)
        with tempfile.TemporaryDirectory() as out:
            path, diffs = export_and_check(model, inputs, out, "torchscript")
            self.assertTrue(path.endswith("model.ts"))
        self.assertLessEqual(max(diffs["boxes"], diffs["displacements"]), TOLERANCE)
        self.assertEqual(diffs["classes"], 0)
        self.assertEqual(ExportAdapter(model).input_names, tuple(NAMES_IN))

    def test_tool_on_frames(self):
        model = tracking_model()
        frames, _ = render_shapes_video(
            ShapesVideoSpec(num_videos=1, seed=2, num_frames=2, image_size=SIZE, max_size=24), 0
        )
        with tempfile.TemporaryDirectory() as work:
            DetectionCheckpointer(model, save_dir=work).save("model")
            args = ["--config-file", TRACK_CONFIG, "--format", "torchscript"]
            args += ["--output", os.path.join(work, "export")]
            for t, frame in enumerate(frames):
                path = os.path.join(work, f"{t}.png")
                cv2.imwrite(path, frame)
                args += ["--sample-image", path]
            args += OPTS + ["MODEL.WEIGHTS", os.path.join(work, "model.pth")]
            args += ["TEST.TRACKING.SECOND_STAGE", "True", "TEST.TRACKING.MAX_AGE", "4"]
            cfg = setup_cfg(TRACK_CONFIG, args[args.index("MODEL.WEIGHTS") + 2 :] + OPTS)
            tool = load_tool("export_model")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                path, diffs = tool.main(tool.get_parser().parse_args(args))
            self.assertTrue(os.path.isfile(path))
            # the config's tracker travels in the file, for DeployTracker
            stored = ExportedModel(path).metadata["tracking"]
        self.assertEqual(TrackerSettings(**stored["settings"]), TrackerSettings.from_config(cfg))
        self.assertEqual(stored["prev_heatmap_score"], cfg.TEST.TRACKING.PREV_HEATMAP_SCORE)
        self.assertIn("max |displacements| ", printed.getvalue())
        self.assertLessEqual(
            max(diffs["boxes"], diffs["scores"], diffs["displacements"]), TOLERANCE
        )


if __name__ == "__main__":
    unittest.main()
