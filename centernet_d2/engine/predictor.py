"""``CenterNetPredictor``: Detectron2's ``DefaultPredictor`` that can also return the heatmap;
``CenterTrackPredictor``: the same for the frames of a video, with track ids."""

import os
from typing import Dict, Sequence, Tuple, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.data import Metadata, MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model
from detectron2.structures import Instances

from ..data.augmentation import ResizeShortestEdge
from ..data.image_io import read_image
from ..modeling.centertrack import CenterTrack
from ..modeling.tta import CenterNetWithTTA
from ..tracking.inference import CenterTrackWithTracker
from .checkpoint import SafeCheckpointer

__all__ = ["CenterNetPredictor", "CenterTrackPredictor", "class_metadata"]


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
        """:meth:`__call__` and the heatmap its detections were decoded from, from the same run
        of the network (with test-time augmentation: the flip-merged heatmap of the first scale,
        cut to the image where a test canvas surrounds it, to the cell).

        Returns:
            predictions: ``{"instances": Instances}`` in the image's size.
            heatmap: (K, h, w) probabilities on the detector's output grid, its top-left cell at
                the image's top-left corner.
            input_size: (height, width) of the image in the network's input.
        """
        original_image = self.as_image(original_image)
        image = original_image[:, :, ::-1] if self.input_format == "RGB" else original_image
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        with torch.no_grad():
            (result,), predictions = self.model.detect(
                [{"image": tensor, "height": height, "width": width}]
            )
        heatmap = torch.sigmoid(self.detector.finest_heatmap(predictions)[0].float())
        input_size = tuple(resized.shape[:2])
        if "view_sizes" in predictions:  # the TTA wrapper's first view
            input_size = tuple(predictions["view_sizes"][0].tolist())
            x, y = (predictions["view_offsets"][0] // self.detector.stride).tolist()
            heatmap = heatmap[:, y:, x:]
        return result, heatmap, input_size


class CenterTrackPredictor(CenterNetPredictor):
    """A :class:`~centernet_d2.engine.predictor.CenterNetPredictor` for a CenterTrack config
    (weights loaded from ``MODEL.WEIGHTS``, class names from the config or the checkpoint) whose
    calls are the frames of one video, in order:

    ``predictor(frame)`` takes a BGR frame (as ``cv2.VideoCapture`` reads it) or an image file
    and returns ``{"instances": tracks, "detections": detections}`` in the frame's size, as
    :class:`~centernet_d2.tracking.CenterTrackWithTracker` (``TEST.TRACKING``): the tracks have
    ``pred_track_ids``. :meth:`reset` before the frames of another video.
    """

    def __init__(self, cfg: CfgNode):
        super().__init__(cfg)
        if not isinstance(self.detector, CenterTrack):
            raise ValueError(
                "CenterTrackPredictor needs MODEL.META_ARCHITECTURE 'CenterTrack' (a tracking "
                f"config), got {cfg.MODEL.META_ARCHITECTURE!r}"
            )
        self.model = CenterTrackWithTracker(cfg, self.model)  # the detector or its TTA
        self._frame_id = 0

    def reset(self) -> None:
        """The next frame starts a new video (track ids from 1 again)."""
        self.model.reset()
        self._frame_id = 0

    def __call__(self, frame: Union[np.ndarray, str, os.PathLike]) -> Dict[str, Instances]:
        frame = self.as_image(frame)
        image = frame[:, :, ::-1] if self.input_format == "RGB" else frame
        height, width = image.shape[:2]
        resized = self.aug.get_transform(image).apply_image(image)
        self._frame_id += 1
        inputs = {
            "image": torch.as_tensor(resized.astype("float32").transpose(2, 0, 1)),
            "height": height,
            "width": width,
            "video_id": 0,
            "frame_id": self._frame_id,
        }
        with torch.no_grad():
            return self.model([inputs])[0]
