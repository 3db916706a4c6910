"""Tracks of a video by an exported CenterTrack, with neither Detectron2 nor the training code:
:class:`DeployTracker` runs the file frame after frame with the project's :class:`Tracker`, as
:class:`~centernet_d2.tracking.CenterTrackWithTracker` runs the PyTorch model."""

import math
from typing import Dict, Optional

import numpy as np

from ..tracking.tracker import Tracker, TrackerSettings
from ..utils.radius import cornernet_code_radii
from .predictor import DeployPredictor

__all__ = ["DeployTracker", "prev_heatmap"]

# CornerNet's gaussian radius at this IoU for the previous frame's boxes (CenterTrack's).
PREV_HEATMAP_MIN_OVERLAP = 0.7


def _radius(width: float, height: float, o: float = PREV_HEATMAP_MIN_OVERLAP) -> int:
    """CornerNet's code's radius (the smallest of its three), truncated, as
    :func:`centernet_d2.modeling.targets.cornernet_paper_radius` for one box."""
    return int(max(min(cornernet_code_radii(width, height, o, math.sqrt)), 0.0))


def prev_heatmap(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    """CenterTrack's previous-frame heatmap of one frame, in numpy: a round gaussian of peak 1
    (sigma = diameter / 6, cut at the radius) per box of area, at its centre's pixel, merged by
    their maximum; :func:`centernet_d2.modeling.centertrack.render_prev_heatmap` (which the
    PyTorch model uses) gives the same.

    Args:
        boxes: (P, 4) XYXY in input pixels.
    Returns:
        (1, 1, height, width) float32 in [0, 1].
    """
    out = np.zeros((height, width), np.float32)
    for x1, y1, x2, y2 in np.asarray(boxes, np.float32).reshape(-1, 4):
        if not (x2 > x1 and y2 > y1):
            continue
        r = _radius(math.ceil(x2 - x1), math.ceil(y2 - y1))
        cx, cy = int(math.floor((x1 + x2) / 2)), int(math.floor((y1 + y2) / 2))
        sigma = np.float32((2 * r + 1) / 6)
        d = np.arange(-r, r + 1, dtype=np.float32)
        g = np.exp(-(d**2) / (2 * sigma**2)).astype(np.float32)
        x0, y0 = max(cx - r, 0), max(cy - r, 0)
        xe, ye = min(cx + r + 1, width), min(cy + r + 1, height)
        if x0 >= xe or y0 >= ye:
            continue
        patch = g[y0 - cy + r : ye - cy + r, None] * g[None, x0 - cx + r : xe - cx + r]
        np.maximum(out[y0:ye, x0:xe], patch, out=out[y0:ye, x0:xe])
    return out[None, None]


class DeployTracker(DeployPredictor):
    """Tracks of the frames of one video, in order, by an exported CenterTrack
    (``tools/export_model.py`` on a tracking config):

        tracker = DeployTracker("output/export/model.onnx")
        for frame in frames:  # (h, w, 3) uint8 BGR
            result = tracker(frame)  # boxes, scores, classes, displacements, track_ids
        tracker.reset()  # before the next video

    Each frame is resized and padded as :class:`DeployPredictor`'s; the model takes it with the
    previous frame and the heatmap of the tracks matched or started there (scoring at least
    ``prev_heatmap_score``); its detections go through :class:`Tracker`. The tracker's settings
    and ``prev_heatmap_score`` are the config's ``TEST.TRACKING``, stored in the file; frames of
    a video keep one size.
    """

    input_names = ("images", "prev_images", "prev_heatmaps")

    def __init__(
        self,
        path: str,
        runtime: Optional[str] = None,
        threads: int = 0,
        score_thresh: Optional[float] = None,
        tracker_settings: Optional[TrackerSettings] = None,
        prev_heatmap_score: Optional[float] = None,
    ):
        """
        Args:
            path, runtime, threads, score_thresh: of :class:`DeployPredictor`.
            tracker_settings, prev_heatmap_score: default: the file's (``TEST.TRACKING``).
        """
        super().__init__(path, runtime, threads, score_thresh)
        stored = self.metadata.get("tracking") or {}
        if tracker_settings is None:
            tracker_settings = TrackerSettings(**stored.get("settings", {}))
        if prev_heatmap_score is None:
            prev_heatmap_score = stored.get("prev_heatmap_score", tracker_settings.score_thresh)
        self.tracker = Tracker.from_settings(tracker_settings)
        self.prev_heatmap_score = prev_heatmap_score
        self.reset()

    def reset(self) -> None:
        """Forget the video: the next frame starts a new one, track ids from 1."""
        self.tracker.reset()
        self._prev: Optional[np.ndarray] = None

    def __call__(self, frame: np.ndarray) -> Dict[str, np.ndarray]:
        """The tracks of the next frame, an (h, w, 3) uint8 BGR image: "boxes" (K, 4) XYXY,
        "scores", "classes", "displacements" (K, 2; to the centre in the previous frame) in the
        frame's pixels and "track_ids" (K,), the detections the tracker matched or started."""
        x, scale = self.preprocess(frame)
        if self._prev is not None and self._prev.shape != x.shape:
            raise ValueError(
                f"frame of {frame.shape[:2]} after frames of another size: call reset() "
                "between videos"
            )
        prev = x if self._prev is None else self._prev
        tracks = self.tracker.active_tracks(self.prev_heatmap_score)
        boxes = np.zeros((0, 4), np.float32) if tracks is None else tracks["boxes"]
        heatmap = prev_heatmap(boxes, *x.shape[2:])
        outputs = self.model(images=x, prev_images=prev, prev_heatmaps=heatmap)
        outputs = {k: v[0] for k, v in outputs.items()}
        keep = outputs["scores"] >= self.score_thresh
        detections = {k: v[keep] for k, v in outputs.items()}
        tracked = self.tracker.step(
            detections["boxes"],
            detections["scores"],
            detections["classes"],
            detections["displacements"],
        )
        self._prev = x
        result = {k: v[tracked.index] for k, v in detections.items()}
        result["track_ids"] = tracked.track_ids
        return self.to_image_pixels(result, scale, frame.shape)
