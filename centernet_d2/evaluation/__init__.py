"""Evaluators beyond Detectron2's own (COCO datasets use Detectron2's ``COCOEvaluator``, built
by :func:`build_coco_evaluator` for keypoints)."""

from .analysis import DetectionAnalysis, analyze_detections
from .coco import build_coco_evaluator, keypoint_oks_sigmas
from .mot import FrameDetectionsEvaluator, MOTEvaluator, mot_metrics
from .mot_files import evaluate_mot_results, read_mot_results, write_mot_results
from .pascal_voc import PascalVOCEvaluator

__all__ = [
    "DetectionAnalysis",
    "FrameDetectionsEvaluator",
    "MOTEvaluator",
    "PascalVOCEvaluator",
    "analyze_detections",
    "build_coco_evaluator",
    "evaluate_mot_results",
    "keypoint_oks_sigmas",
    "mot_metrics",
    "read_mot_results",
    "write_mot_results",
]
