"""Online tracking with a CenterTrack: :class:`CenterTrackWithTracker`, a wrapper around a trained
:class:`~centernet_d2.modeling.CenterTrack` (as Detectron2's ``GeneralizedRCNNWithTTA`` wraps
an R-CNN) that runs it over the frames of videos in order with a :class:`.tracker.Tracker`.

Per frame the wrapper gives the model the previous frame and the boxes of the tracks matched or
started there (the input heatmap), links the detections to the tracks, and remembers the frame.
"""

from typing import Dict, List, Optional

import torch
from detectron2.config import configurable
from detectron2.structures import Instances
from torch import nn

from .tracker import Tracker, TrackerSettings

__all__ = ["CenterTrackWithTracker", "track_instances"]


def track_instances(tracker: Tracker, instances: Instances) -> Instances:
    """:meth:`.Tracker.step` on Detectron2 ``Instances`` (``pred_boxes``, ``scores``,
    ``pred_classes``, optionally ``pred_displacements``): the detections it outputs, in their
    order, with all their fields and ``pred_track_ids`` (long)."""
    displacements = (
        instances.get("pred_displacements") if instances.has("pred_displacements") else None
    )
    tracked = tracker.step(
        instances.pred_boxes.tensor.detach().cpu().numpy(),
        instances.scores.detach().cpu().numpy(),
        instances.pred_classes.cpu().numpy(),
        None if displacements is None else displacements.detach().cpu().numpy(),
    )
    device = instances.scores.device
    out = instances[torch.as_tensor(tracked.index, device=device)]
    out.pred_track_ids = torch.as_tensor(tracked.track_ids, device=device)
    return out


class CenterTrackWithTracker(nn.Module):
    """A :class:`~centernet_d2.modeling.CenterTrack` run over videos, frame after frame.

    ``forward(batched_inputs)`` takes Detectron2's test inputs ("image", "height", "width") of
    frames in the order of their videos, each with "video_id" and "frame_id" (the dataset dicts
    of :mod:`centernet_d2.data.video` have them), and returns per frame

    * "instances": the tracks of the frame, ``Instances`` with ``pred_boxes``, ``scores``,
      ``pred_classes``, ``pred_displacements`` and ``pred_track_ids`` (:meth:`.Tracker.step`);
    * "detections": the model's detections of the frame (all above its score threshold).

    A new video starts, with new track ids from 1, where "video_id" changes or "frame_id" does
    not increase. An input without "video_id" is a still image: the model sees it alone and
    "instances" are its detections (so still-image datasets evaluate as with the detector).
    """

    @configurable
    def __init__(
        self,
        model: nn.Module,
        *,
        tracker_settings: TrackerSettings = TrackerSettings(),
        prev_heatmap_score: float = TrackerSettings.score_thresh,
    ):
        """
        Args:
            model: a CenterTrack, or a ``CenterNetWithTTA`` around one (the flip test and
                scales of ``TEST.AUG``); its mode is not changed: call ``eval()``.
            tracker_settings: the :class:`.tracker.Tracker`'s.
            prev_heatmap_score: tracks need at least this score to be drawn into the next
                frame's input heatmap (CenterTrack's ``--pre_thresh``).
        """
        super().__init__()
        self.model = model
        self.tracker = Tracker.from_settings(tracker_settings)
        self.prev_heatmap_score = prev_heatmap_score
        self.reset()

    @classmethod
    def from_config(cls, cfg, model):
        return {
            "model": model,
            "tracker_settings": TrackerSettings.from_config(cfg),
            "prev_heatmap_score": cfg.TEST.TRACKING.PREV_HEATMAP_SCORE,
        }

    def reset(self) -> None:
        """Forget the video: the next frame starts a new one."""
        self.tracker.reset()
        self._video = None
        self._frame_id = None
        self._prev_image: Optional[torch.Tensor] = None
        self._prev_size = None  # (height, width) of the previous frame's detections

    def forward(self, batched_inputs: List[Dict]) -> List[Dict[str, Instances]]:
        return [self._frame(x) for x in batched_inputs]  # in order: each needs the one before

    def _frame(self, x: Dict) -> Dict[str, Instances]:
        if "video_id" not in x:
            self.reset()
            return self.model([x])[0]
        frame_id = x.get("frame_id")
        new_video = x["video_id"] != self._video or (
            frame_id is not None and self._frame_id is not None and frame_id <= self._frame_id
        )
        if new_video:
            self.reset()
            self._video = x["video_id"]
        self._frame_id = frame_id
        inputs = dict(x)
        image = x["image"]
        if self._prev_image is not None and self._prev_image.shape == image.shape:
            inputs["prev_image"] = self._prev_image
            inputs["prev_boxes"] = self._prev_boxes(image.shape[1:])
        detections = self.model([inputs])[0]["instances"]
        tracks = track_instances(self.tracker, detections)
        self._prev_image = image
        self._prev_size = detections.image_size
        return {"instances": tracks, "detections": detections}

    def _prev_boxes(self, input_size) -> torch.Tensor:
        """The active tracks scoring at least ``prev_heatmap_score``, (P, 4) XYXY in the pixels
        of the model's input of ``input_size`` (height, width)."""
        tracks = self.tracker.active_tracks(min_score=self.prev_heatmap_score)
        height, width = self._prev_size
        boxes = torch.as_tensor(tracks["boxes"], device=self._prev_image.device)
        scale = boxes.new_tensor([input_size[1] / width, input_size[0] / height]).repeat(2)
        return boxes * scale
