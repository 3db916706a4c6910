"""centernet_d2.export, tools/export_model.py and docs/export.md's onnxruntime snippet: TorchScript
and ONNX round trips on real (generated) images."""

import contextlib
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from centernet_d2.data import generate_shapes_dataset
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import exported_outputs, load_image
from tests.common import CONFIG, ROOT, load_tool

try:
    import onnx
    import onnxruntime
except ImportError:
    onnx = onnxruntime = None

SIZE = 128  # export size (INPUT.MIN_SIZE_TEST), a multiple of 32
OPTS = ["INPUT.MIN_SIZE_TEST", str(SIZE), "INPUT.MAX_SIZE_TEST", str(SIZE), "MODEL.DEVICE", "cpu"]
SIZE_BIAS = 8.0  # cells: untrained sizes are ~0, this gives 32 px boxes
TOLERANCE = 1e-3
SNIPPET = re.compile(r"<!-- onnx-snippet -->\s*```python\n(.*?)```", re.S)

# Loads and runs a TorchScript file (argv[1]) with Detectron2 and centernet_d2 not importable.
NO_DETECTRON2_RUN = f"""
import sys
sys.modules.update(detectron2=None, centernet_d2=None, fvcore=None)
import torch
boxes, scores, classes = torch.jit.load(sys.argv[1])(torch.rand(1, 3, {SIZE}, {SIZE}) * 255)
print(tuple(boxes.shape))
"""

_tmp = None


def setUpModule():
    """Two real images of the export size, and random weights with positive sizes."""
    global _tmp
    _tmp = tempfile.TemporaryDirectory()
    generate_shapes_dataset(_tmp.name, "imgs", num_images=2, seed=5, image_size=SIZE)
    torch.manual_seed(0)
    model = build_model(setup_cfg(CONFIG, OPTS))
    torch.nn.init.constant_(model.head.branches["size"][-1].bias, SIZE_BIAS)
    DetectionCheckpointer(model, save_dir=_tmp.name).save("model")


def tearDownModule():
    _tmp.cleanup()


def image_paths():
    folder = os.path.join(_tmp.name, "imgs")
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))]


def trained_opts():
    return OPTS + ["MODEL.WEIGHTS", os.path.join(_tmp.name, "model.pth")]


def run_export_tool(fmt, output):
    """tools/export_model.py on both images; returns (path, max differences, printed text)."""
    tool = load_tool("export_model")
    args = ["--config-file", CONFIG, "--format", fmt, "--output", output]
    for path in image_paths():
        args += ["--sample-image", path]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        path, diffs = tool.main(tool.get_parser().parse_args(args + trained_opts()))
    return path, diffs, out.getvalue()


class TestExportedFunction(unittest.TestCase):
    def test_equals_the_model_inference(self):
        cfg = setup_cfg(CONFIG, trained_opts() + ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0"])
        model = build_model(cfg).eval()
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
        image = load_image(image_paths()[0], (SIZE, SIZE), cfg.INPUT.FORMAT)
        with torch.no_grad():
            boxes, scores, classes = exported_outputs(model, image[None], (SIZE, SIZE))
            (result,) = model([{"image": image, "height": SIZE, "width": SIZE}])
        instances = result["instances"]
        self.assertEqual(boxes.shape, (1, cfg.TEST.DETECTIONS_PER_IMAGE, 4))
        # every box is non-empty, so Detectron2's postprocessing keeps all, in the same order
        self.assertEqual(len(instances), cfg.TEST.DETECTIONS_PER_IMAGE)
        self.assertTrue(((boxes[0, :, 2:] - boxes[0, :, :2]) > 0).all())
        torch.testing.assert_close(boxes[0], instances.pred_boxes.tensor, rtol=0, atol=1e-4)
        torch.testing.assert_close(scores[0], instances.scores, rtol=0, atol=1e-6)
        self.assertTrue(torch.equal(classes[0], instances.pred_classes))
        self.assertTrue((boxes >= 0).all() and (boxes <= SIZE).all())


def reference_detections(images: torch.Tensor, k: int):
    """The trained model's detections computed here, independently of centernet_d2's decoding
    and export: the network's outputs (``run_network``), then 3x3 max-pool peaks of the heatmap
    logits, top-k over classes and cells, and CenterNet's boxes ``(x + dx -/+ w / 2) * stride``
    clipped to the image. Returns boxes (N, k, 4), scores (N, k), classes (N, k)."""
    cfg = setup_cfg(CONFIG, trained_opts())
    model = build_model(cfg).eval()
    DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    with torch.no_grad():
        out = model.run_network((images - model.pixel_mean) / model.pixel_std)
    logits = out["heatmap"].double()
    N, K, H, W = logits.shape
    peaks = torch.where(
        torch.nn.functional.max_pool2d(logits, 3, stride=1, padding=1) == logits,
        logits,
        torch.full_like(logits, -math.inf),
    )
    top, index = peaks.flatten(1).topk(k)
    classes, cell = index // (H * W), index % (H * W)
    y, x = (cell // W).double(), (cell % W).double()
    size = out["size"].double().flatten(2)  # (N, 2, H * W)
    offset = out["offset"].double().flatten(2)
    pick = [v.gather(2, cell[:, None, :].expand(-1, 2, -1)) for v in (size, offset)]
    (w, h), (dx, dy) = pick[0].unbind(1), pick[1].unbind(1)
    cx, cy, stride = x + dx, y + dy, model.stride
    boxes = torch.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], dim=2) * stride
    boxes = boxes.clamp(0, SIZE)  # the export's square input
    return boxes, torch.sigmoid(top), classes


class TestTorchScript(unittest.TestCase):
    def test_tool_round_trip(self):
        with tempfile.TemporaryDirectory() as out:
            path, diffs, printed = run_export_tool("torchscript", out)
            self.assertEqual(path, os.path.join(out, "model.ts"))
            self.assertLessEqual(diffs["boxes"], TOLERANCE)
            self.assertLessEqual(diffs["scores"], TOLERANCE)
            self.assertEqual(diffs["classes"], 0)
            self.assertIn("TorchScript vs PyTorch on 2 image(s) of 128x128", printed)
            extra = {"centernet_d2.json": ""}
            module = torch.jit.load(path, _extra_files=extra)
            meta = json.loads(extra["centernet_d2.json"])
            self.assertEqual(
                (meta["height"], meta["width"], meta["input_format"]), (SIZE, SIZE, "RGB")
            )
            self.assertEqual(len(meta["class_names"]), 5)
            images = torch.stack([load_image(p, (SIZE, SIZE)) for p in image_paths()])
            with torch.no_grad():
                boxes, scores, classes = module(images)
            self.assertEqual(tuple(boxes.shape), (2, 100, 4))
            self.assertTrue(((boxes[..., 2:] - boxes[..., :2]) > 0).all())
            # the exported file against an eager run written independently of it
            ref_boxes, ref_scores, ref_classes = reference_detections(images, 100)
            torch.testing.assert_close(scores.double(), ref_scores, rtol=0, atol=1e-5)
            self.assertTrue(torch.equal(classes, ref_classes))
            torch.testing.assert_close(boxes.double(), ref_boxes, rtol=0, atol=1e-3)
            # the file needs PyTorch only
            run = subprocess.run(
                [sys.executable, "-c", NO_DETECTRON2_RUN, path], capture_output=True, text=True
            )
            self.assertEqual(run.returncode, 0, run.stderr)
            self.assertEqual(run.stdout.strip(), "(1, 100, 4)")


@unittest.skipIf(onnxruntime is None, "onnx / onnxruntime not installed (pip install -e .[export])")
class TestONNX(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.TemporaryDirectory()
        cls.path, cls.diffs, cls.printed = run_export_tool("onnx", cls.out.name)

    @classmethod
    def tearDownClass(cls):
        cls.out.cleanup()

    def test_tool_round_trip(self):
        self.assertEqual(self.path, os.path.join(self.out.name, "model.onnx"))
        self.assertLessEqual(self.diffs["boxes"], TOLERANCE)
        self.assertLessEqual(self.diffs["scores"], TOLERANCE)
        self.assertEqual(self.diffs["classes"], 0)
        self.assertIn("onnxruntime vs PyTorch on 2 image(s) of 128x128", self.printed)
        proto = onnx.load(self.path)
        opset = {o.domain: o.version for o in proto.opset_import}[""]
        self.assertGreaterEqual(opset, 17)
        self.assertEqual([i.name for i in proto.graph.input], ["images"])
        self.assertEqual([o.name for o in proto.graph.output], ["boxes", "scores", "classes"])

    def test_doc_snippet_runs_as_written(self):
        """docs/export.md's snippet, in a folder laid out with the paths it names, on an image of
        another size and aspect than the export, gives the exported outputs scaled back."""
        with open(os.path.join(ROOT, "docs", "export.md")) as f:
            (snippet,) = SNIPPET.findall(f.read())
        self.assertNotIn("torch", snippet.replace("onnxruntime", ""))
        self.assertNotIn("detectron2", snippet)
        with tempfile.TemporaryDirectory() as work:
            model_path = os.path.join(work, "output", "export", "model.onnx")
            image_dir = os.path.join(work, "datasets", "shapes")
            os.makedirs(os.path.dirname(model_path))
            shutil.copy(self.path, model_path)
            generate_shapes_dataset(image_dir, "val", num_images=1, seed=7, image_size=(112, 160))
            image_path = os.path.join(image_dir, "val", "000001.jpg")
            self.assertIn(os.path.relpath(model_path, work), snippet)
            self.assertIn(os.path.relpath(image_path, work), snippet)
            namespace, printed = {}, io.StringIO()
            cwd = os.getcwd()
            try:
                os.chdir(work)
                with contextlib.redirect_stdout(printed):
                    exec(compile(snippet, "docs/export.md", "exec"), namespace)
            finally:
                os.chdir(cwd)
            model = build_model(setup_cfg(CONFIG, trained_opts())).eval()
            DetectionCheckpointer(model).load(os.path.join(_tmp.name, "model.pth"))
            with torch.no_grad():
                image = load_image(image_path, (SIZE, SIZE))[None]
                boxes, scores, classes = exported_outputs(model, image, (SIZE, SIZE))
        keep = scores[0] >= model.test_score_thresh
        self.assertGreater(int(keep.sum()), 0)
        scale = torch.tensor([160 / SIZE, 112 / SIZE, 160 / SIZE, 112 / SIZE])
        np.testing.assert_allclose(namespace["boxes"], boxes[0][keep] * scale, atol=TOLERANCE)
        np.testing.assert_allclose(namespace["scores"], scores[0][keep], atol=TOLERANCE)
        np.testing.assert_array_equal(namespace["classes"], classes[0][keep])
        lines = printed.getvalue().splitlines()
        self.assertEqual(len(lines), int(keep.sum()))
        names = ("circle", "triangle", "rectangle", "star", "cross")
        self.assertEqual(lines[0].split()[0], names[int(classes[0, 0])])


if __name__ == "__main__":
    unittest.main()
