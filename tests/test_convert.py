"""centernet_d2.convert and tools/convert_torchvision_weights.py: torchvision ImageNet weights
(random here, nothing is downloaded) in our backbones give torchvision's features."""

import contextlib
import io
import os
import pickle
import tempfile
import unittest

import torch
import torchvision
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from torch import nn

from centernet_d2.convert import (
    checkpoint_key_report,
    convert_torchvision_file,
    convert_torchvision_state_dict,
    module_prefixes,
    save_detectron2_checkpoint,
)
from centernet_d2.engine.defaults import setup_cfg
from tests.common import CONFIG, CONFIG_DIR, R18_CONFIG, load_tool

R18_DECONV = R18_CONFIG
R50_FPN = os.path.join(CONFIG_DIR, "COCO-Detection", "centernet_R_50_FPN_140e.yaml")
MOBILENET_FPN = CONFIG
# module prefixes of each config's model that an ImageNet checkpoint does not cover
DECONV_NEW = ["backbone.stage1", "backbone.stage2", "backbone.stage3", "head.branches"]
FPN_NEW = [f"backbone.fpn_lateral{i}" for i in (2, 3, 4, 5)] + ["backbone.fpn_output2"]
FPN_NEW += ["head.branches"]
TOLERANCE = 1e-5


def random_torchvision(name: str, seed: int = 0) -> nn.Module:
    """torchvision.models.<name> with random weights and random BatchNorm statistics (the default
    ones, mean 0 and variance 1, would hide a misplaced BatchNorm), in eval mode."""
    torch.manual_seed(seed)
    model = getattr(torchvision.models, name)(weights=None)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            nn.init.uniform_(m.weight, 0.5, 1.5)
            nn.init.uniform_(m.bias, -0.2, 0.2)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def read_checkpoint(path):
    if path.endswith(".pkl"):
        with open(path, "rb") as f:
            return pickle.load(f)
    return torch.load(path, map_location="cpu")


def torchvision_resnet_stages(model: nn.Module, x: torch.Tensor):
    """Outputs of layer1..layer4 of a torchvision ResNet: Detectron2's res2..res5."""
    x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
    outputs = {}
    for i in (1, 2, 3, 4):
        x = getattr(model, f"layer{i}")(x)
        outputs[f"res{i + 1}"] = x
    return outputs


class ConvertCase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def convert(self, tv_model, name, ext):
        src = os.path.join(self.tmp.name, name + ".pth")
        dst = os.path.join(self.tmp.name, name + ext)
        torch.save(tv_model.state_dict(), src)
        return convert_torchvision_file(src, dst), dst

    def load_into_centernet(self, config, opts, path):
        """A CenterNet of ``config`` with ``path`` loaded by DetectionCheckpointer, and the key
        report of the checkpoint against it."""
        cfg = setup_cfg(config, list(opts) + ["MODEL.DEVICE", "cpu"])
        model = build_model(cfg).eval()
        DetectionCheckpointer(model).load(path)
        return model, checkpoint_key_report(model.state_dict(), read_checkpoint(path)["model"])

    def assertBackboneCovered(self, report, new_prefixes):
        self.assertEqual([k for k in report.missing if k.startswith("backbone.bottom_up.")], [])
        self.assertEqual(report.unexpected, [])
        self.assertEqual(report.mismatched, [])
        self.assertEqual(sorted(module_prefixes(report.missing)), sorted(new_prefixes))

    def assertFeaturesEqual(self, actual, expected):
        self.assertEqual(actual.shape, expected.shape)
        scale = expected.abs().max().item()
        self.assertGreater(scale, 0)
        # relative to the largest value: features grow through random layers
        self.assertLess((actual - expected).abs().max().item(), TOLERANCE * max(scale, 1.0))


class TestResNet(ConvertCase):
    def test_names_follow_detectron2(self):
        state = random_torchvision("resnet18").state_dict()
        converted = convert_torchvision_state_dict(state)
        pairs = {
            "conv1.weight": "stem.conv1.weight",
            "bn1.running_var": "stem.conv1.norm.running_var",
            "layer1.0.conv2.weight": "res2.0.conv2.weight",
            "layer2.0.downsample.0.weight": "res3.0.shortcut.weight",
            "layer2.0.downsample.1.bias": "res3.0.shortcut.norm.bias",
            "layer4.1.bn2.weight": "res5.1.conv2.norm.weight",
        }
        for tv_key, d2_key in pairs.items():
            self.assertIs(converted.model[d2_key], state[tv_key])
        self.assertEqual(converted.dropped, ["fc.weight", "fc.bias"])
        self.assertEqual(len(converted.model), len(state) - 2)

    def test_resnet18_pkl_in_deconv_backbone_gives_layer4(self):
        tv = random_torchvision("resnet18")
        conversion, path = self.convert(tv, "r18", ".pkl")
        self.assertEqual(conversion.family, "resnet")
        self.assertEqual(conversion.config_opts[:2], ["MODEL.RESNETS.DEPTH", 18])
        raw = read_checkpoint(path)
        self.assertEqual(raw["__author__"], "torchvision")
        self.assertTrue(raw["matching_heuristics"])
        model, report = self.load_into_centernet(R18_DECONV, conversion.config_opts, path)
        self.assertBackboneCovered(report, DECONV_NEW)
        x = torch.randn(2, 3, 64, 96)
        with torch.no_grad():
            res5 = model.backbone.bottom_up(x)["res5"]
            expected = torchvision_resnet_stages(tv, x)["res5"]
        self.assertFeaturesEqual(res5, expected)

    def test_resnet50_and_resnext50_pth_in_fpn_backbone_give_every_stage(self):
        for name, groups, width in [("resnet50", 1, 64), ("resnext50_32x4d", 32, 4)]:
            with self.subTest(name):
                tv = random_torchvision(name)
                conversion, path = self.convert(tv, name, ".pth")
                opts = conversion.config_opts
                self.assertEqual(opts[opts.index("MODEL.RESNETS.NUM_GROUPS") + 1], groups)
                self.assertEqual(opts[opts.index("MODEL.RESNETS.WIDTH_PER_GROUP") + 1], width)
                model, report = self.load_into_centernet(R50_FPN, opts, path)
                self.assertBackboneCovered(report, FPN_NEW)
                x = torch.randn(1, 3, 64, 64)
                with torch.no_grad():
                    features = model.backbone.bottom_up(x)
                    expected = torchvision_resnet_stages(tv, x)
                for k in ("res2", "res3", "res4", "res5"):
                    self.assertFeaturesEqual(features[k], expected[k])

    def test_config_opts_of_other_depths(self):
        for name, depth in [("resnet34", 34), ("resnet101", 101)]:
            with self.subTest(name):
                state = getattr(torchvision.models, name)(weights=None).state_dict()
                opts = convert_torchvision_state_dict(state).config_opts
                self.assertEqual(opts[:2], ["MODEL.RESNETS.DEPTH", depth])

    def test_tool_reports_new_prefixes_and_rejects_another_depth(self):
        tool = load_tool("convert_torchvision_weights")
        src = os.path.join(self.tmp.name, "tool_r18.pth")
        torch.save(random_torchvision("resnet18").state_dict(), src)
        dst = os.path.join(self.tmp.name, "tool_r18.pkl")
        args = tool.get_parser().parse_args([src, dst, "--config-file", R18_DECONV])
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            _, report = tool.main(args)
        self.assertIn(
            "new in the model (not in the checkpoint): " + ", ".join(DECONV_NEW), out.getvalue()
        )
        self.assertEqual(report.unexpected, [])
        args = tool.get_parser().parse_args(
            [src, dst, "--config-file", R18_DECONV, "--opts", "MODEL.RESNETS.DEPTH", "34"]
        )
        with contextlib.redirect_stdout(io.StringIO()), self.assertRaises(SystemExit):
            tool.main(args)


class TestMobileNet(ConvertCase):
    def test_mobilenets_in_fpn_backbone_give_features(self):
        for name in ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small"):
            with self.subTest(name):
                tv = random_torchvision(name)
                conversion, path = self.convert(tv, name, ".pkl")
                self.assertEqual(conversion.config_opts, ["MODEL.MOBILENET.NAME", name])
                self.assertTrue(conversion.dropped)
                self.assertTrue(all(k.startswith("classifier.") for k in conversion.dropped))
                model, report = self.load_into_centernet(
                    MOBILENET_FPN, conversion.config_opts, path
                )
                self.assertBackboneCovered(report, FPN_NEW)
                x = torch.randn(2, 3, 64, 64)
                with torch.no_grad():
                    m5 = model.backbone.bottom_up(x)["m5"]
                    expected = tv.features(x)
                self.assertFeaturesEqual(m5, expected)


class TestErrors(unittest.TestCase):
    def test_unknown_state_dict(self):
        with self.assertRaisesRegex(ValueError, "not a torchvision ResNet"):
            convert_torchvision_state_dict({"encoder.weight": torch.zeros(1)})

    def test_unknown_resnet_key(self):
        state = {"layer1.0.conv1.weight": torch.zeros(1), "layer1.0.se.weight": torch.zeros(1)}
        with self.assertRaisesRegex(ValueError, "layer1.0.se.weight"):
            convert_torchvision_state_dict(state)

    def test_output_extension(self):
        with self.assertRaisesRegex(ValueError, ".pkl"):
            save_detectron2_checkpoint({}, "weights.bin")

    def test_missing_input(self):
        with self.assertRaises(FileNotFoundError):
            convert_torchvision_file("no/such/file.pth", "out.pkl")


if __name__ == "__main__":
    unittest.main()
