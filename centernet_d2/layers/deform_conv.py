"""Modulated deformable convolution (DCNv2, Zhu et al. 2019) on ``torchvision.ops.deform_conv2d``:
no compiled extension of our own, runs on CPU and GPU.

DCNv2 (eq. 3) samples the input at ``p + p_k + dp_k`` for each kernel tap ``k`` and weighs the
sample by a modulation scalar ``m_k`` in (0, 1):

    y(p) = sum_k w_k * m_k * x(p + p_k + dp_k)

where ``dp_k`` (fractional, bilinearly interpolated) and ``m_k`` are predicted at every output
position by a plain convolution of the same input. With ``dp_k = 0`` and ``m_k = 1`` this is an
ordinary convolution.

Shape shorthand: N images, C channels, H/W height and width, G deformable groups, kh/kw kernel
height and width, T = kh * kw kernel taps.
"""

import math
from typing import Callable, Optional, Tuple, Union

import torch
from torch import nn
from torch.nn.modules.utils import _pair
from torchvision.ops import deform_conv2d

__all__ = ["ModulatedDeformConv2d", "modulated_deform_conv2d"]

IntPair = Union[int, Tuple[int, int]]
# torchvision's CPU kernel has no float16 / bfloat16 version; these run in float32 (as
# torchvision's own CUDA autocast rule does) and the result is cast back.
_LOW_PRECISION = (torch.float16, torch.bfloat16)


def modulated_deform_conv2d(
    x: torch.Tensor,
    offset: torch.Tensor,
    mask: torch.Tensor,
    weight: torch.Tensor,
    bias: Optional[torch.Tensor] = None,
    stride: IntPair = 1,
    padding: IntPair = 0,
    dilation: IntPair = 1,
) -> torch.Tensor:
    """Functional DCNv2: :func:`torchvision.ops.deform_conv2d` with a mask, computed in float32 for
    float16 / bfloat16 inputs (e.g. under autocast) and returned in the input's dtype.

    Args:
        x: (N, C_in, H, W) input.
        offset: (N, 2 * G * T, H_out, W_out) sampling shifts in input pixels. For group g and tap
            t = i * kw + j (row i, column j of the kernel), channel 2 * (g * T + t) is the row (y)
            shift and channel 2 * (g * T + t) + 1 the column (x) shift.
        mask: (N, G * T, H_out, W_out) modulation of each tap, channel g * T + t.
        weight: (C_out, C_in / groups, kh, kw); groups = C_in / weight.shape[1].
        bias: (C_out,) or None.
        stride, padding, dilation: as in ``torch.nn.functional.conv2d``.

    Returns:
        (N, C_out, H_out, W_out), H_out and W_out as for ``conv2d`` with the same arguments.
    """
    dtype = x.dtype
    if dtype in _LOW_PRECISION:
        x, offset, mask, weight = x.float(), offset.float(), mask.float(), weight.float()
        bias = None if bias is None else bias.float()
    out = deform_conv2d(
        x,
        offset,
        weight,
        bias,
        stride=_pair(stride),
        padding=_pair(padding),
        dilation=_pair(dilation),
        mask=mask,
    )
    return out.to(dtype)


class ModulatedDeformConv2d(nn.Module):
    """DCNv2 layer: a plain convolution ``conv_offset_mask`` predicts, from the input, the offsets
    (2 * G * T channels) and the mask logits (G * T channels, sigmoid) of the deformable
    convolution, followed by optional norm and activation as Detectron2's ``Conv2d``.

    ``conv_offset_mask`` starts at zero, as in DCNv2: offsets 0 and mask sigmoid(0) = 0.5, i.e. a
    plain convolution scaled by 1/2 until it learns. The parameter names are those of the DCNv2
    code the CenterNet authors used (``weight``, ``bias``, ``conv_offset_mask.*``), plus ``norm.*``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntPair,
        stride: IntPair = 1,
        padding: IntPair = 0,
        dilation: IntPair = 1,
        groups: int = 1,
        deformable_groups: int = 1,
        bias: bool = True,
        norm: Optional[nn.Module] = None,
        activation: Optional[Callable[[torch.Tensor], torch.Tensor]] = None,
    ):
        """
        Args:
            in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias: as in
                ``torch.nn.Conv2d`` (zero padding only).
            deformable_groups: G, input-channel groups that each get their own offsets and mask.
            norm: module applied to the convolution's output, e.g. ``get_norm("BN", C_out)``.
            activation: callable applied after the norm, e.g. ``F.relu``.
        """
        super().__init__()
        if in_channels % groups or out_channels % groups or in_channels % deformable_groups:
            raise ValueError(
                f"in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"divisible by groups ({groups}) and in_channels by deformable_groups "
                f"({deformable_groups})"
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride)
        self.padding = _pair(padding)
        self.dilation = _pair(dilation)
        self.groups = groups
        self.deformable_groups = deformable_groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, *self.kernel_size)
        )
        if bias:
            self.bias = nn.Parameter(torch.empty(out_channels))
        else:
            self.register_parameter("bias", None)
        num_taps = self.kernel_size[0] * self.kernel_size[1]
        # Same window as the deformable conv, so offsets and mask come at each output position.
        self.conv_offset_mask = nn.Conv2d(
            in_channels,
            3 * deformable_groups * num_taps,
            self.kernel_size,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            bias=True,
        )
        self.norm = norm
        self.activation = activation
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight`` and ``bias`` as ``nn.Conv2d`` initialises them; ``conv_offset_mask`` zero."""
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight[0].numel()
            bound = 1 / math.sqrt(fan_in)
            nn.init.uniform_(self.bias, -bound, bound)
        nn.init.zeros_(self.conv_offset_mask.weight)
        nn.init.zeros_(self.conv_offset_mask.bias)

    def offset_and_mask(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """
        Args:
            x: (N, C_in, H, W) input.

        Returns:
            offset (N, 2 * G * T, H_out, W_out) in input pixels and mask (N, G * T, H_out, W_out)
            in (0, 1), laid out as :func:`modulated_deform_conv2d` reads them.
        """
        out = self.conv_offset_mask(x)  # (N, 3 * G * T, H_out, W_out)
        num_offsets = 2 * self.deformable_groups * self.kernel_size[0] * self.kernel_size[1]
        return out[:, :num_offsets], torch.sigmoid(out[:, num_offsets:])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """
        Args:
            x: (N, C_in, H, W) input.

        Returns:
            (N, C_out, H_out, W_out) after the norm and activation, if any.
        """
        offset, mask = self.offset_and_mask(x)
        x = modulated_deform_conv2d(
            x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation
        )
        if self.norm is not None:
            x = self.norm(x)
        if self.activation is not None:
            x = self.activation(x)
        return x

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}"
        )
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.deformable_groups != 1:
            s += f", deformable_groups={self.deformable_groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.activation is not None:
            s += f", activation={getattr(self.activation, '__name__', self.activation)}"
        return s
