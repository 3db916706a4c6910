"""centernet_d2.export, centernet_d2.deploy, tools/export_model.py and docs/export.md's snippet:
torch.export, ONNX (onnxruntime and OpenVINO) and TorchScript round trips on real (generated)
images, dynamic batch and size, the multi-level model's NMS inside the graph."""

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
from unittest import mock

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from benchmarks.formats import _coco_ap, format_table, plot_formats, run_format_benchmark
from centernet_d2.data import generate_shapes_dataset
from centernet_d2.deploy import DeployPredictor
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import (
    ExportAdapter,
    ExportedModel,
    export_and_check,
    load_image,
    max_differences,
    save_openvino,
)
from centernet_d2.utils.cli import run_tool
from tests.common import CONFIG, MULTILEVEL_CONFIG, ROOT, load_tool
from tests.tiny_backbone import tiny_backbone_opts

try:
    import onnx
    import onnxruntime
    import onnxscript
    import openvino
except ImportError:
    onnx = onnxruntime = onnxscript = openvino = None

SIZE = 128  # export size (INPUT.MIN_SIZE_TEST), a multiple of 32
OPTS = ["INPUT.MIN_SIZE_TEST", str(SIZE), "INPUT.MAX_SIZE_TEST", str(SIZE), "MODEL.DEVICE", "cpu"]
OPTS += tiny_backbone_opts()  # a small graph to export: tests/tiny_backbone.py
SIZE_BIAS = 8.0  # cells: untrained sizes are ~0, this gives 32 px boxes
TOLERANCE = 1e-3
SNIPPET = re.compile(r"<!-- onnx-snippet -->\s*```python\n(.*?)```", re.S)
NEEDS_ONNX = unittest.skipIf(
    openvino is None,
    "onnx, onnxruntime, onnxscript, openvino not installed (pip install -e .[export])",
)

# Runs an exported file (argv[1]) on a (2, 3, 96, 160) batch through centernet_d2.deploy with
# Detectron2 (and, for ONNX, PyTorch) not importable.
NO_DETECTRON2_RUN = """
import sys
blocked = dict(detectron2=None, fvcore=None)
if not sys.argv[1].endswith((".pt2", ".ts")):
    blocked["torch"] = None
sys.modules.update(blocked)
import numpy as np
from centernet_d2.deploy import ExportedModel
model = ExportedModel(sys.argv[1])
outputs = model(images=np.random.rand(2, 3, 96, 160).astype(np.float32) * 255)
print(model.metadata["input_format"], tuple(outputs["boxes"].shape))
"""

_tmp = _json = None


def setUpModule():
    """Two real images of the export size, and random weights with positive sizes."""
    global _tmp, _json
    _tmp = tempfile.TemporaryDirectory()
    _json = generate_shapes_dataset(_tmp.name, "imgs", num_images=2, seed=5, image_size=SIZE)
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
            boxes, scores, classes = ExportAdapter(model)(image[None])
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
    height, width = images.shape[2:]
    boxes = torch.min(boxes.clamp(min=0), boxes.new_tensor([width, height, width, height]))
    return boxes, torch.sigmoid(top), classes


def run_without_detectron2(test, path):
    """NO_DETECTRON2_RUN on ``path``: its printed line."""
    env = dict(os.environ, PYTHONPATH=ROOT)
    run = subprocess.run(
        [sys.executable, "-c", NO_DETECTRON2_RUN, path], capture_output=True, text=True, env=env
    )
    test.assertEqual(run.returncode, 0, run.stderr)
    return run.stdout.strip()


def check_against_the_reference(test, outputs, images, exact=True):
    """Exported outputs (numpy) against :func:`reference_detections` of ``images``: slot by
    slot (``exact``), or for another runtime's float32 arithmetic, which may order near ties
    otherwise, each of the reference's best 50 matched (:func:`max_differences`)."""
    names = ("boxes", "scores", "classes")
    boxes, scores, classes = (torch.from_numpy(outputs[n]) for n in names)
    ref_boxes, ref_scores, ref_classes = reference_detections(images, 100)
    if not exact:
        reference = [x.numpy() for x in (ref_boxes, ref_scores, ref_classes)]
        thresh = float(ref_scores[:, 49].max())
        diffs = max_differences(names, reference, [outputs[n] for n in names], thresh)
        test.assertEqual(diffs["classes"], 0)
        test.assertLessEqual(max(diffs["boxes"], diffs["scores"]), TOLERANCE)
        return
    torch.testing.assert_close(scores.double(), ref_scores, rtol=0, atol=1e-5)
    test.assertTrue(torch.equal(classes, ref_classes))
    torch.testing.assert_close(boxes.double(), ref_boxes, rtol=0, atol=1e-3)


def check_pt2_file(test, path):
    """A .pt2 file of the test's model: metadata, another batch and size."""
    exported = ExportedModel(path)
    meta = exported.metadata
    test.assertEqual((meta["height"], meta["width"], meta["input_format"]), (SIZE, SIZE, "RGB"))
    test.assertTrue(meta["dynamic_size"])
    test.assertEqual(len(meta["class_names"]), 5)
    test.assertEqual(exported.output_names, ["boxes", "scores", "classes"])
    images = torch.stack([load_image(p, (SIZE, SIZE)) for p in image_paths()])
    check_against_the_reference(test, exported(images=images.numpy()), images)
    # another batch and size than traced
    other = torch.stack([load_image(p, (96, 160)) for p in image_paths() * 2])
    check_against_the_reference(test, exported(images=other.numpy()), other)


class TestMissingPackage(unittest.TestCase):
    def test_one_error_line_before_tracing(self):
        # the ONNX exporter's package missing: the command says what to install, no traceback
        tool = load_tool("export_model")
        stderr = io.StringIO()
        with tempfile.TemporaryDirectory() as out:
            args = tool.get_parser().parse_args(
                ["--config-file", CONFIG, "--format", "onnx", "--output", out, *OPTS]
            )
            with mock.patch.dict(sys.modules, {"onnxscript": None}), contextlib.redirect_stderr(
                stderr
            ), self.assertRaises(SystemExit) as exit_:
                run_tool(tool.main, args)
            self.assertEqual(os.listdir(out), [])
        self.assertEqual(exit_.exception.code, 2)
        self.assertNotIn("Traceback", stderr.getvalue())
        last = stderr.getvalue().strip().splitlines()[-1]
        self.assertTrue(last.startswith("error: ONNX export needs onnxscript"), last)
        self.assertIn("pip install", last)


class TestTorchScript(unittest.TestCase):
    def test_tool_round_trip_at_the_traced_size(self):
        with tempfile.TemporaryDirectory() as out:
            path, diffs, printed = run_export_tool("torchscript", out)
            self.assertEqual(path, os.path.join(out, "model.ts"))
            self.assertEqual(diffs, {"boxes": 0.0, "scores": 0.0, "classes": 0})
            self.assertIn("TorchScript vs PyTorch on 2 image(s) of 128x128", printed)
            exported = ExportedModel(path)
            self.assertFalse(exported.metadata["dynamic_size"])
            images = torch.stack([load_image(p, (SIZE, SIZE)) for p in image_paths()])
            check_against_the_reference(self, exported(images=images.numpy()), images)


@NEEDS_ONNX
class TestONNX(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.TemporaryDirectory()
        cls.path, cls.diffs, cls.printed = run_export_tool("onnx", cls.out.name)
        cls.images = torch.stack([load_image(p, (SIZE, SIZE)) for p in image_paths()])
        cls.other = torch.stack([load_image(p, (96, 160)) for p in image_paths() * 2])

    @classmethod
    def tearDownClass(cls):
        cls.out.cleanup()

    def test_the_program_is_kept_as_pt2(self):
        # the torch.export program the ONNX file was made from, beside it
        check_pt2_file(self, os.path.join(self.out.name, "model.pt2"))

    def test_tool_round_trip(self):
        self.assertEqual(self.path, os.path.join(self.out.name, "model.onnx"))
        self.assertLessEqual(self.diffs["boxes"], TOLERANCE)
        self.assertLessEqual(self.diffs["scores"], TOLERANCE)
        self.assertEqual(self.diffs["classes"], 0)
        self.assertIn("onnxruntime vs PyTorch on 2 image(s) of 128x128", self.printed)
        proto = onnx.load(self.path)
        opset = {o.domain: o.version for o in proto.opset_import}[""]
        self.assertGreaterEqual(opset, 18)
        self.assertEqual([i.name for i in proto.graph.input], ["images"])
        self.assertEqual([o.name for o in proto.graph.output], ["boxes", "scores", "classes"])

    def test_runtimes_on_other_batch_and_size(self):
        for runtime in ("onnxruntime", "openvino"):
            with self.subTest(runtime=runtime):
                exported = ExportedModel(self.path, runtime)
                for images in (self.images, self.other):
                    outputs = exported(images=images.numpy())
                    check_against_the_reference(self, outputs, images, exact=False)

    def test_openvino_ir(self):
        xml = os.path.join(self.out.name, "model.xml")
        save_openvino(self.path, xml, ExportedModel(self.path).metadata)
        exported = ExportedModel(xml)
        self.assertEqual(exported.runtime, "openvino")
        self.assertEqual(exported.metadata["class_names"][0], "circle")
        check_against_the_reference(self, exported(images=self.other.numpy()), self.other, False)

    def test_runs_without_detectron2_or_pytorch(self):
        self.assertEqual(run_without_detectron2(self, self.path), "RGB (2, 100, 4)")

    def test_deploy_predictor_equals_the_model(self):
        # an image of another size and aspect: resized as the model's test resize, padded with
        # the mean, detections in its pixels as Detectron2's model gives them
        with tempfile.TemporaryDirectory() as work:
            generate_shapes_dataset(work, "val", num_images=1, seed=7, image_size=(112, 160))
            image = cv2.imread(os.path.join(work, "val", "000001.jpg"))
        predictor = DeployPredictor(self.path)
        result = predictor(image)
        x, scale = predictor.preprocess(image)
        self.assertEqual(x.shape, (1, 3, 96, 128))  # 90 x 128, padded to multiples of 32
        model = build_model(setup_cfg(CONFIG, trained_opts())).eval()
        DetectionCheckpointer(model).load(os.path.join(_tmp.name, "model.pth"))
        resized = torch.from_numpy(x[0, :, :90, :128].copy())
        with torch.no_grad():
            (out,) = model([{"image": resized, "height": 112, "width": 160}])
        expected = out["instances"]
        self.assertGreater(len(expected), 0)
        self.assertEqual(len(result["scores"]), len(expected))
        np.testing.assert_array_equal(result["classes"], expected.pred_classes.numpy())
        np.testing.assert_allclose(result["scores"], expected.scores.numpy(), atol=1e-5)
        np.testing.assert_allclose(
            result["boxes"], expected.pred_boxes.tensor.numpy(), atol=TOLERANCE
        )

    def test_int8_and_the_format_benchmark(self):
        # the benchmark's formats on the two images: the same inputs for every format, AP from
        # pycocotools; INT8 written (calibrated on the images) with quantized convolutions
        with open(_json) as f:
            images = json.load(f)["images"]
        folder = os.path.join(_tmp.name, "imgs")
        dataset = [
            {"file_name": os.path.join(folder, d["file_name"]), "image_id": d["id"]} for d in images
        ]
        model = build_model(setup_cfg(CONFIG, trained_opts())).eval()
        DetectionCheckpointer(model).load(os.path.join(_tmp.name, "model.pth"))
        with tempfile.TemporaryDirectory() as work:
            onnx_path = shutil.copy(self.path, work)
            formats = ("pytorch", "onnxruntime", "onnxruntime int8", "openvino")
            report = run_format_benchmark(
                model, onnx_path, dataset, _json, [d["file_name"] for d in dataset], formats,
                threads=(1,), warmup=0, repeats=2,
            )  # fmt: skip
            int8 = onnx.load(os.path.join(work, "model_int8.onnx"))
            picture = plot_formats(report, os.path.join(work, "formats.png"))
            self.assertGreater(os.path.getsize(picture), 10000)
        ops = {n.op_type for n in int8.graph.node}
        self.assertTrue({"QuantizeLinear", "DequantizeLinear"} <= ops)
        metadata = {p.key: p.value for p in int8.metadata_props}
        self.assertEqual(json.loads(metadata["centernet_d2"]), ExportedModel(self.path).metadata)
        results = report["formats"]
        self.assertEqual(list(results), list(formats))
        # the benchmark's AP: 100 for the ground truth itself (the untrained model's is ~0)
        with open(_json) as f:
            gt = json.load(f)
        categories = sorted(c["id"] for c in gt["categories"])
        perfect = [
            {
                "boxes": np.array(
                    [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in anns)]
                ),
                "scores": np.ones(len(anns)),
                "classes": np.array([categories.index(a["category_id"]) for a in anns]),
            }
            for anns in (
                [a for a in gt["annotations"] if a["image_id"] == d["image_id"]] for d in dataset
            )
        ]
        ids = [d["image_id"] for d in dataset]
        with contextlib.redirect_stdout(io.StringIO()):
            self.assertAlmostEqual(_coco_ap(perfect, ids, _json), 100.0, places=3)
        for name in ("onnxruntime", "openvino"):  # float32 runtimes: the same AP
            self.assertAlmostEqual(results[name]["ap"], results["pytorch"]["ap"], delta=0.1)
        for r in results.values():
            self.assertEqual(r["latency_ms"]["1"]["n"], 2)
        table = format_table(report).splitlines()
        self.assertEqual(len(table), 2 + len(formats))
        self.assertTrue(table[3].startswith("| onnxruntime | "))

    def test_readme_deploy_snippet_runs_as_written(self):
        with open(os.path.join(ROOT, "README.md")) as f:
            (snippet,) = re.findall(
                r"<!-- deploy-snippet -->\s*```python\n(.*?)```", f.read(), re.S
            )
        with tempfile.TemporaryDirectory() as work:
            os.makedirs(os.path.join(work, "output", "export"))
            shutil.copy(self.path, os.path.join(work, "output", "export", "model.onnx"))
            image_dir = os.path.join(work, "datasets", "shapes")
            generate_shapes_dataset(image_dir, "val", num_images=1, seed=7, image_size=(112, 160))
            expected = DeployPredictor(self.path)(
                cv2.imread(os.path.join(image_dir, "val", "000001.jpg"))
            )
            namespace, cwd = {}, os.getcwd()
            try:
                os.chdir(work)
                with contextlib.redirect_stdout(io.StringIO()):
                    exec(compile(snippet, "README.md", "exec"), namespace)
            finally:
                os.chdir(cwd)
        self.assertGreater(len(expected["scores"]), 0)
        for key in ("boxes", "scores", "classes"):
            np.testing.assert_array_equal(namespace["result"][key], expected[key])

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
                boxes, scores, classes = ExportAdapter(model)(image)
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


@NEEDS_ONNX
class TestMultiLevelONNX(unittest.TestCase):
    """The multi-level CenterNet with its class-wise NMS inside the graph, on images with more
    detections above the threshold than the kept count."""

    KEPT = 8

    def test_nms_in_the_graph_equals_the_model_inference(self):
        torch.manual_seed(0)
        opts = OPTS + ["TEST.DETECTIONS_PER_IMAGE", str(self.KEPT)] + tiny_backbone_opts(5)
        model = build_model(setup_cfg(MULTILEVEL_CONFIG, opts)).eval()
        # scores about the threshold (sigmoid(-3) = 0.047), boxes of about 4 cells
        torch.nn.init.constant_(model.head.branches["heatmap"][-1].bias, -3.0)
        torch.nn.init.constant_(model.head.branches["box"][-1].bias, 2.0)
        model.test_score_thresh = 0.05
        images = torch.stack([load_image(p, (SIZE, SIZE)) for p in image_paths()])
        with torch.no_grad():
            results = model([{"image": x, "height": SIZE, "width": SIZE} for x in images])
            candidates = model.decode(model.run_network(*model.normalize_inputs(images)))[1]
        # more candidates above the threshold than kept: the NMS and the cut decide
        self.assertTrue(((candidates >= model.test_score_thresh).sum(dim=1) > 3 * self.KEPT).all())
        with tempfile.TemporaryDirectory() as out:
            # at a fixed size: a dynamic one triples the time of torch.export here (it is
            # checked for the single-level model above, and for every config by
            # tools/export_configs.py)
            path, diffs = export_and_check(
                model, images[:1], out, "onnx", images, dynamic_size=False
            )
            self.assertEqual(diffs["classes"], 0)
            self.assertLessEqual(max(diffs["boxes"], diffs["scores"]), TOLERANCE)
            for runtime in ("onnxruntime", "openvino"):
                outputs = ExportedModel(path, runtime)(images=images.numpy())
                self.assertEqual(outputs["boxes"].shape, (2, self.KEPT, 4))
                for i, r in enumerate(results):
                    expected = r["instances"]
                    self.assertEqual(len(expected), self.KEPT)
                    np.testing.assert_allclose(
                        outputs["boxes"][i], expected.pred_boxes.tensor.numpy(), atol=TOLERANCE
                    )
                    np.testing.assert_allclose(
                        outputs["scores"][i], expected.scores.numpy(), atol=1e-5
                    )
                    np.testing.assert_array_equal(
                        outputs["classes"][i], expected.pred_classes.numpy()
                    )


if __name__ == "__main__":
    unittest.main()
