"""COCO evaluation of boxes and keypoints: Detectron2's ``COCOEvaluator``, given the keypoint
OKS sigmas of the dataset and, for per-class keypoint sets, the union-layout ground truth."""

import contextlib
import io
from typing import Sequence

from detectron2.data import MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES
from detectron2.evaluation import COCOEvaluator
from pycocotools.coco import COCO

from ..data.keypoints import keypoint_metadata

__all__ = ["build_coco_evaluator", "keypoint_oks_sigmas"]


def keypoint_oks_sigmas(dataset_name: str, sigmas: Sequence[float]) -> Sequence[float]:
    """The OKS sigmas to evaluate ``dataset_name``'s keypoints with: ``sigmas``
    (``TEST.KEYPOINT_OKS_SIGMAS``), which may be empty for COCO's person keypoints only (COCO's
    own sigmas are the default).

    Raises:
        ValueError: no or not one sigma per keypoint for a custom keypoint set.
    """
    names = list(keypoint_metadata(dataset_name).get("keypoint_names") or [])
    if not names:
        raise ValueError(
            f"MODEL.KEYPOINT_ON is set, but dataset {dataset_name!r} has no keypoints to "
            "evaluate (no keypoint_names in its metadata)"
        )
    if sigmas and len(sigmas) != len(names):
        raise ValueError(
            f"TEST.KEYPOINT_OKS_SIGMAS has {len(sigmas)} values, but dataset {dataset_name!r} "
            f"has {len(names)} keypoints: give one sigma per keypoint"
        )
    if not sigmas and names != list(COCO_PERSON_KEYPOINT_NAMES):
        raise ValueError(
            f"TEST.KEYPOINT_OKS_SIGMAS is empty, but dataset {dataset_name!r} has its own "
            f"{len(names)} keypoints ({', '.join(names[:4])}, ...), for which COCO's person "
            "sigmas do not apply: set TEST.KEYPOINT_OKS_SIGMAS to one sigma per keypoint (how "
            "far, relative to the object's size, an annotation may stray; COCO's run from "
            "0.025 for eyes to 0.107 for hips)"
        )
    return list(sigmas)


def build_coco_evaluator(
    dataset_name: str, output_dir: str, keypoints: bool = False, oks_sigmas: Sequence[float] = ()
) -> COCOEvaluator:
    """Detectron2's ``COCOEvaluator`` of ``dataset_name``: box AP, and with ``keypoints``
    keypoint AP (pycocotools' ``COCOeval``) with :func:`keypoint_oks_sigmas`, against the dataset's
    ``keypoint_json_file`` (:func:`centernet_d2.data.load_coco_keypoint_json`: the union layout
    of per-class keypoint sets, which COCO's keypoint evaluation needs, one keypoint count for
    every annotation) when it differs from its ``json_file``."""
    if not keypoints:
        return COCOEvaluator(dataset_name, output_dir=output_dir)
    sigmas = keypoint_oks_sigmas(dataset_name, oks_sigmas)
    # pycocotools' COCOeval: faster-coco-eval's (the fast path of the pure-Python install) reads
    # a ground-truth attribute for keypoints that pycocotools' COCO objects lack
    evaluator = COCOEvaluator(
        dataset_name, output_dir=output_dir, use_fast_impl=False, kpt_oks_sigmas=sigmas
    )
    meta = MetadataCatalog.get(dataset_name)
    union = meta.get("keypoint_json_file")
    if union and union != meta.get("json_file"):
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator._coco_api = COCO(union)  # the ground truth COCOEvaluator evaluates against
    return evaluator
