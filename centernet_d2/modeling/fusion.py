"""How CenterTrack's previous frame enters the network (``MODEL.CENTERTRACK.FUSION``), both ways
leaving the backbone's parameters as they are, so that a detector's or an ImageNet checkpoint loads
into the backbone without a missing or reshaped key:

* "stem", CenterTrack's (:class:`StemFusion`): the previous image and heatmap go through layers of
  their own (conv of the first layer's kernel size, norm, ReLU) whose outputs are added to the
  output of the backbone's first layer (DLA's ``base_layer``, ResNet's ``stem``, MobileNet's
  ``features[0]``; :func:`first_layer`), by a forward hook on that layer:

      first_layer(image) + relu(norm(conv(prev_image))) + relu(norm(conv(prev_heatmap)))

* "input": they are fused into the image before the backbone (:class:`PrevFrameFusion`), which
  any backbone takes, the conv zero-initialised (an untrained fusion passes the image through):

      fused = image + conv3x3(norm([image, prev_image, prev_heatmap]))      (N, 3, H, W)

Shape shorthand: N images, Hi/Wi the padded input size.
"""

import contextlib
import functools
from typing import Optional, Tuple

import torch
from detectron2.layers import Conv2d, get_norm
from torch import Tensor, nn

__all__ = ["PrevFrameFusion", "StemFusion", "first_layer", "first_layer_shape"]


class PrevFrameFusion(nn.Module):
    """Fuses the previous frame and its heatmap into the image:
    ``image + conv3x3(norm([image, prev_image, prev_heatmap]))``, the norm per channel (so that
    the sparse [0, 1] heatmap has the scale of the images) and the conv zero-initialised (an
    untrained fusion returns the image).
    It works at the input's full resolution on 3 + 3 + 1 channels: cheap next to any backbone.
    """

    def __init__(self, *, prev_image: bool = True, prev_heatmap: bool = True, norm: str = "BN"):
        """
        Args:
            prev_image, prev_heatmap: which previous-frame inputs are fused (the image always).
            norm: the per-channel norm of the stacked inputs ("" for none), as Detectron2's
                ``get_norm`` ("BN", "SyncBN", "FrozenBN"; not "GN", which mixes channels).
        """
        super().__init__()
        self.prev_image = prev_image
        self.prev_heatmap = prev_heatmap
        in_channels = 3 + 3 * prev_image + prev_heatmap
        self.norm = get_norm(norm, in_channels) or nn.Identity()
        self.conv = Conv2d(in_channels, 3, kernel_size=3, padding=1)
        nn.init.zeros_(self.conv.weight)
        nn.init.zeros_(self.conv.bias)

    def forward(self, images: Tensor, prev_images: Tensor, prev_heatmaps: Tensor) -> Tensor:
        """
        Args:
            images, prev_images: (N, 3, Hi, Wi) normalised; prev_heatmaps: (N, 1, Hi, Wi).
        Returns:
            (N, 3, Hi, Wi), the backbone's input.
        """
        x = [images]
        if self.prev_image:
            x.append(prev_images)
        if self.prev_heatmap:
            x.append(prev_heatmaps.to(images.dtype))
        return images + self.conv(self.norm(torch.cat(x, dim=1)))


def first_layer(backbone: nn.Module) -> Tuple[str, nn.Module]:
    """The first layer of a backbone, where CenterTrack adds the previous frame's features: DLA's
    ``base_layer``, Detectron2 ResNet's ``stem`` or a torchvision MobileNet's ``features[0]``,
    looked for in ``backbone`` and down its chain of ``bottom_up`` backbones (FPN, BiFPN,
    deconvolutions, DLA-up).

    Returns:
        the layer's name in ``backbone`` (e.g. "bottom_up.features.0") and the layer.
    Raises:
        ValueError: no such layer (use ``MODEL.CENTERTRACK.FUSION: "input"``).
    """
    module, prefix = backbone, ""
    while True:
        for name in ("base_layer", "stem"):
            if isinstance(getattr(module, name, None), nn.Module):
                return prefix + name, getattr(module, name)
        features = getattr(module, "features", None)
        if isinstance(features, nn.Sequential) and len(features) > 0:
            return prefix + "features.0", features[0]
        bottom_up = getattr(module, "bottom_up", None)
        if not isinstance(bottom_up, nn.Module):
            raise ValueError(
                f"MODEL.CENTERTRACK.FUSION 'stem' needs a backbone with a first layer to add the "
                f"previous frame to (DLA's base_layer, ResNet's stem, MobileNet's features[0], "
                f"possibly under bottom_up); {type(backbone).__name__} has none: use FUSION "
                f"'input'"
            )
        module, prefix = bottom_up, prefix + "bottom_up."


@torch.no_grad()
def first_layer_shape(layer: nn.Module, size: int = 64) -> Tuple[int, int, int, int]:
    """(input channels, output channels, stride, kernel size) of a backbone's first layer: the
    channels and stride found by running it in eval mode on zeros of ``size`` x ``size`` (its
    running statistics are left untouched), the kernel size that of its first ``Conv2d``."""
    conv = next((m for m in layer.modules() if isinstance(m, nn.Conv2d)), None)
    if conv is None:
        raise ValueError(f"the backbone's first layer {type(layer).__name__} has no Conv2d")
    param = next(layer.parameters())
    training = layer.training
    try:
        out = layer.eval()(param.new_zeros(1, conv.in_channels, size, size))
    finally:
        layer.train(training)
    return conv.in_channels, out.shape[1], size // out.shape[-1], conv.kernel_size[0]


def _conv_norm_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: str
) -> nn.Sequential:
    """CenterTrack's ``pre_img_layer`` / ``pre_hm_layer``: conv (no bias), norm, ReLU."""
    conv = Conv2d(
        in_channels,
        out_channels,
        kernel_size,
        stride=stride,
        padding=kernel_size // 2,
        bias=not norm,
    )
    nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
    return nn.Sequential(conv, get_norm(norm, out_channels) or nn.Identity(), nn.ReLU(inplace=True))


class StemFusion(nn.Module):
    """CenterTrack's fusion: ``relu(norm(conv(prev_image))) + relu(norm(conv(prev_heatmap)))``
    at the resolution, channels and kernel size of the backbone's first layer, added to that
    layer's output by a forward hook (:meth:`attach`), as CenterTrack's
    ``base_layer(x) + pre_img_layer(pre_img) + pre_hm_layer(pre_hm)``. The convs are randomly
    initialised (kaiming, norm weight 1), as CenterTrack's; with ``zero_init`` each layer's output
    is multiplied by a learnt per-channel gain that starts at 0, so that the tracker starts as
    the detector it is built from (CenterTrack's random start adds features of unit scale to a
    trained first layer, which the detector must first learn to live with).

    The backbone's forward is unchanged and its parameters stay its own (a detector's checkpoint
    loads with ``fusion.*`` as the only new keys); the features are added only inside
    :meth:`added_to_first_layer`: elsewhere the backbone is the detector's.
    """

    def __init__(
        self,
        *,
        channels: int,
        stride: int,
        kernel_size: int = 7,
        prev_image: bool = True,
        prev_heatmap: bool = True,
        norm: str = "BN",
        zero_init: bool = False,
    ):
        """
        Args:
            channels, stride: the output channels and stride of the backbone's first layer.
            kernel_size: of the convs, odd: CenterTrack's 7 is that of DLA's first layer; the
                model builds them with its backbone's first layer's.
            prev_image, prev_heatmap: which previous-frame inputs are added (at least one).
            norm: the norm after each conv, as Detectron2's ``get_norm`` ("" for none).
            zero_init: scale each layer's output by a per-channel gain, initially 0.
        """
        super().__init__()
        if not (prev_image or prev_heatmap):
            raise ValueError(
                "MODEL.CENTERTRACK.FUSION 'stem' needs PREV_IMAGE or PREV_HEATMAP (or both)"
            )
        self.stride = stride
        layer = functools.partial(
            _conv_norm_relu,
            out_channels=channels,
            kernel_size=kernel_size,
            stride=stride,
            norm=norm,
        )
        self.prev_image_layer = layer(3) if prev_image else None
        self.prev_heatmap_layer = layer(1) if prev_heatmap else None
        self.gains = (
            nn.Parameter(torch.zeros(prev_image + prev_heatmap, channels, 1, 1))
            if zero_init
            else None
        )  # (prev image and/or prev heatmap, C, 1, 1)
        self._handle = None
        self._pending: Optional[Tensor] = None

    def attach(self, layer: nn.Module) -> "StemFusion":
        """Add the features to ``layer``'s output (the backbone's first layer) from now on."""
        if self._handle is not None:
            self._handle.remove()
        self._handle = layer.register_forward_hook(self._add_to_output)
        return self

    def _add_to_output(self, module: nn.Module, inputs, output: Tensor) -> Optional[Tensor]:
        if self._pending is None:
            return None  # the backbone alone: the detector's
        if self._pending.shape != output.shape:
            raise ValueError(
                f"MODEL.CENTERTRACK.FUSION 'stem': the previous frame's features "
                f"{tuple(self._pending.shape)} do not match the backbone's first layer's output "
                f"{tuple(output.shape)}"
            )
        return output + self._pending

    def forward(self, prev_images: Tensor, prev_heatmaps: Tensor) -> Tensor:
        """
        Args:
            prev_images: (N, 3, Hi, Wi) normalised; prev_heatmaps: (N, 1, Hi, Wi).
        Returns:
            (N, C, Hi / stride, Wi / stride): what is added to the first layer's output.
        """
        outputs = []
        if self.prev_image_layer is not None:
            outputs.append(self.prev_image_layer(prev_images))
        if self.prev_heatmap_layer is not None:
            outputs.append(self.prev_heatmap_layer(prev_heatmaps.to(prev_images.dtype)))
        if self.gains is not None:
            outputs = [x * g for x, g in zip(outputs, self.gains)]
        return outputs[0] if len(outputs) == 1 else outputs[0] + outputs[1]

    @contextlib.contextmanager
    def added_to_first_layer(self, prev_images: Tensor, prev_heatmaps: Tensor):
        """Within the block, the backbone's first layer outputs its own output plus
        ``self(prev_images, prev_heatmaps)``."""
        self._pending = self(prev_images, prev_heatmaps)
        try:
            yield
        finally:
            self._pending = None
