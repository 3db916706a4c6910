"""``CenterNetPredictor``: Detectron2's ``DefaultPredictor`` that can also return the heatmap."""

from typing import Dict, Optional, Tuple
from unittest import mock

import numpy as np
import torch
from detectron2.data import MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.engine import defaults as d2_defaults
from detectron2.utils.visualizer import ColorMode, Visualizer

from ..utils.visualize import heatmap_overlay
from .checkpoint import SafeCheckpointer

__all__ = ["CenterNetPredictor"]


class CenterNetPredictor(DefaultPredictor):
    """``DefaultPredictor`` (one BGR/RGB image per call, per ``INPUT.FORMAT``) plus pictures.

    ``predictor(image)`` returns ``{"instances": Instances}`` in the image's size, as Detectron2's
    predictor does; :meth:`predict_with_heatmap` also returns the class heatmap of that forward.
    """

    def __init__(self, cfg):
        with mock.patch.object(d2_defaults, "DetectionCheckpointer", SafeCheckpointer):
            super().__init__(cfg)
        self.metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__none")
        self._captured: Optional[Dict[str, torch.Tensor]] = None
        self.model.head.register_forward_hook(self._capture)

    def _capture(self, module, inputs, outputs):
        self._captured = outputs

    def predict_with_heatmap(self, original_image: np.ndarray) -> Tuple[Dict, torch.Tensor, Tuple]:
        """
        Returns:
            predictions: ``{"instances": Instances}``.
            heatmap: (K, h, w) probabilities on the model's output grid.
            input_size: (height, width) of the resized image the model saw.
        """
        predictions = self(original_image)
        heatmap = torch.sigmoid(self._captured["heatmap"][0].float())
        resize = self.aug.get_transform(original_image)  # computes the size, resizes nothing
        h, w = original_image.shape[:2]
        input_size = (getattr(resize, "new_h", h), getattr(resize, "new_w", w))
        return predictions, heatmap, input_size

    def draw(self, image_rgb: np.ndarray, predictions: Dict) -> np.ndarray:
        """The predictions drawn by Detectron2's ``Visualizer`` on an RGB image."""
        v = Visualizer(image_rgb, self.metadata, instance_mode=ColorMode.IMAGE)
        out = v.draw_instance_predictions(predictions["instances"].to("cpu"))
        return out.get_image()

    def draw_heatmap(self, image_rgb: np.ndarray, heatmap: torch.Tensor, input_size) -> np.ndarray:
        """The heatmap (max over classes) blended onto an RGB image."""
        return heatmap_overlay(image_rgb, heatmap, self.model.stride, input_size=input_size)
