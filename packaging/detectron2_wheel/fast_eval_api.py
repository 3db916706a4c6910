"""Stand-in for Detectron2's ``detectron2/evaluation/fast_eval_api.py`` in the pure-Python install.

Detectron2's fast COCO evaluation (``COCOEvaluator(use_fast_impl=True)``, its default) runs
``COCOeval``'s per-image matching and accumulation in its compiled ``_C`` extension, which
centernet-d2's pure-Python install (``tools/setup_env.sh``) does not have. ``faster-coco-eval``
ships the same C++ algorithm as a wheel; its ``COCOeval_faster`` takes the pycocotools ``COCO``
objects Detectron2 builds and gives pycocotools' numbers (centernet-d2's
``tests/test_detectron2_install.py`` compares both to 1e-4).
"""

try:
    from faster_coco_eval.core.faster_eval_api import COCOeval_faster
except ImportError as e:  # pragma: no cover - a dependency of this wheel
    raise ImportError(
        "Detectron2's fast COCO evaluation in this pure-Python install uses faster-coco-eval: "
        f"pip install faster-coco-eval ({e})"
    ) from e

__all__ = ["COCOeval_opt"]


class COCOeval_opt(COCOeval_faster):
    """``pycocotools.cocoeval.COCOeval`` with ``evaluate()`` and ``accumulate()`` in C++
    (faster-coco-eval's, in place of Detectron2's compiled ones)."""
