"""Evaluators beyond Detectron2's own (COCO datasets use Detectron2's ``COCOEvaluator``)."""

from .pascal_voc import PascalVOCEvaluator

__all__ = ["PascalVOCEvaluator"]
