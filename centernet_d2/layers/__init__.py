"""Layers used by several of our modules, in the manner of ``detectron2.layers``."""

from .deform_conv import ModulatedDeformConv2d, modulated_deform_conv2d

__all__ = ["ModulatedDeformConv2d", "modulated_deform_conv2d"]
