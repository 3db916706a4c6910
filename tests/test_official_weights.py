"""The authors' published CenterNet, CenterTrack and CenterNet2 networks, converted: outputs equal
to those the authors' code computed (the shared parity fixtures), the converter's errors, and
fine-tuning from a converted model."""

import contextlib
import io
import logging
import os
import tempfile
import unittest

import numpy as np
import torch
from detectron2.data.datasets.builtin_meta import KEYPOINT_CONNECTION_RULES
from detectron2.modeling import build_model
from detectron2.structures import Boxes, ImageList, pairwise_iou

from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.export import ExportedModel, export_and_check, export_model
from centernet_d2.modeling.decode import decode_predictions
from centernet_d2.official_weights import (
    PUBLISHED_MODELS,
    check_against_model,
    convert_official_state_dict,
    identify,
    save_converted,
)
from centernet_d2.utils.cli import run_tool
from tests.common import CONFIG_DIR, TINY, load_tool, model_cfg, official_fixture

try:
    import onnxruntime
    import onnxscript  # noqa: F401
except ImportError:
    onnxruntime = None

convert_tool = load_tool("convert_official_weights")
train_net = load_tool("train_net")

# A head output matches when max |ours - authors'| <= REL_TOL x (max - min of the authors'),
# float32 on both sides (the DCN kernels and summation orders differ in the last bits).
REL_TOL = 1e-4
# Decoded detections: boxes and keypoints within this many output cells, scores within SCORE_TOL;
# detections whose score ties the 100th within SCORE_TOL may differ at the top-100 boundary.
CELL_TOL = 1e-3
SCORE_TOL = 1e-5
# the authors' head names -> ours (written out here, not taken from the converter)
HEADS = dict(hm="heatmap", wh="size", reg="offset", hps="keypoints", tracking="displacement")
HEADS.update(hm_hp="keypoint_heatmap", hp_offset="keypoint_offset")
STRIDE = 4  # the CenterNet / CenterTrack fixtures' output stride
# fixture -> the published model it stands for
FIXTURES = {
    "ctdet_coco_dla_34": "ctdet_coco_dla_2x",
    "multi_pose_dla_34": "multi_pose_dla_3x",
    "ctdet_coco_resdcn_18": "ctdet_coco_resdcn18",
    "coco_tracking_dla_34": "coco_tracking",
    "centernet2_CenterNet-FPN_R50_1x": "CenterNet-FPN_R50_1x",
}


def converted_model(fixture):
    """(model in eval mode with the fixture's converted weights, the fixture's arrays, the
    published model identified from the keys)."""
    state_dict, arrays = official_fixture(fixture)
    published = identify(state_dict)
    conversion = convert_official_state_dict(state_dict)
    model = build_model(model_cfg(os.path.join(CONFIG_DIR, published.config))).eval()
    check_against_model(conversion, model.state_dict())
    model.load_state_dict(conversion.model, strict=True)
    return model, arrays, published


def network_inputs(model, arrays):
    """The fixture's input as the network takes it: CenterNet's and CenterTrack's arrays are
    already normalised; CenterNet2's image goes through the model's pixel normalisation."""
    if "input_image" in arrays:
        names = ("input_image", "input_pre_img", "input_pre_hm")
        return [torch.from_numpy(arrays[n]) for n in names if n in arrays]
    image = torch.from_numpy(arrays["input_image_bgr_0_255"])
    return [((image - model.pixel_mean) / model.pixel_std)[None]]


def authors_output(outputs, name):
    """Our output for the fixture's ``output_<name>``: a head of CenterNet / CenterTrack, or
    CenterNet2's ``cls_p<l>`` / ``reg_p<l>`` (level l of p3..p7)."""
    if name in HEADS:
        return outputs[HEADS[name]]
    kind, level = name.split("_")
    return outputs["heatmap" if kind == "cls" else "box"][int(level[1:]) - 3]


class TestParity(unittest.TestCase):
    """Each fixture: rebuilt weights (SHA-256 checked), converted, loaded with exact names; every
    head output and the decoded detections equal the authors'."""

    @classmethod
    def setUpClass(cls):
        torch.set_num_threads(2)
        cls.models = {}

    def run_fixture(self, fixture):
        if fixture not in self.models:
            model, arrays, published = converted_model(fixture)
            with torch.no_grad():
                outputs = model.run_network(*network_inputs(model, arrays))
            self.models[fixture] = (model, arrays, published, outputs)
        return self.models[fixture]

    def assert_outputs_equal(self, fixture):
        model, arrays, published, outputs = self.run_fixture(fixture)
        self.assertEqual(published.name, FIXTURES[fixture])
        names = [k[len("output_") :] for k in arrays if k.startswith("output_")]
        self.assertGreaterEqual(len(names), 3)
        for name in names:
            with self.subTest(output=name):
                theirs = torch.from_numpy(arrays["output_" + name])
                ours = authors_output(outputs, name)
                self.assertEqual(tuple(ours.shape), tuple(theirs.shape))
                bound = REL_TOL * float(theirs.max() - theirs.min())
                self.assertLessEqual(float((ours - theirs).abs().max()), bound)

    def assert_detections_equal(self, ours, theirs):
        """``ours`` and ``theirs``: (100, 4 + 1 + 1 + 2J) rows box (cells), score, class,
        keypoints (cells). Every row of theirs has one of ours of the same class, box and
        keypoints within CELL_TOL and score within SCORE_TOL, but rows tied with the 100th."""
        boundary = float(theirs[:, 4].min())
        used = torch.zeros(len(ours), dtype=torch.bool)
        unmatched = []
        for row in theirs:
            close = (ours[:, :4] - row[:4]).abs().amax(dim=1) <= CELL_TOL
            close &= (ours[:, 4] - row[4]).abs() <= SCORE_TOL
            close &= ours[:, 5] == row[5]
            if ours.shape[1] > 6:
                close &= (ours[:, 6:] - row[6:]).abs().amax(dim=1) <= CELL_TOL
            close &= ~used
            if bool(close.any()):
                used[int(close.nonzero()[0])] = True
            else:
                unmatched.append(float(row[4]))
        self.assertTrue(all(s - boundary <= SCORE_TOL for s in unmatched), unmatched)
        self.assertLess(len(unmatched), 5)

    def test_centernet_dla34(self):
        self.assert_outputs_equal("ctdet_coco_dla_34")
        self.assert_ctdet_decoding("ctdet_coco_dla_34")

    def test_centernet_resdcn18(self):
        self.assert_outputs_equal("ctdet_coco_resdcn_18")
        self.assert_ctdet_decoding("ctdet_coco_resdcn_18")

    def assert_ctdet_decoding(self, fixture):
        model, arrays, _, outputs = self.run_fixture(fixture)
        boxes, scores, classes = decode_predictions(outputs, model.stride, 100, model.box_head)
        self.assertEqual(model.stride, STRIDE)
        ours = torch.cat([boxes[0] / STRIDE, scores[0, :, None], classes[0, :, None].float()], 1)
        # the authors' rows: x1 y1 x2 y2 score class, in output cells
        self.assert_detections_equal(ours, torch.from_numpy(arrays["decoded_ctdet"][0]))

    def test_centernet_multi_pose_dla34(self):
        self.assert_outputs_equal("multi_pose_dla_34")
        model, arrays, _, outputs = self.run_fixture("multi_pose_dla_34")
        boxes, scores, classes, keypoints = model.decode(outputs)
        ours = torch.cat(
            [
                boxes[0] / STRIDE,
                scores[0, :, None],
                classes[0, :, None].float(),
                keypoints[0, :, :, :2].flatten(1) / STRIDE,
            ],
            dim=1,
        )
        # the authors' rows: x1 y1 x2 y2 score kx1 ky1 ... kx17 ky17 class
        theirs = torch.from_numpy(arrays["decoded_multi_pose"][0])
        theirs = torch.cat([theirs[:, :5], theirs[:, -1:], theirs[:, 5:-1]], dim=1)
        self.assert_detections_equal(ours, theirs)

    def test_centertrack_dla34(self):
        # pre_img and pre_hm as the fixture gives them; "tracking" is the displacement branch
        self.assert_outputs_equal("coco_tracking_dla_34")
        model, arrays, _, outputs = self.run_fixture("coco_tracking_dla_34")
        boxes, scores, classes, displacements = model.decode(outputs)
        # the displacement at each detection's peak, the authors' tracking output gathered there
        *_, positions = decode_predictions(outputs, STRIDE, 100, "size_offset", True)
        tracking = torch.from_numpy(arrays["output_tracking"])
        expected = tracking.flatten(2)[0][:, positions[0]].T * STRIDE  # (100, 2) pixels
        bound = REL_TOL * float(tracking.max() - tracking.min()) * STRIDE
        self.assertLessEqual(float((displacements[0] - expected).abs().max()), bound)

    def test_centernet2_one_stage(self):
        self.assert_outputs_equal("centernet2_CenterNet-FPN_R50_1x")
        model, arrays, _, outputs = self.run_fixture("centernet2_CenterNet-FPN_R50_1x")
        image = network_inputs(model, arrays)[0]
        ours = model.inference(ImageList(image, [tuple(image.shape[-2:])]), outputs)[0]
        theirs_boxes = Boxes(torch.from_numpy(arrays["detections_boxes"]))
        theirs_scores = torch.from_numpy(arrays["detections_scores"])
        theirs_classes = torch.from_numpy(arrays["detections_classes"])
        self.assertEqual(len(ours), len(theirs_scores))
        # sets matched by box (IoU) and class; misses only where scores tie the 100th
        iou = pairwise_iou(ours.pred_boxes, theirs_boxes)
        iou = iou * (ours.pred_classes[:, None] == theirs_classes[None])
        matched = iou.max(dim=0).values >= 0.999
        boundary = float(theirs_scores.min())
        self.assertTrue(bool((theirs_scores[~matched] - boundary <= SCORE_TOL).all()))
        best = iou.argmax(dim=0)[matched]
        torch.testing.assert_close(
            ours.scores[best], theirs_scores[matched], atol=SCORE_TOL, rtol=0
        )
        self.assertGreaterEqual(int(matched.sum()), 95)

    def test_config_normalisation_is_the_authors(self):
        # CenterNet and CenterTrack feed (bgr / 255 - mean) / std with these BGR constants
        mean = [0.40789654, 0.44719302, 0.47026115]
        std = [0.28863828, 0.27408164, 0.27809835]
        for published in PUBLISHED_MODELS.values():
            if published.family == "centernet2":
                continue
            with self.subTest(config=published.config):
                cfg = model_cfg(os.path.join(CONFIG_DIR, published.config))
                self.assertEqual(cfg.INPUT.FORMAT, "BGR")
                np.testing.assert_allclose(cfg.MODEL.PIXEL_MEAN, np.array(mean) * 255, atol=1e-3)
                np.testing.assert_allclose(cfg.MODEL.PIXEL_STD, np.array(std) * 255, atol=1e-3)


def raw_inputs(model, arrays):
    """The fixture's input as an export takes it: images (and CenterTrack's previous frame) in
    0-255, un-normalised; the previous-frame heatmap as it is."""
    inputs = network_inputs(model, arrays)
    if "input_image" not in arrays:
        return [torch.from_numpy(arrays["input_image_bgr_0_255"])[None]]
    images = [x * model.pixel_std + model.pixel_mean for x in inputs[:2]]
    return images + inputs[2:]


@unittest.skipIf(onnxruntime is None, "onnx, onnxruntime, onnxscript not installed")
class TestExportParity(unittest.TestCase):
    """The converted published networks through exported files: DCN CenterNet in ONNX
    (onnxruntime's DeformConv) against the authors' decoded detections, CenterTrack's .pt2
    against the model it was exported from (whose outputs equal the authors', TestParity)."""

    def test_resdcn18_onnx_gives_the_authors_detections(self):
        model, arrays, _ = converted_model("ctdet_coco_resdcn_18")
        images = raw_inputs(model, arrays)[0]
        with tempfile.TemporaryDirectory() as out:
            path, _ = export_model(model, images, out, "onnx", dynamic_size=False)
            outputs = ExportedModel(path)(images=images.numpy())
        ours = np.concatenate(
            [
                outputs["boxes"][0] / STRIDE,
                outputs["scores"][0, :, None],
                outputs["classes"][0, :, None],
            ],
            1,
        )
        # the authors' rows: x1 y1 x2 y2 score class, in output cells; the export clips boxes
        theirs = arrays["decoded_ctdet"][0].copy()
        side = images.shape[-1] / STRIDE
        theirs[:, :4] = theirs[:, :4].clip(0, side)
        TestParity.assert_detections_equal(self, torch.from_numpy(ours), torch.from_numpy(theirs))

    def test_centertrack_pt2_equals_the_model(self):
        model, arrays, _ = converted_model("coco_tracking_dla_34")
        inputs = raw_inputs(model, arrays)
        with tempfile.TemporaryDirectory() as out:
            path, diffs = export_and_check(model, inputs, out, "pt2", dynamic_size=False)
        self.assertEqual(diffs.pop("classes"), 0)
        self.assertLessEqual(max(diffs.values()), 1e-3, diffs)


class TestLayouts(unittest.TestCase):
    """The published files without a fixture of their own, made from the fixtures' layouts."""

    def test_mot17_half_is_coco_tracking_with_one_class_and_amodal_boxes(self):
        state_dict, _ = official_fixture("coco_tracking_dla_34")
        g = torch.Generator().manual_seed(0)
        state_dict["hm.2.weight"] = torch.randn(1, 256, 1, 1, generator=g)
        state_dict["hm.2.bias"] = torch.randn(1, generator=g)
        amodal = {"0.weight": (256, 64, 3, 3), "0.bias": (256,), "2.weight": (4, 256, 1, 1)}
        amodal["2.bias"] = (4,)
        for key, shape in amodal.items():
            state_dict["ltrb_amodal." + key] = torch.randn(*shape, generator=g)
        published = identify(state_dict)
        self.assertEqual(published.name, "mot17_half")
        conversion = convert_official_state_dict(state_dict)
        model = build_model(model_cfg(os.path.join(CONFIG_DIR, published.config)))
        check_against_model(conversion, model.state_dict())
        model.load_state_dict(conversion.model, strict=True)
        torch.testing.assert_close(
            model.head.branches["amodal_box"][2].weight, state_dict["ltrb_amodal.2.weight"]
        )
        self.assertTrue(model.amodal_box)

    def test_dla_classifier_and_unused_projects_left_out(self):
        state_dict, _ = official_fixture("ctdet_coco_dla_34")
        state_dict["base.fc.weight"] = torch.zeros(1000, 512, 1, 1)
        state_dict["base.fc.bias"] = torch.zeros(1000)
        conversion = convert_official_state_dict(state_dict)
        self.assertIn("base.fc.weight", conversion.dropped)
        self.assertIn("base.level3.project.0.weight", conversion.dropped)
        self.assertIn("base.level4.project.1.running_var", conversion.dropped)
        # the depth-1 trees' projections are used: kept
        self.assertIn("backbone.bottom_up.level5.project.0.weight", conversion.model)
        self.assertIn("backbone.bottom_up.level3.tree1.project.0.weight", conversion.model)
        self.assertEqual(len(conversion.dropped), 2 + 2 * 6)
        # each folded DCN bias: running_mean - bias
        key = "dla_up.ida_0.proj_1.conv.bias"
        folded = conversion.model["backbone.dla_up.ida_0.proj_1.norm.running_mean"]
        original = state_dict["dla_up.ida_0.proj_1.actf.0.running_mean"]
        torch.testing.assert_close(folded, original - state_dict[key])
        self.assertEqual(len(conversion.folded), 16)

    def test_keypoint_metadata_saved(self):
        state_dict, _ = official_fixture("multi_pose_dla_34")
        conversion = convert_official_state_dict(state_dict)
        with tempfile.TemporaryDirectory() as tmp:
            path = save_converted(conversion, os.path.join(tmp, "pose.pkl"), num_classes=1)
            checkpoint = SafeCheckpointer(torch.nn.Module())._load_file(path)
        self.assertEqual(checkpoint["class_names"], ["person"])
        self.assertEqual(checkpoint["keypoint_names"][:3], ["nose", "left_eye", "right_eye"])
        self.assertIn(["left_eye", "right_eye"], checkpoint["keypoint_flip_map"])
        # Detectron2's skeleton, which its Visualizer draws
        rules = [list(r) for r in KEYPOINT_CONNECTION_RULES]
        self.assertEqual([list(r) for r in checkpoint["keypoint_connection_rules"]], rules)
        self.assertFalse(checkpoint["matching_heuristics"])


def run_convert(argv):
    """(exit status, stderr) of tools/convert_official_weights.py run in this process."""
    args = convert_tool.get_parser().parse_args(argv)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            run_tool(convert_tool.main, args)
        except SystemExit as e:
            return e.code, err.getvalue()
    return 0, err.getvalue()


class TestConverterTool(unittest.TestCase):
    """The tool on a ResNet-18-DCN file as published ({"epoch", "state_dict"}, "module." keys):
    a checkpoint that loads with exact names, and one error line per broken key."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.state_dict, cls.arrays = official_fixture("ctdet_coco_resdcn_18")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def write(self, name, state_dict):
        path = os.path.join(self.tmp.name, name)
        wrapped = {"module." + k: v for k, v in state_dict.items()}
        torch.save({"epoch": 140, "state_dict": wrapped}, path)
        return path

    def test_converted_file_loads_exactly_and_runs_as_the_authors(self):
        src = self.write("ctdet_coco_resdcn18.pth", self.state_dict)
        dst = os.path.join(self.tmp.name, "ctdet_coco_resdcn18.pkl")
        self.assertEqual(run_convert([src, dst]), (0, ""))
        cfg = model_cfg(os.path.join(CONFIG_DIR, PUBLISHED_MODELS["ctdet_coco_resdcn18"].config))
        model = build_model(cfg).eval()
        checkpointer = SafeCheckpointer(model)
        with self.assertLogs(checkpointer.logger, logging.INFO) as logs:
            checkpointer.load(dst)
        self.assertFalse([r for r in logs.records if r.levelno >= logging.WARNING])
        self.assertEqual(len(model.class_names), 80)
        self.assertEqual(model.class_names[:2], ["person", "bicycle"])
        with torch.no_grad():
            out = model.run_network(torch.from_numpy(self.arrays["input_image"]))
        theirs = torch.from_numpy(self.arrays["output_hm"])
        bound = REL_TOL * float(theirs.max() - theirs.min())
        self.assertLessEqual(float((out["heatmap"] - theirs).abs().max()), bound)

    def assert_one_error(self, state_dict, name, *words):
        src = self.write(name + ".pth", state_dict)
        code, err = run_convert([src, os.path.join(self.tmp.name, name + ".pkl")])
        self.assertEqual(code, 2)
        lines = err.strip().splitlines()
        self.assertEqual(len(lines), 1, err)
        self.assertTrue(lines[0].startswith("error: "), err)
        for word in words:
            self.assertIn(word, lines[0])
        self.assertFalse(os.path.exists(os.path.join(self.tmp.name, name + ".pkl")))

    def test_key_left_over(self):
        extra = dict(self.state_dict, **{"wh.4.weight": torch.zeros(2, 64, 1, 1)})
        self.assert_one_error(extra, "left_over", "wh.4.weight", "no place")
        unknown = dict(self.state_dict, **{"dep.0.weight": torch.zeros(1)})
        self.assert_one_error(unknown, "unknown", "dep.0.weight", "no place")

    def test_key_missing(self):
        missing = {k: v for k, v in self.state_dict.items() if k != "hm.2.bias"}
        self.assert_one_error(missing, "missing", "head.branches.heatmap.2.bias", "missing")

    def test_key_of_another_shape(self):
        wrong = dict(self.state_dict, **{"wh.2.weight": torch.zeros(3, 64, 1, 1)})
        self.assert_one_error(wrong, "shape", "wh.2.weight", "(3, 64, 1, 1)", "(2, 64, 1, 1)")

    def test_not_a_published_layout(self):
        code, err = run_convert([os.path.join(self.tmp.name, "absent.pth"), "out.pkl"])
        self.assertEqual(code, 2)
        self.assertIn("absent.pth", err)
        other = {"conv.weight": torch.zeros(1)}
        self.assert_one_error(other, "other", "not a published")


class TestFineTuning(unittest.TestCase):
    """A converted COCO model fine-tuned on a generated set of 5 classes: the backbone and neck
    load, the 80-class heatmap layer starts fresh, one log line says so."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        state_dict, _ = official_fixture("ctdet_coco_resdcn_18")
        src = os.path.join(cls.tmp.name, "ctdet_coco_resdcn18.pth")
        torch.save({"epoch": 140, "state_dict": state_dict}, src)
        cls.weights = os.path.join(cls.tmp.name, "ctdet_coco_resdcn18.pkl")
        assert run_convert([src, cls.weights])[0] == 0
        cls.config = os.path.join(CONFIG_DIR, PUBLISHED_MODELS["ctdet_coco_resdcn18"].config)
        cls.checkpoint = SafeCheckpointer(torch.nn.Module())._load_file(cls.weights)["model"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_class_layers_start_fresh_with_one_log_line(self):
        model = build_model(model_cfg(self.config, "MODEL.CENTERNET.NUM_CLASSES", "5"))
        checkpointer = SafeCheckpointer(model)
        with self.assertLogs(checkpointer.logger, logging.INFO) as logs:
            checkpointer.load(self.weights)
        self.assertFalse([r for r in logs.records if r.levelno >= logging.WARNING])
        lines = [r.getMessage() for r in logs.records if "re-initialised" in r.getMessage()]
        self.assertEqual(len(lines), 1)
        self.assertIn("head.branches.heatmap.2.weight (80, 64, 1, 1) -> (5, 64, 1, 1)", lines[0])
        state = model.state_dict()
        for key in ("backbone.bottom_up.res5.1.conv2.weight", "backbone.stage3.up.weight"):
            np.testing.assert_array_equal(state[key].numpy(), self.checkpoint[key])
        np.testing.assert_array_equal(
            state["head.branches.size.2.weight"].numpy(),
            self.checkpoint["head.branches.size.2.weight"],
        )
        # the fresh heatmap layer: the prior bias -log((1 - 0.1) / 0.1)
        np.testing.assert_allclose(
            state["head.branches.heatmap.2.bias"].numpy(), -np.log(9), atol=1e-6
        )
        self.assertEqual(model.class_names, [])  # the COCO names are not the 5 classes'

    def test_train_net_fine_tunes_on_a_generated_set(self):
        out = os.path.join(self.tmp.name, "finetune")
        opts = TINY + ["SOLVER.MAX_ITER", "2", "SOLVER.WARMUP_ITERS", "0", "OUTPUT_DIR", out]
        opts += ["MODEL.WEIGHTS", self.weights, "MODEL.CENTERNET.NUM_CLASSES", "5"]
        opts += ["DATASETS.TRAIN", '("shapes_train",)', "DATASETS.TEST", "()"]
        args = train_net.argument_parser().parse_args(["--config-file", self.config] + opts)
        train_net.main(args)
        log = open(os.path.join(out, "log.txt")).read()
        self.assertIn("re-initialised 2 tensor(s)", log)
        final = torch.load(os.path.join(out, "model_final.pth"), weights_only=True)
        self.assertEqual(final["class_names"], ["circle", "triangle", "rectangle", "star", "cross"])
        self.assertEqual(
            tuple(final["model"]["head.branches.heatmap.2.weight"].shape), (5, 64, 1, 1)
        )


def parity_table() -> str:
    """A Markdown table of each fixture's largest difference to the authors' outputs (for the
    docs: ``python -m tests.test_official_weights --table``)."""
    rows = ["| fixture | published model | output | max abs difference | its range | ratio |"]
    rows.append("|---|---|---|---|---|---|")
    for fixture, name in FIXTURES.items():
        model, arrays, _ = converted_model(fixture)
        with torch.no_grad():
            outputs = model.run_network(*network_inputs(model, arrays))
        for key in [k for k in arrays if k.startswith("output_")]:
            theirs = torch.from_numpy(arrays[key])
            diff = float((authors_output(outputs, key[len("output_") :]) - theirs).abs().max())
            span = float(theirs.max() - theirs.min())
            rows.append(
                f"| {fixture} | {name} | {key[len('output_'):]} | {diff:.2e} | {span:.2f} | "
                f"{diff / span:.1e} |"
            )
    return "\n".join(rows)


if __name__ == "__main__":
    import sys

    if sys.argv[1:] == ["--table"]:
        torch.set_num_threads(2)
        print(parity_table())
    else:
        unittest.main()
