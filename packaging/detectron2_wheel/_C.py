"""Stand-in for Detectron2's compiled extension ``detectron2._C``.

centernet-d2's set-up (``tools/setup_env.sh``) installs Detectron2 as pure Python when no Detectron2
is importable, because its C++/CUDA sources are not on the package index. CenterNet uses none of
those ops. Any code that does call one gets :class:`CppOpUnavailableError` naming the op and the way
to a full build, instead of an ``ImportError`` at import time or a missing-operator error.
"""

import torch

FULL_BUILD_HINT = (
    "This Detectron2 is the pure-Python install made by centernet-d2's tools/setup_env.sh: it has "
    "no compiled C++/CUDA ops, and CenterNet needs none. For this op, install a full build of "
    "Detectron2 from its GitHub repository (python -m pip install "
    "'git+https://github.com/facebookresearch/detectron2.git', which needs a C++ compiler and, for "
    "GPU ops, CUDA), then run tools/setup_env.sh again: it keeps an importable Detectron2 as is."
)


class CppOpUnavailableError(RuntimeError):
    """Raised when a Detectron2 C++/CUDA op is called in the pure-Python install."""


def _unavailable(name):
    return CppOpUnavailableError(f"detectron2 C++ op '{name}' is not available. {FULL_BUILD_HINT}")


def get_compiler_version():  # read by detectron2.utils.collect_env
    return "none (pure-Python install, no compiled ops)"


def get_cuda_version():  # read by detectron2.utils.collect_env
    return "none (pure-Python install, no compiled ops)"


def has_cuda():  # read by detectron2.utils.collect_env
    return False


def __getattr__(name):
    if name.startswith("__"):  # keep import machinery, pickling and introspection working
        raise AttributeError(name)
    raise _unavailable(name)


# Detectron2 calls nms_rotated through the dispatcher (torch.ops.detectron2.nms_rotated), which the
# compiled library would register. Register it here so that the call explains itself.
_LIB = torch.library.Library("detectron2", "FRAGMENT")
try:
    _LIB.define("nms_rotated(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
except RuntimeError:  # already defined by another import of this module
    pass
else:

    def _nms_rotated(dets, scores, iou_threshold):
        raise _unavailable("nms_rotated")

    _LIB.impl("nms_rotated", _nms_rotated, "CompositeExplicitAutograd")
