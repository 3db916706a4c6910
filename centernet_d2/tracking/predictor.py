"""``CenterTrackPredictor``: track objects through a video, one BGR frame per call."""

import os
from typing import Dict, Union

import numpy as np
import torch
from detectron2.config import CfgNode
from detectron2.structures import Instances

from ..engine.predictor import CenterNetPredictor
from ..modeling.tracking import CenterTrack
from .inference import CenterTrackWithTracker

__all__ = ["CenterTrackPredictor"]


class CenterTrackPredictor(CenterNetPredictor):
    """A :class:`~centernet_d2.engine.predictor.CenterNetPredictor` for a CenterTrack config
    (weights loaded from ``MODEL.WEIGHTS``, class names from the config or the checkpoint) whose
    calls are the frames of one video, in order:

    ``predictor(frame)`` takes a BGR frame (as ``cv2.VideoCapture`` reads it) or an image file
    and returns ``{"instances": tracks, "detections": detections}`` in the frame's size, as
    :class:`.inference.CenterTrackWithTracker` (``TEST.TRACKING``): the tracks have
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
