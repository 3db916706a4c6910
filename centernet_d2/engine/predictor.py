"""``CenterNetPredictor``: Detectron2's ``DefaultPredictor`` that can also return the heatmap."""

import os
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata, MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess

from ..data.augmentation import ResizeShortestEdge
from ..data.image_io import read_image
from ..modeling.tta import CenterNetWithTTA
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
    """``DefaultPredictor`` (one BGR image per call, as Detectron2's) that also returns heatmaps.

    ``predictor(image)`` returns ``{"instances": Instances}`` in the image's size, as Detectron2's
    predictor does, with test-time augmentation (:class:`CenterNetWithTTA`) when
    ``TEST.AUG.ENABLED`` and on the test canvas of ``INPUT.CENTERNET.TEST_CANVAS``; :meth:`predict_with_heatmap` also returns the class heatmap. Drawing is
    left to the caller (``tools/demo.py``, :mod:`centernet_d2.utils.visualize`).
    ``image`` may also be a file path, read with :func:`centernet_d2.data.read_image` (grey,
    palette, RGBA and 16-bit files become 3-channel uint8; a missing or unreadable file raises an
    error naming it). Images of extreme aspect ratio (1 x 1000 pixels) work: the resize keeps
    every side at least 1 pixel (:class:`centernet_d2.data.augmentation.ResizeShortestEdge`).
    """

    def __init__(self, cfg: CfgNode):
        # DefaultPredictor's attributes, built as it builds them, with the checkpointer and
        # resize of centernet_d2 and, for TEST.AUG.ENABLED, the TTA wrapper; its __call__ is
        # used as is
        self.cfg = cfg.clone()
        self.detector = build_model(self.cfg)
        self.detector.eval()
        SafeCheckpointer(self.detector).load(cfg.MODEL.WEIGHTS)
        wrapped = cfg.TEST.AUG.ENABLED or cfg.INPUT.CENTERNET.TEST_CANVAS
        self.model = CenterNetWithTTA(cfg, self.detector) if wrapped else self.detector
        # Detectron2's resize, but never to a side of 0 pixels
        self.aug = ResizeShortestEdge(
            [cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MIN_SIZE_TEST], cfg.INPUT.MAX_SIZE_TEST
        )
        self.input_format = cfg.INPUT.FORMAT
        assert self.input_format in ["RGB", "BGR"], self.input_format
        self.metadata = class_metadata(cfg, self.detector.class_names)

    def as_image(self, image: Union[np.ndarray, str, os.PathLike]) -> np.ndarray:
        """``image`` as the (H, W, 3) BGR array that the predictor takes, as Detectron2's (it
        turns it into ``INPUT.FORMAT`` itself): a file path is read with
        :func:`centernet_d2.data.read_image`, an array is checked."""
        if isinstance(image, (str, os.PathLike)):
            return read_image(os.fspath(image), format="BGR")
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            got = image.shape if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(
                f"CenterNetPredictor takes an (H, W, 3) BGR image (as cv2.imread reads it) or a "
                f"file path, got {got}; read grey, RGBA or 16-bit files with "
                "centernet_d2.data.read_image(path, format='BGR')"
            )
        return image

    def __call__(self, original_image: Union[np.ndarray, str, os.PathLike]) -> Dict:
        return super().__call__(self.as_image(original_image))

    def predict_with_heatmap(
        self, original_image: Union[np.ndarray, str, os.PathLike]
    ) -> Tuple[Dict, torch.Tensor, Tuple[int, int]]:
        """:meth:`__call__` and the heatmap of the detector's network on the resized image
        (without test-time augmentation, which runs the network on several views).

        Returns:
            predictions: ``{"instances": Instances}`` in the image's size.
            heatmap: (K, h, w) probabilities on the detector's output grid.
            input_size: (height, width) of the resized image the network saw.
        """
        original_image = self.as_image(original_image)
        image = original_image[:, :, ::-1] if self.input_format == "RGB" else original_image
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        with torch.no_grad():
            images = self.detector.preprocess_image([{"image": tensor}])
            predictions = self.detector.run_network(images.tensor)
            if self.model is self.detector:
                (instances,) = self.detector.inference(images, predictions)
                result = {"instances": detector_postprocess(instances, height, width)}
            else:
                result = self(original_image)
        heatmap = predictions["heatmap"]
        if self.detector.multilevel:  # the finest level, of stride self.detector.stride
            heatmap = heatmap[0]
        heatmap = torch.sigmoid(heatmap[0].float())
        return result, heatmap, tuple(resized.shape[:2])
