"""centernet_d2.tracking.export and tools/export_model.py with a tracking config: the network
with two images and a heatmap in, detections and displacements out, against PyTorch."""

import contextlib
import io
import os
import tempfile
import unittest

import cv2
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from centernet_d2.data import ShapesVideoSpec, render_shapes_video
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import run_file
from centernet_d2.modeling.centertrack import render_prev_heatmap
from centernet_d2.tracking.export import (
    TRACKING_INPUT_NAMES,
    TRACKING_OUTPUT_NAMES,
    export_tracking_and_check,
    exported_tracking_outputs,
)
from tests.common import TRACK_CONFIG, load_tool

try:
    import onnx
    import onnxruntime
except ImportError:
    onnx = onnxruntime = None

SIZE = 64
OPTS = ["INPUT.MIN_SIZE_TEST", str(SIZE), "INPUT.MAX_SIZE_TEST", str(SIZE), "MODEL.DEVICE", "cpu"]
TOLERANCE = 1e-3


def tracking_model(fusion="stem"):
    """Random weights with 4-cell boxes and a fusion ("stem" or "input") that passes the previous
    frame on."""
    torch.manual_seed(0)
    model = build_model(setup_cfg(TRACK_CONFIG, [*OPTS, "MODEL.CENTERTRACK.FUSION", fusion]))
    torch.nn.init.constant_(model.head.branches["size"][-1].bias, 4.0)
    if fusion == "input":
        torch.nn.init.normal_(model.fusion.conv.weight, std=0.5)
    elif model.fusion.gains is not None:
        torch.nn.init.constant_(model.fusion.gains, 1.0)
    return model.eval()


@unittest.skipIf(onnxruntime is None, "onnx / onnxruntime not installed")
class TestTrackingExport(unittest.TestCase):
    def test_onnx_parity_and_names(self):
        for fusion in ("stem", "input"):
            with self.subTest(fusion=fusion):
                self.check_onnx_parity_and_names(tracking_model(fusion))

    def check_onnx_parity_and_names(self, model):
        g = torch.Generator().manual_seed(1)
        images = torch.rand(2, 3, SIZE, SIZE, generator=g) * 255
        prev = torch.rand(2, 3, SIZE, SIZE, generator=g) * 255
        heatmaps = torch.rand(2, 1, SIZE, SIZE, generator=g)
        with tempfile.TemporaryDirectory() as out:
            inputs = (images, prev, heatmaps)
            path, diffs = export_tracking_and_check(
                model, tuple(x[:1] for x in inputs), out, "onnx", inputs
            )
            proto = onnx.load(path)
        self.assertEqual([i.name for i in proto.graph.input], list(TRACKING_INPUT_NAMES))
        self.assertEqual([o.name for o in proto.graph.output], list(TRACKING_OUTPUT_NAMES))
        for key in ("boxes", "scores", "displacements"):
            self.assertLessEqual(diffs[key], TOLERANCE, key)
        self.assertEqual(diffs["classes"], 0)
        # the previous frame and heatmap are inputs of the graph, not constants
        with torch.no_grad():
            a = exported_tracking_outputs(model, images, prev, heatmaps, (SIZE, SIZE))
            b = exported_tracking_outputs(model, images, images, heatmaps * 0, (SIZE, SIZE))
        self.assertFalse(torch.equal(a[3], b[3]))

    def test_onnx_matches_the_models_inference(self):
        # the file, fed the previous tracks drawn as the heatmap, gives what CenterTrack's own
        # forward gives for the frame, its previous frame and those tracks
        model = tracking_model()
        model.test_score_thresh = 0.1
        g = torch.Generator().manual_seed(3)
        image = torch.rand(3, SIZE, SIZE, generator=g) * 255
        prev_image = torch.rand(3, SIZE, SIZE, generator=g) * 255
        prev_boxes = torch.tensor([[4.0, 6.0, 20.0, 30.0], [36.0, 30.0, 60.0, 50.0]])
        heatmap = render_prev_heatmap([prev_boxes], (1, 1, SIZE, SIZE))
        inputs = (image[None], prev_image[None], heatmap)
        with tempfile.TemporaryDirectory() as out:
            path, _ = export_tracking_and_check(model, inputs, out, "onnx")
            boxes, scores, classes, displacements = (
                x[0] for x in run_file(path, dict(zip(TRACKING_INPUT_NAMES, inputs)), None)
            )
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
            tool = load_tool("export_model")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                path, diffs = tool.main(tool.get_parser().parse_args(args))
            self.assertTrue(os.path.isfile(path))
        self.assertIn("max |displacements| difference", printed.getvalue())
        self.assertLessEqual(
            max(diffs["boxes"], diffs["scores"], diffs["displacements"]), TOLERANCE
        )


if __name__ == "__main__":
    unittest.main()
