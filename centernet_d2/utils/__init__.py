"""Helpers: pictures (:mod:`.visualize`), numpy box geometry (:mod:`.boxes`, free of PyTorch and
Detectron2, for the deploy side), the command line (:mod:`.cli`). Names load on first use, so that
importing :mod:`.boxes` needs numpy alone."""

import importlib

_LAZY = {name: ".visualize" for name in ("heatmap_overlay", "load_metrics", "plot_training_curves")}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
