"""Evaluators beyond Detectron2's own (COCO datasets use Detectron2's ``COCOEvaluator``)."""

from .mot import FrameDetectionsEvaluator, MOTEvaluator, mot_metrics
from .pascal_voc import PascalVOCEvaluator

__all__ = ["FrameDetectionsEvaluator", "MOTEvaluator", "PascalVOCEvaluator", "mot_metrics"]
