"""Backbones: output shapes of every registered builder, norms, freezing, the bilinear init, the
deformable upsampler and the shared pieces of ``backbone/common.py``."""

import unittest

import torch
import torchvision
from detectron2.config import get_cfg
from detectron2.layers import Conv2d, FrozenBatchNorm2d, ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone, build_backbone
from detectron2.structures import ImageList
from torch import nn

from centernet_d2.config import add_centernet_config
from centernet_d2.layers import ModulatedDeformConv2d
from centernet_d2.modeling.backbone import DeconvUpsampler, FinestLevelFPN, MobileNetBackbone
from centernet_d2.modeling.backbone.common import (
    build_norm,
    build_resnet_bottom_up,
    check_choice,
    conv_norm_relu,
)

# Odd sizes: the batch is padded to 128 x 160 (multiples of 32).
IMAGE_SIZES = [(97, 131), (75, 120)]
PADDED_SIZE = (128, 160)
R18 = ["MODEL.RESNETS.DEPTH", 18, "MODEL.RESNETS.RES2_OUT_CHANNELS", 64]
# ResNeXt-50 2x4d, narrowed (res2 has 64 output channels instead of 256) to stay cheap.
X50_2X4D = [
    "MODEL.RESNETS.DEPTH", 50,
    "MODEL.RESNETS.NUM_GROUPS", 2,
    "MODEL.RESNETS.WIDTH_PER_GROUP", 4,
    "MODEL.RESNETS.RES2_OUT_CHANNELS", 64,
]  # fmt: skip
SMALL_DECONV = ["MODEL.DECONV.CHANNELS", [32, 32, 32]]
DEFORMABLE = ["MODEL.DECONV.DEFORMABLE", True]
RESNET_FPN = [
    "MODEL.FPN.IN_FEATURES", ["res2", "res3", "res4", "res5"],
    "MODEL.FPN.OUT_CHANNELS", 64,
]  # fmt: skip
MOBILENET_FPN = ["MODEL.FPN.IN_FEATURES", ["m2", "m3", "m4", "m5"], "MODEL.FPN.OUT_CHANNELS", 64]
# Output channels of the last block at strides 4, 8, 16, 32 (torchvision's architecture tables;
# stride 32 ends with features' final 1x1 conv).
MOBILENET_CHANNELS = {
    "mobilenet_v2": [24, 32, 96, 1280],
    "mobilenet_v3_large": [24, 40, 112, 960],
    "mobilenet_v3_small": [16, 24, 48, 576],
}


def make_cfg(backbone_name, opts=()):
    cfg = add_centernet_config(get_cfg())
    cfg.MODEL.BACKBONE.NAME = backbone_name
    cfg.merge_from_list(list(opts))
    return cfg


class _PoolBottomUp(Backbone):
    """Stand-in bottom-up: "res5" is the input average-pooled by ``stride``."""

    def __init__(self, channels, stride):
        super().__init__()
        self._out_features = ["res5"]
        self._out_feature_channels = {"res5": channels}
        self._out_feature_strides = {"res5": stride}

    def forward(self, x):
        return {"res5": nn.functional.avg_pool2d(x, self._out_feature_strides["res5"])}


class BackboneTestCase(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def run_on_odd_sizes(self, backbone, expected_shapes):
        """Run ``backbone`` in eval mode on IMAGE_SIZES and check its outputs against
        ``expected_shapes`` ({name: (channels, stride)}) and its own ``output_shape()``."""
        backbone.eval()
        self.assertEqual(backbone.size_divisibility, 32)
        shapes = backbone.output_shape()
        self.assertEqual({k: (s.channels, s.stride) for k, s in shapes.items()}, expected_shapes)
        images = ImageList.from_tensors(
            [torch.rand(3, h, w) for h, w in IMAGE_SIZES],
            size_divisibility=backbone.size_divisibility,
        )
        H, W = images.tensor.shape[-2:]
        self.assertEqual((H, W), PADDED_SIZE)
        with torch.no_grad():
            outputs = backbone(images.tensor)
        self.assertEqual(set(outputs), set(shapes))
        for name, x in outputs.items():
            s = shapes[name]
            self.assertEqual((H % s.stride, W % s.stride), (0, 0))
            self.assertEqual(tuple(x.shape), (2, s.channels, H // s.stride, W // s.stride), name)
            self.assertTrue(torch.isfinite(x).all(), name)
        return outputs

    def assert_all_trainable_get_grads(self, backbone, size=64):
        backbone.train()
        outputs = backbone(torch.rand(2, 3, size, size))
        sum(x.sum() for x in outputs.values()).backward()
        for name, p in backbone.named_parameters():
            if p.requires_grad:
                self.assertIsNotNone(p.grad, name)


class TestRegistry(unittest.TestCase):
    def test_builders_registered(self):
        for name in [
            "build_resnet_deconv_backbone",
            "build_resnet_fpn_p2_backbone",
            "build_mobilenet_backbone",
            "build_mobilenet_fpn_p2_backbone",
            "build_resnet_fpn_p3p7_backbone",
            "build_mobilenet_fpn_p3p7_backbone",
        ]:
            self.assertIn(name, BACKBONE_REGISTRY)


class TestResNetDeconv(BackboneTestCase):
    def test_r18_shapes(self):
        cfg = make_cfg("build_resnet_deconv_backbone", R18)
        backbone = build_backbone(cfg)
        self.assertIsInstance(backbone, DeconvUpsampler)
        self.run_on_odd_sizes(backbone, {"p2": (64, 4)})  # DECONV.CHANNELS[-1] = 64
        # get_cfg's MODEL.RESNETS.OUT_FEATURES (["res4"]) is ignored and left unchanged.
        self.assertEqual(cfg.MODEL.RESNETS.OUT_FEATURES, ["res4"])
        self.assertEqual(backbone.bottom_up.output_shape()["res5"].channels, 512)

    def test_resnext_shapes_and_kernel_sizes(self):
        for kernel_size in (4, 3, 2):
            with self.subTest(kernel_size=kernel_size):
                opts = X50_2X4D + SMALL_DECONV + ["MODEL.DECONV.KERNEL_SIZE", kernel_size]
                backbone = build_backbone(make_cfg("build_resnet_deconv_backbone", opts))
                self.assertEqual(backbone.bottom_up.res2[0].conv2.groups, 2)
                self.run_on_odd_sizes(backbone, {"p2": (32, 4)})

    def test_two_stages_give_p3(self):
        opts = R18 + ["MODEL.DECONV.CHANNELS", [32, 16]]
        backbone = build_backbone(make_cfg("build_resnet_deconv_backbone", opts))
        self.run_on_odd_sizes(backbone, {"p3": (16, 8)})

    def test_all_trainable_parameters_get_gradients(self):
        cfg = make_cfg("build_resnet_deconv_backbone", R18 + SMALL_DECONV)
        backbone = build_backbone(cfg)
        # MODEL.BACKBONE.FREEZE_AT = 2 (get_cfg): stem and res2 frozen, the upsampler is not.
        self.assertFalse(any(p.requires_grad for p in backbone.bottom_up.res2.parameters()))
        self.assertTrue(all(p.requires_grad for p in backbone.stage1.parameters()))
        self.assert_all_trainable_get_grads(backbone)

    def test_norms(self):
        expected = {
            "BN": nn.BatchNorm2d,
            "FrozenBN": FrozenBatchNorm2d,
            "GN": nn.GroupNorm,
            "": type(None),
        }
        for norm, norm_type in expected.items():
            with self.subTest(norm=norm):
                upsampler = DeconvUpsampler(_PoolBottomUp(3, 32), "res5", [32, 32, 32], norm=norm)
                for i in (1, 2, 3):
                    stage = getattr(upsampler, f"stage{i}")
                    self.assertIsInstance(stage.conv.norm, norm_type)
                    self.assertIsInstance(stage.up_norm, norm_type)
                    # A bias only without norm (the norm has its own).
                    self.assertEqual(stage.conv.bias is None, norm != "")
                    self.assertEqual(stage.up.bias is None, norm != "")
                self.run_on_odd_sizes(upsampler, {"p2": (32, 4)})

    def test_bad_values_raise_naming_the_key(self):
        bad = [
            ("MODEL.DECONV.NORM", "BatchNorm"),
            ("MODEL.DECONV.KERNEL_SIZE", 5),
            ("MODEL.DECONV.IN_FEATURE", "res6"),
            ("MODEL.DECONV.CHANNELS", []),
            ("MODEL.DECONV.CHANNELS", [8] * 6),  # stride 32 / 2**6 < 1
        ]
        for key, value in bad:
            with self.subTest(key=key, value=value):
                cfg = make_cfg("build_resnet_deconv_backbone", R18 + [key, value])
                with self.assertRaisesRegex(ValueError, key.replace(".", r"\.")):
                    build_backbone(cfg)
        cfg = make_cfg(
            "build_resnet_deconv_backbone",
            R18 + ["MODEL.DECONV.NORM", "GN", "MODEL.DECONV.CHANNELS", [48]],
        )
        with self.assertRaisesRegex(ValueError, r"MODEL\.DECONV\.CHANNELS.*32"):
            build_backbone(cfg)
        # R18 with get_cfg's RES2_OUT_CHANNELS = 256.
        cfg = make_cfg("build_resnet_deconv_backbone", ["MODEL.RESNETS.DEPTH", 18])
        with self.assertRaisesRegex(ValueError, r"MODEL\.RESNETS\.RES2_OUT_CHANNELS"):
            build_backbone(cfg)

    def test_bilinear_init_doubles_a_constant_map(self):
        upsampler = DeconvUpsampler(_PoolBottomUp(2, 32), "res5", [2], norm="")
        # Channel c holds the constant c + 1; H x W = 5 x 6 -> 10 x 12.
        x = torch.tensor([1.0, 2.0])[None, :, None, None].expand(1, 2, 5, 6)
        with torch.no_grad():
            y = upsampler.stage1.up(x)
        self.assertEqual(tuple(y.shape), (1, 2, 10, 12))
        for c, v in enumerate([1.0, 2.0]):
            # Kernel 4 taps [1/4, 3/4, 3/4, 1/4] per axis: 1/4 + 3/4 = 1 inside; only the 3/4 tap
            # reaches the first/last row or column; 3/4 * 3/4 at the corners.
            torch.testing.assert_close(y[0, c, 1:-1, 1:-1], torch.full((8, 10), v))
            torch.testing.assert_close(y[0, c, 0, 1:-1], torch.full((10,), 0.75 * v))
            torch.testing.assert_close(y[0, c, 1:-1, -1], torch.full((8,), 0.75 * v))
            torch.testing.assert_close(y[0, c, 0, 0], torch.tensor(0.5625 * v))

    def test_bilinear_init_other_kernel_sizes(self):
        for kernel_size in (2, 3):
            with self.subTest(kernel_size=kernel_size):
                upsampler = DeconvUpsampler(
                    _PoolBottomUp(1, 32), "res5", [1], kernel_size=kernel_size, norm=""
                )
                with torch.no_grad():
                    y = upsampler.stage1.up(torch.full((1, 1, 5, 6), 3.0))
                self.assertEqual(tuple(y.shape), (1, 1, 10, 12))
                # Kernel 2: nearest neighbour; kernel 3: taps [1/2, 1, 1/2].
                torch.testing.assert_close(y[0, 0, 1:-1, 1:-1], torch.full((8, 10), 3.0))


class TestDeformableUpsampler(BackboneTestCase):
    def test_shapes_and_layers(self):
        backbone = build_backbone(make_cfg("build_resnet_deconv_backbone", R18 + DEFORMABLE))
        for i in (1, 2, 3):
            self.assertIsInstance(getattr(backbone, f"stage{i}").conv, ModulatedDeformConv2d)
        self.run_on_odd_sizes(backbone, {"p2": (64, 4)})

    def test_parameter_names_only_add_offset_convs(self):
        plain = build_backbone(make_cfg("build_resnet_deconv_backbone", R18 + SMALL_DECONV))
        deform = build_backbone(
            make_cfg("build_resnet_deconv_backbone", R18 + SMALL_DECONV + DEFORMABLE)
        )
        plain_keys, deform_keys = set(plain.state_dict()), set(deform.state_dict())
        self.assertLess(plain_keys, deform_keys)  # DEFORMABLE False: the names of older models
        added = {
            f"stage{i}.conv.conv_offset_mask.{p}" for i in (1, 2, 3) for p in ("weight", "bias")
        }
        self.assertEqual(deform_keys - plain_keys, added)
        # ResNet-18 res5 has 512 channels: 27 * (512 * 9 + 1); then 27 * (32 * 9 + 1) twice.
        extra = sum(deform.state_dict()[k].numel() for k in added)
        self.assertEqual(extra, 27 * (512 * 9 + 1) + 2 * 27 * (32 * 9 + 1))

    def test_all_trainable_parameters_get_gradients(self):
        cfg = make_cfg("build_resnet_deconv_backbone", R18 + SMALL_DECONV + DEFORMABLE)
        self.assert_all_trainable_get_grads(build_backbone(cfg))


class TestCommon(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_check_choice_names_key_allowed_and_given(self):
        check_choice("MODEL.X.NORM", "BN", ("BN", "GN"))
        check_choice("MODEL.X.SIZE", 4, {4: None, 2: None})  # a dict: its keys
        with self.assertRaises(ValueError) as cm:
            check_choice("MODEL.X.NORM", "LN", ("BN", "GN"))
        self.assertEqual(str(cm.exception), "MODEL.X.NORM must be one of ['BN', 'GN'], got 'LN'")
        with self.assertRaisesRegex(ValueError, r"^MODEL\.X\.SIZE must be one of \[4, 2\], got 5$"):
            check_choice("MODEL.X.SIZE", 5, {4: None, 2: None})

    def test_build_norm_gn_groups(self):
        # gcd(32, C): 32 for multiples of 32, else the largest power of 2 dividing C (at most 32).
        for channels, groups in [(16, 16), (32, 32), (48, 16), (64, 32), (24, 8)]:
            with self.subTest(channels=channels):
                norm = build_norm("GN", channels)
                self.assertIsInstance(norm, nn.GroupNorm)
                self.assertEqual((norm.num_groups, norm.num_channels), (groups, channels))
        self.assertIsNone(build_norm("", 16))
        self.assertIsInstance(build_norm("BN", 16), nn.BatchNorm2d)
        self.assertIsInstance(build_norm("FrozenBN", 16), FrozenBatchNorm2d)

    def test_conv_norm_relu(self):
        for deformable, conv_type in ((False, Conv2d), (True, ModulatedDeformConv2d)):
            for norm in ("BN", ""):
                with self.subTest(deformable=deformable, norm=norm):
                    conv = conv_norm_relu(8, 64, norm, deformable)
                    self.assertIsInstance(conv, conv_type)
                    self.assertEqual((conv.kernel_size, conv.padding), ((3, 3), (1, 1)))
                    names = {n for n, _ in conv.named_parameters()}
                    expected = (
                        {"weight", "norm.weight", "norm.bias"} if norm else {"weight", "bias"}
                    )
                    if deformable:
                        expected |= {"conv_offset_mask.weight", "conv_offset_mask.bias"}
                    self.assertEqual(names, expected)
                    # MSRA (c2_msra_fill): N(0, 2 / fan_out), fan_out = 64 * 3 * 3; bias 0.
                    self.assertAlmostEqual(conv.weight.std().item(), (2 / 576) ** 0.5, delta=2e-3)
                    if conv.bias is not None:
                        self.assertEqual(conv.bias.abs().sum().item(), 0.0)
                    out = conv.eval()(torch.randn(2, 8, 5, 7))
                    self.assertEqual(tuple(out.shape), (2, 64, 5, 7))
                    self.assertGreaterEqual(out.min().item(), 0.0)  # ReLU

    def test_resnet_bottom_up_stops_after_last_feature(self):
        cfg = make_cfg("build_resnet_deconv_backbone", R18)
        resnet = build_resnet_bottom_up(cfg, ShapeSpec(channels=3), ["res2", "res3"])
        self.assertEqual(set(resnet.output_shape()), {"res2", "res3"})
        names = {n for n, _ in resnet.named_children()}
        self.assertTrue({"stem", "res2", "res3"} <= names)
        self.assertFalse({"res4", "res5"} & names)
        self.assertEqual(cfg.MODEL.RESNETS.OUT_FEATURES, ["res4"])  # the cfg is left unchanged
        for bad in ([], ["res6"]):
            with self.subTest(out_features=bad):
                with self.assertRaisesRegex(ValueError, "out_features"):
                    build_resnet_bottom_up(cfg, ShapeSpec(channels=3), bad)


class TestFPN(BackboneTestCase):
    def test_resnet_fpn_p2_shapes(self):
        cfg = make_cfg("build_resnet_fpn_p2_backbone", R18 + RESNET_FPN)
        backbone = build_backbone(cfg)
        self.assertIsInstance(backbone, FinestLevelFPN)
        self.run_on_odd_sizes(backbone, {"p2": (64, 4)})
        self.assertEqual(cfg.MODEL.RESNETS.OUT_FEATURES, ["res4"])
        # Only p2's output conv exists; every lateral conv feeds the top-down path.
        names = {n for n, _ in backbone.named_children()}
        self.assertIn("fpn_output2", names)
        self.assertFalse({"fpn_output3", "fpn_output4", "fpn_output5"} & names)
        self.assertTrue({f"fpn_lateral{i}" for i in (2, 3, 4, 5)} <= names)

    def test_mobilenet_fpn_p2_shapes(self):
        for name in MOBILENET_CHANNELS:
            with self.subTest(name=name):
                opts = MOBILENET_FPN + ["MODEL.MOBILENET.NAME", name]
                backbone = build_backbone(make_cfg("build_mobilenet_fpn_p2_backbone", opts))
                self.run_on_odd_sizes(backbone, {"p2": (64, 4)})

    def test_p2_equals_detectron2_fpn_p2(self):
        for fuse_type in ("sum", "avg"):
            with self.subTest(fuse_type=fuse_type):
                opts = MOBILENET_FPN + [
                    "MODEL.MOBILENET.NAME", "mobilenet_v3_small",
                    "MODEL.FPN.FUSE_TYPE", fuse_type,
                    "MODEL.FPN.NORM", "GN",
                ]  # fmt: skip
                ours = build_backbone(make_cfg("build_mobilenet_fpn_p2_backbone", opts)).eval()
                reference = FPN(
                    ours.bottom_up, ["m2", "m3", "m4", "m5"], 64, norm="GN", fuse_type=fuse_type
                ).eval()
                missing, unexpected = reference.load_state_dict(ours.state_dict(), strict=False)
                self.assertEqual(unexpected, [])
                unused = ("fpn_output3.", "fpn_output4.", "fpn_output5.")
                self.assertTrue(missing and all(k.startswith(unused) for k in missing), missing)
                x = torch.rand(2, 3, 64, 96)
                with torch.no_grad():
                    torch.testing.assert_close(ours(x)["p2"], reference(x)["p2"])

    def test_all_trainable_parameters_get_gradients(self):
        backbone = build_backbone(make_cfg("build_resnet_fpn_p2_backbone", R18 + RESNET_FPN))
        self.assert_all_trainable_get_grads(backbone)

    def test_bad_values_raise_naming_the_key(self):
        bad = [
            ("MODEL.FPN.IN_FEATURES", []),  # get_cfg's default
            ("MODEL.FPN.IN_FEATURES", ["res3", "res4", "res5"]),  # no stride-4 level
            ("MODEL.FPN.IN_FEATURES", ["res2", "res4"]),
            ("MODEL.FPN.FUSE_TYPE", "max"),
        ]
        for key, value in bad:
            with self.subTest(key=key, value=value):
                cfg = make_cfg("build_resnet_fpn_p2_backbone", R18 + RESNET_FPN + [key, value])
                with self.assertRaisesRegex(ValueError, key.replace(".", r"\.")):
                    build_backbone(cfg)
        cfg = make_cfg("build_mobilenet_fpn_p2_backbone", RESNET_FPN)
        with self.assertRaisesRegex(ValueError, r"MODEL\.FPN\.IN_FEATURES.*m2"):
            build_backbone(cfg)


class TestFPNP3P7(BackboneTestCase):
    def test_shapes_and_p6_from_p5(self):
        for name, opts, ins in [
            ("build_resnet_fpn_p3p7_backbone", R18, ["res3", "res4", "res5"]),
            ("build_mobilenet_fpn_p3p7_backbone", [], ["m3", "m4", "m5"]),
        ]:
            with self.subTest(name):
                cfg = make_cfg(
                    name, opts + ["MODEL.FPN.IN_FEATURES", ins, "MODEL.FPN.OUT_CHANNELS", 32]
                )
                backbone = build_backbone(cfg).eval()
                expected = {f"p{i}": (32, 2**i) for i in range(3, 8)}
                shapes = backbone.output_shape()
                self.assertEqual({k: (s.channels, s.stride) for k, s in shapes.items()}, expected)
                with torch.no_grad():
                    out = backbone(torch.rand(1, 3, 128, 256))
                sizes = {k: tuple(v.shape[2:]) for k, v in out.items()}
                self.assertEqual(sizes, {f"p{i}": (128 >> i, 256 >> i) for i in range(3, 8)})
                # P6 is a stride-2 conv of P5 (CenterNet2), not of the bottom-up's last level
                with torch.no_grad():
                    p6 = backbone.top_block.p6(out["p5"])
                torch.testing.assert_close(out["p6"], p6)
        self.assert_all_trainable_get_grads(backbone, size=128)
        cfg = make_cfg("build_resnet_fpn_p3p7_backbone", R18 + RESNET_FPN)
        with self.assertRaisesRegex(ValueError, r"MODEL\.FPN\.IN_FEATURES.*res3"):
            build_backbone(cfg)


class TestMobileNet(BackboneTestCase):
    def test_shapes(self):
        for name, channels in MOBILENET_CHANNELS.items():
            with self.subTest(name=name):
                cfg = make_cfg("build_mobilenet_backbone", ["MODEL.MOBILENET.NAME", name])
                backbone = build_backbone(cfg)
                self.assertIsInstance(backbone, MobileNetBackbone)
                expected = {f"m{s}": (c, 2**s) for s, c in zip((2, 3, 4, 5), channels)}
                self.run_on_odd_sizes(backbone, expected)

    def test_loads_torchvision_weights(self):
        reference = torchvision.models.mobilenet_v3_small(weights=None).eval()
        ours = MobileNetBackbone("mobilenet_v3_small").eval()
        features = {k: v for k, v in reference.state_dict().items() if k.startswith("features.")}
        self.assertEqual(set(ours.state_dict()), set(features))
        ours.load_state_dict(features)
        x = torch.rand(1, 3, 64, 64)
        with torch.no_grad():
            torch.testing.assert_close(ours(x)["m5"], reference.features(x))
        # torchvision's V3 BatchNorm settings are kept.
        self.assertEqual(ours.features[0][1].eps, 0.001)

    def test_out_features_subset_drops_later_blocks(self):
        backbone = MobileNetBackbone("mobilenet_v2", out_features=["m2", "m3"])
        self.assertEqual(len(backbone.features), 7)  # stride 8 ends at features[6]
        self.run_on_odd_sizes(backbone, {"m2": (24, 4), "m3": (32, 8)})

    def test_other_input_channels(self):
        # build_backbone passes len(MODEL.PIXEL_MEAN) as the input channels.
        opts = ["MODEL.PIXEL_MEAN", [0.0], "MODEL.PIXEL_STD", [1.0]]
        backbone = build_backbone(make_cfg("build_mobilenet_backbone", opts)).eval()
        with torch.no_grad():
            outputs = backbone(torch.rand(1, 1, 64, 64))
        self.assertEqual(tuple(outputs["m5"].shape), (1, 1280, 2, 2))

    def test_norms(self):
        for norm, norm_type in (("BN", nn.BatchNorm2d), ("FrozenBN", FrozenBatchNorm2d)):
            with self.subTest(norm=norm):
                backbone = MobileNetBackbone("mobilenet_v3_small", norm=norm)
                any_bn = (nn.BatchNorm2d, FrozenBatchNorm2d)
                norms = [m for m in backbone.modules() if isinstance(m, any_bn)]
                self.assertTrue(norms)
                self.assertTrue(all(isinstance(m, norm_type) for m in norms))

    def test_bad_norms_raise(self):
        cfg = make_cfg("build_mobilenet_backbone", ["MODEL.MOBILENET.NORM", "GN"])
        with self.assertRaisesRegex(ValueError, r"MODEL\.MOBILENET\.NORM='GN'.*32"):
            build_backbone(cfg)
        for key, value in [
            ("MODEL.MOBILENET.NORM", ""),
            ("MODEL.MOBILENET.NAME", "mobilenet_v1"),
            ("MODEL.MOBILENET.FREEZE_AT", 6),
        ]:
            with self.subTest(key=key):
                cfg = make_cfg("build_mobilenet_backbone", [key, value])
                with self.assertRaisesRegex(ValueError, key.replace(".", r"\.")):
                    build_backbone(cfg)

    def test_freeze_at(self):
        # mobilenet_v3_small: features[0] (stride 2) is the stem, features[1] (stride 4) is m2.
        cfg = make_cfg(
            "build_mobilenet_backbone",
            ["MODEL.MOBILENET.NAME", "mobilenet_v3_small", "MODEL.MOBILENET.FREEZE_AT", 2],
        )
        backbone = build_backbone(cfg)
        for i, block in enumerate(backbone.features):
            params = list(block.parameters())
            self.assertTrue(params)
            self.assertTrue(all(p.requires_grad == (i >= 2) for p in params), i)
            frozen_bn = any(isinstance(m, FrozenBatchNorm2d) for m in block.modules())
            bn = any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
            self.assertEqual((frozen_bn, bn), (i < 2, i >= 2), i)
        self.assert_all_trainable_get_grads(backbone)

        backbone = build_backbone(make_cfg("build_mobilenet_backbone"))  # FREEZE_AT = 0
        self.assertTrue(all(p.requires_grad for p in backbone.parameters()))
        backbone = MobileNetBackbone("mobilenet_v3_small", freeze_at=5)
        self.assertFalse(any(p.requires_grad for p in backbone.parameters()))


if __name__ == "__main__":
    unittest.main()
