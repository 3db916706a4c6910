"""ModulatedDeformConv2d: DCNv2 on torchvision's deform_conv2d."""

import unittest

import torch
import torch.nn.functional as F
from detectron2.layers import get_norm

from centernet_d2.layers import ModulatedDeformConv2d, modulated_deform_conv2d

# A mask logit whose sigmoid is 1 in float32 (1 - sigmoid(40) = 4e-18 < 2**-24).
SATURATED_LOGIT = 40.0


class TestModulatedDeformConv(unittest.TestCase):
    def setUp(self):
        torch.manual_seed(0)

    def test_zero_offset_unit_mask_is_conv2d(self):
        x = torch.randn(2, 4, 9, 11)
        weight, bias = torch.randn(6, 4, 3, 3), torch.randn(6)
        for stride, padding, dilation in [(1, 1, 1), (2, 1, 1), (1, 2, 2), (2, 0, 1)]:
            with self.subTest(stride=stride, padding=padding, dilation=dilation):
                expected = F.conv2d(x, weight, bias, stride, padding, dilation)
                size = expected.shape[-2:]
                offset, mask = x.new_zeros(2, 18, *size), x.new_ones(2, 9, *size)  # 9 taps
                out = modulated_deform_conv2d(
                    x, offset, mask, weight, bias, stride, padding, dilation
                )
                torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    def test_layer_with_zero_offsets_and_saturated_mask_is_conv2d(self):
        conv = ModulatedDeformConv2d(4, 6, 3, stride=2, padding=1)
        with torch.no_grad():
            conv.conv_offset_mask.bias[18:] = SATURATED_LOGIT  # channels 0..17: offsets, 0
        x = torch.randn(2, 4, 9, 11)
        expected = F.conv2d(x, conv.weight, conv.bias, stride=2, padding=1)
        torch.testing.assert_close(conv(x), expected, rtol=1e-5, atol=1e-5)
        self.assertEqual(tuple(expected.shape), (2, 6, 5, 6))

    def test_initial_layer_is_half_a_conv(self):
        # DCNv2's init: conv_offset_mask is zero, so offsets are 0 and the mask is sigmoid(0) = 1/2.
        conv = ModulatedDeformConv2d(3, 5, 3, padding=1, bias=False)
        self.assertEqual(conv.conv_offset_mask.out_channels, 27)  # 2 * 9 offsets + 9 mask logits
        x = torch.randn(1, 3, 7, 8)
        torch.testing.assert_close(conv(x), 0.5 * F.conv2d(x, conv.weight, padding=1))

    def test_offset_channels_are_row_then_column_shifts(self):
        # A shift of +1 pixel for every tap samples x one pixel further: the same as a plain
        # conv of x moved by one pixel the other way, with zeros entering at the far border. In
        # the first column (row) the plain conv reads its zero padding where the deformable conv
        # reads x's first column (row), so that one is left out.
        x = torch.randn(1, 2, 6, 7)
        weight = torch.randn(3, 2, 3, 3)
        mask = x.new_ones(1, 9, 6, 7)
        shifted_x = F.pad(x[..., :, 1:], (0, 1))  # x[i, j + 1], zero in the last column
        shifted_y = F.pad(x[..., 1:, :], (0, 0, 0, 1))  # x[i + 1, j], zero in the last row
        for channel, shifted, dim in [(1, shifted_x, 3), (0, shifted_y, 2)]:
            with self.subTest(channel=channel):
                offset = x.new_zeros(1, 18, 6, 7)
                offset[:, channel::2] = 1.0
                out = modulated_deform_conv2d(x, offset, mask, weight, padding=1)
                expected = F.conv2d(shifted, weight, padding=1)
                torch.testing.assert_close(
                    out.narrow(dim, 1, out.shape[dim] - 1),
                    expected.narrow(dim, 1, out.shape[dim] - 1),
                    rtol=1e-5,
                    atol=1e-5,
                )
                self.assertFalse(torch.allclose(out, F.conv2d(x, weight, padding=1)))

    def test_mask_scales_each_tap(self):
        # Only the centre tap (t = 4) unmasked, at 0.25: a 1x1 conv with the centre weights / 4.
        x = torch.randn(1, 2, 5, 5)
        weight = torch.randn(3, 2, 3, 3)
        mask = x.new_zeros(1, 9, 5, 5)
        mask[:, 4] = 0.25
        out = modulated_deform_conv2d(x, x.new_zeros(1, 18, 5, 5), mask, weight, padding=1)
        expected = F.conv2d(x, weight[:, :, 1:2, 1:2]) * 0.25
        torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)

    def test_gradients_reach_offset_and_mask_conv(self):
        conv = ModulatedDeformConv2d(4, 4, 3, padding=1)
        with torch.no_grad():  # non-zero, fractional offsets
            conv.conv_offset_mask.weight.normal_(std=0.1)
        x = torch.randn(2, 4, 8, 8)
        offset, mask = conv.offset_and_mask(x)
        self.assertGreater(offset.abs().min().item(), 0.0)
        conv(x).square().sum().backward()
        for name, p in conv.named_parameters():
            with self.subTest(name=name):
                self.assertIsNotNone(p.grad)
                self.assertTrue(torch.isfinite(p.grad).all())
                self.assertGreater(p.grad.abs().sum().item(), 0.0)
        # Offsets and mask both get gradients: their rows of the conv weight are non-zero.
        grad = conv.conv_offset_mask.weight.grad
        self.assertGreater(grad[:18].abs().sum().item(), 0.0)
        self.assertGreater(grad[18:].abs().sum().item(), 0.0)

    def test_norm_activation_and_parameter_names(self):
        conv = ModulatedDeformConv2d(
            4, 32, 3, padding=1, bias=False, norm=get_norm("GN", 32), activation=F.relu
        )
        out = conv(torch.randn(2, 4, 6, 6))
        self.assertEqual(tuple(out.shape), (2, 32, 6, 6))
        self.assertGreaterEqual(out.min().item(), 0.0)
        expected = {
            "weight",
            "conv_offset_mask.weight",
            "conv_offset_mask.bias",
            "norm.weight",
            "norm.bias",
        }
        self.assertEqual(set(conv.state_dict()), expected)

    def test_bfloat16_autocast(self):
        # torchvision's CPU kernel has no bfloat16 version: the layer computes in float32.
        conv = ModulatedDeformConv2d(4, 4, 3, padding=1)
        x = torch.randn(1, 4, 6, 6)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = conv(x.bfloat16())
        self.assertEqual(out.dtype, torch.bfloat16)
        torch.testing.assert_close(out.float(), conv(x), rtol=0.05, atol=0.05)

    def test_bad_groups_raise(self):
        with self.assertRaisesRegex(ValueError, "deformable_groups"):
            ModulatedDeformConv2d(6, 4, 3, deformable_groups=4)


if __name__ == "__main__":
    unittest.main()
