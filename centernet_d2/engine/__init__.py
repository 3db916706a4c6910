"""Training entry points: :class:`Trainer` and a CPU/GPU :func:`launch`."""

from .launch import launch
from .trainer import Trainer

__all__ = ["Trainer", "launch"]
