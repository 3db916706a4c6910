"""DLA-34 + DLA-up / IDA-up (build_dla34_backbone): shapes, parameter counts, names, norms."""

import os
import tempfile
import unittest

import torch
from detectron2.layers import FrozenBatchNorm2d
from detectron2.modeling import BACKBONE_REGISTRY, build_backbone
from detectron2.structures import ImageList
from torch import nn

from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.layers import ModulatedDeformConv2d
from centernet_d2.modeling.backbone import DLA, DLAUpsampler
from tests.modeling.test_backbones import make_cfg

# Odd sizes; the batch is padded to 128 x 96 (multiples of 32).
IMAGE_SIZES = [(67, 93), (128, 96)]
PADDED_SIZE = (128, 96)
PLAIN = ["MODEL.DLA.DEFORMABLE", False]

# Parameters (conv weights; norm weight + bias, 2 per channel) of the DLA-34 bottom-up, by hand
# from the architecture (BasicBlock(i, o): 9io + 9oo + 4o; Root(i, o): io + 2o; project(i, o):
# io + 2o; root inputs: 2 * out, + in for level roots, + out per enclosing depth-2 tree):
BOTTOM_UP_PARAMS = {
    "base_layer": 3 * 16 * 49 + 32,  # 7x7 conv, 3 -> 16
    "level0": 16 * 16 * 9 + 32,
    "level1": 16 * 32 * 9 + 64,
    # BasicBlock(32, 64) + BasicBlock(64, 64) + Root(128, 64) + project(32, 64)
    "level2": 55552 + 73984 + 8320 + 2176,
    # tree1: BB(64, 128) + BB(128, 128) + Root(256, 128) + project(64, 128);
    # tree2: 2 BB(128, 128) + Root(128 * 2 + 64 + 128 = 448, 128)
    "level3": (221696 + 295424 + 33024 + 8448) + (2 * 295424 + 57600),
    # tree1: BB(128, 256) + BB(256, 256) + Root(512, 256) + project(128, 256);
    # tree2: 2 BB(256, 256) + Root(256 * 2 + 128 + 256 = 896, 256)
    "level4": (885760 + 1180672 + 131584 + 33280) + (2 * 1180672 + 229888),
    # BB(256, 512) + BB(512, 512) + Root(512 * 2 + 256 = 1280, 512) + project(256, 512)
    "level5": 3540992 + 4720640 + 656384 + 132096,
}
# = 15,229,104. The ImageNet classifier adds a 1x1 conv 512 -> 1000 with bias (513,000):
# 15,742,104, the 15.7M usually quoted for DLA-34 (e.g. timm). The authors' code also builds a
# never-used 1x1 projection in level3 and level4 (64 * 128 + 256 + 128 * 256 + 512 = 41,728).
CLASSIFIER_PARAMS = 512 * 1000 + 1000


def ida_params(out, in_channels, up_factors, deformable):
    """IDAUp by hand: per input i >= 1, proj 3x3 (C_i -> out) + node 3x3 (out -> out), each with
    norm (2 * out) and, if deformable, an offset/mask conv of 27 outputs with bias; and a
    depthwise (2f)x(2f) transposed conv (out * 4f^2)."""
    total = 0
    for c, f in zip(in_channels[1:], up_factors[1:]):
        for c_in in (c, out):
            total += 9 * c_in * out + 2 * out + (27 * (9 * c_in + 1) if deformable else 0)
        total += out * (2 * f) ** 2
    return total


def up_path_params(deformable):
    """DLA-up (three IDA steps from coarse to fine) + the last IDA-up, DLA-34 channels."""
    return (
        ida_params(256, [256, 512], [1, 2], deformable)
        + ida_params(128, [128, 256, 256], [1, 2, 2], deformable)
        + ida_params(64, [64, 128, 128, 128], [1, 2, 2, 2], deformable)
        + ida_params(64, [64, 128, 256], [1, 2, 4], deformable)
    )


def num_params(module):
    return sum(p.numel() for p in module.parameters())


class TestDLA34(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_registered(self):
        self.assertIn("build_dla34_backbone", BACKBONE_REGISTRY)

    def test_stride4_64_channels_on_odd_sizes(self):
        for deformable in (True, False):
            with self.subTest(deformable=deformable):
                opts = ["MODEL.DLA.DEFORMABLE", deformable]
                backbone = build_backbone(make_cfg("build_dla34_backbone", opts)).eval()
                self.assertIsInstance(backbone, DLAUpsampler)
                self.assertIsInstance(backbone.ida_up.node_1, nn.Module)
                self.assertEqual(
                    isinstance(backbone.ida_up.node_1, ModulatedDeformConv2d), deformable
                )
                self.assertEqual(backbone.size_divisibility, 32)
                shapes = backbone.output_shape()
                self.assertEqual(
                    {k: (s.channels, s.stride) for k, s in shapes.items()}, {"p2": (64, 4)}
                )
                images = ImageList.from_tensors(
                    [torch.rand(3, h, w) for h, w in IMAGE_SIZES],
                    size_divisibility=backbone.size_divisibility,
                )
                self.assertEqual(tuple(images.tensor.shape[-2:]), PADDED_SIZE)
                with torch.no_grad():
                    outputs = backbone(images.tensor)
                self.assertEqual(tuple(outputs["p2"].shape), (2, 64, 32, 24))
                self.assertTrue(torch.isfinite(outputs["p2"]).all())

    def test_parameter_counts(self):
        bottom_up = DLA(out_features=["level5"])
        expected = sum(BOTTOM_UP_PARAMS.values())
        self.assertEqual(expected, 15_229_104)
        self.assertEqual(num_params(bottom_up), expected)
        for name, count in BOTTOM_UP_PARAMS.items():
            self.assertEqual(num_params(getattr(bottom_up, name)), count, name)
        self.assertEqual(expected + CLASSIFIER_PARAMS, 15_742_104)  # DLA-34 with classifier

        for deformable in (True, False):
            with self.subTest(deformable=deformable):
                opts = ["MODEL.DLA.DEFORMABLE", deformable]
                backbone = build_backbone(make_cfg("build_dla34_backbone", opts))
                up = num_params(backbone.dla_up) + num_params(backbone.ida_up)
                self.assertEqual(up, up_path_params(deformable))
        self.assertEqual(up_path_params(False), 3_300_608)
        self.assertEqual(up_path_params(True), 3_938_672)

    def test_parameter_names_are_the_dla_authors(self):
        bottom_up = DLA(out_features=["level5"])
        shapes = {k: tuple(v.shape) for k, v in bottom_up.state_dict().items()}
        expected = {
            "base_layer.0.weight": (16, 3, 7, 7),
            "base_layer.1.running_var": (16,),
            "level1.0.weight": (32, 16, 3, 3),
            "level2.tree1.conv1.weight": (64, 32, 3, 3),
            "level2.tree2.bn2.weight": (64,),
            "level2.project.0.weight": (64, 32, 1, 1),
            "level2.root.conv.weight": (64, 128, 1, 1),
            "level3.tree1.project.1.bias": (128,),
            "level3.tree1.root.conv.weight": (128, 256, 1, 1),
            "level3.tree2.root.conv.weight": (128, 448, 1, 1),
            "level4.tree2.root.conv.weight": (256, 896, 1, 1),
            "level5.root.conv.weight": (512, 1280, 1, 1),
            "level5.tree1.conv1.weight": (512, 256, 3, 3),
        }
        for key, shape in expected.items():
            self.assertEqual(shapes.get(key), shape, key)
        # The unused projections of the depth-2 trees are not built.
        self.assertFalse(any(k.startswith(("level3.project", "level4.project")) for k in shapes))

    def test_loads_the_dla_authors_imagenet_state_dict(self):
        # Their dla34 state dict: our bottom-up's keys plus the classifier and the two unused
        # projections, wrapped as the README says.
        imagenet = DLA(out_features=["level5"]).state_dict()
        imagenet["fc.weight"], imagenet["fc.bias"] = torch.rand(1000, 512, 1, 1), torch.rand(1000)
        imagenet["level3.project.0.weight"] = torch.rand(128, 64, 1, 1)
        imagenet["level4.project.0.weight"] = torch.rand(256, 128, 1, 1)
        model = nn.Module()
        model.backbone = build_backbone(make_cfg("build_dla34_backbone", PLAIN))
        conv = "level5.root.conv.weight"
        self.assertFalse(torch.equal(model.backbone.bottom_up.state_dict()[conv], imagenet[conv]))
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "dla34_d2.pth")
            torch.save({"model": imagenet, "__author__": "dla", "matching_heuristics": True}, path)
            SafeCheckpointer(model).load(path)
        loaded = model.backbone.bottom_up.state_dict()
        self.assertEqual(len(loaded), len(imagenet) - 4)
        for key, value in loaded.items():
            self.assertTrue(torch.equal(value, imagenet[key]), key)

    def test_all_parameters_get_gradients(self):
        backbone = build_backbone(make_cfg("build_dla34_backbone")).train()
        outputs = backbone(torch.rand(2, 3, 64, 64))
        outputs["p2"].sum().backward()
        missing = [n for n, p in backbone.named_parameters() if p.grad is None]
        self.assertEqual(missing, [])

    def test_extra_bottom_up_outputs(self):
        opts = PLAIN + ["MODEL.DLA.OUT_FEATURES", ["p2", "level5", "level1"]]
        backbone = build_backbone(make_cfg("build_dla34_backbone", opts)).eval()
        shapes = {k: (s.channels, s.stride) for k, s in backbone.output_shape().items()}
        self.assertEqual(shapes, {"p2": (64, 4), "level1": (32, 2), "level5": (512, 32)})
        with torch.no_grad():
            outputs = backbone(torch.rand(1, 3, 64, 96))
        for name, (c, s) in shapes.items():
            self.assertEqual(tuple(outputs[name].shape), (1, c, 64 // s, 96 // s), name)

    def test_norms(self):
        expected = {"FrozenBN": FrozenBatchNorm2d, "GN": nn.GroupNorm, "SyncBN": nn.SyncBatchNorm}
        for norm, norm_type in expected.items():
            with self.subTest(norm=norm):
                opts = PLAIN + ["MODEL.DLA.NORM", norm]
                backbone = build_backbone(make_cfg("build_dla34_backbone", opts))
                self.assertIsInstance(backbone.bottom_up.base_layer[1], norm_type)
                self.assertIsInstance(backbone.bottom_up.level5.root.bn, norm_type)
                self.assertIsInstance(backbone.ida_up.node_1.norm, norm_type)
        gn = build_backbone(make_cfg("build_dla34_backbone", PLAIN + ["MODEL.DLA.NORM", "GN"]))
        # 32 groups, but 16 on the 16-channel stem (GroupNorm needs groups | channels).
        self.assertEqual(gn.bottom_up.base_layer[1].num_groups, 16)
        self.assertEqual(gn.bottom_up.level2.root.bn.num_groups, 32)
        with torch.no_grad():
            out = gn.eval()(torch.rand(1, 3, 32, 32))["p2"]
        self.assertEqual(tuple(out.shape), (1, 64, 8, 8))

    def test_ida_up_starts_bilinear(self):
        # ida_up.up_2 upsamples stride 16 to stride 4: kernel 8, stride 4, taps
        # [1, 3, 5, 7, 7, 5, 3, 1] / 8 per axis; each output phase sums to 1, so a constant map
        # stays constant away from the border.
        backbone = build_backbone(make_cfg("build_dla34_backbone", PLAIN))
        up = backbone.ida_up.up_2
        self.assertEqual((up.kernel_size, up.stride, up.groups), ((8, 8), (4, 4), 64))
        with torch.no_grad():
            y = up(torch.full((1, 64, 3, 5), 2.0))
        self.assertEqual(tuple(y.shape), (1, 64, 12, 20))
        torch.testing.assert_close(y[:, :, 2:-2, 2:-2], torch.full((1, 64, 8, 16), 2.0))

    def test_bad_values_raise_naming_the_key(self):
        bad = [
            ("MODEL.DLA.NORM", ""),
            ("MODEL.DLA.NORM", "LN"),
            ("MODEL.DLA.OUT_FEATURES", ["level2"]),  # no p2
            ("MODEL.DLA.OUT_FEATURES", ["p2", "p3"]),
        ]
        for key, value in bad:
            with self.subTest(key=key, value=value):
                cfg = make_cfg("build_dla34_backbone", [key, value])
                with self.assertRaisesRegex(ValueError, key.replace(".", r"\.")):
                    build_backbone(cfg)


if __name__ == "__main__":
    unittest.main()
