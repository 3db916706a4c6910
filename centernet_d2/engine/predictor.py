"""``CenterNetPredictor``: Detectron2's ``DefaultPredictor`` that can also return the heatmap."""

import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata, MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.utils.visualizer import ColorMode, Visualizer

from ..data.augmentation import ResizeShortestEdge
from ..data.image_io import read_image
from ..utils.visualize import heatmap_overlay
from .checkpoint import SafeCheckpointer

__all__ = ["CenterNetPredictor", "class_metadata"]


def class_metadata(cfg: CfgNode, class_names: Sequence[str] = ()) -> Metadata:
    """The metadata pictures are drawn with: that of ``DATASETS.TEST[0]`` if it names the
    classes, else a ``Metadata`` with ``class_names`` (the model's, e.g. from its checkpoint)."""
    name = cfg.DATASETS.TEST[0] if cfg.DATASETS.TEST else "__centernet_unnamed"
    metadata = MetadataCatalog.get(name)
    if metadata.get("thing_classes") or not class_names:
        return metadata
    return Metadata(name=name, thing_classes=list(class_names))


class CenterNetPredictor(DefaultPredictor):
    """``DefaultPredictor`` (one BGR/RGB image per call, per ``INPUT.FORMAT``) plus pictures.

    ``predictor(image)`` returns ``{"instances": Instances}`` in the image's size, as Detectron2's
    predictor does; :meth:`predict_with_heatmap` also returns the class heatmap of that forward.
    ``image`` may also be a file path, read with :func:`centernet_d2.data.read_image` (grey,
    palette, RGBA and 16-bit files become 3-channel uint8; a missing or unreadable file raises an
    error naming it). Images of extreme aspect ratio (1 x 1000 pixels) work: the resize keeps
    every side at least 1 pixel (:class:`centernet_d2.data.augmentation.ResizeShortestEdge`).
    """

    def __init__(self, cfg: CfgNode):
        # DefaultPredictor's attributes, built as it builds them, with the checkpointer and
        # resize of centernet_d2; its __call__ is used as is
        self.cfg = cfg.clone()
        self.model = build_model(self.cfg)
        self.model.eval()
        SafeCheckpointer(self.model).load(cfg.MODEL.WEIGHTS)
        # Detectron2's resize, but never to a side of 0 pixels
        self.aug = ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        self.input_format = cfg.INPUT.FORMAT
        assert self.input_format in ["RGB", "BGR"], self.input_format
        self.metadata = class_metadata(cfg, getattr(self.model, "class_names", ()))
        self._captured: Optional[Dict[str, torch.Tensor]] = None
        self.model.head.register_forward_hook(self._capture)

    def _capture(self, module, inputs, outputs):
        self._captured = outputs

    def as_image(self, image: Union[np.ndarray, str, os.PathLike]) -> np.ndarray:
        """``image`` as the (H, W, 3) array in ``INPUT.FORMAT`` that the predictor takes: a file
        path is read with :func:`centernet_d2.data.read_image`, an array is checked."""
        if isinstance(image, (str, os.PathLike)):
            return read_image(os.fspath(image), format=self.input_format)
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            got = image.shape if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(
                f"CenterNetPredictor takes an (H, W, 3) image in INPUT.FORMAT "
                f"({self.input_format}) or a file path, got {got}; read grey, RGBA or 16-bit "
                "files with centernet_d2.data.read_image"
            )
        return image

    def __call__(self, original_image: Union[np.ndarray, str, os.PathLike]) -> Dict:
        return super().__call__(self.as_image(original_image))

    def predict_with_heatmap(self, original_image: np.ndarray) -> Tuple[Dict, torch.Tensor, Tuple]:
        """
        Returns:
            predictions: ``{"instances": Instances}``.
            heatmap: (K, h, w) probabilities on the model's output grid.
            input_size: (height, width) of the resized image the model saw.
        """
        original_image = self.as_image(original_image)
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
