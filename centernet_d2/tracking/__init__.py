"""Tracking by linking detections over frames (CenterTrack, "Tracking Objects as Points"): the
online :class:`Tracker` and :class:`CenterTrackWithTracker` (a CenterTrack run over videos in
order); frame by frame, for applications: :class:`centernet_d2.engine.predictor.CenterTrackPredictor`.
"""

from .inference import CenterTrackWithTracker
from .tracker import MATCH_BY, Tracker, TrackerSettings, greedy_assignment

__all__ = [
    "MATCH_BY",
    "CenterTrackWithTracker",
    "Tracker",
    "TrackerSettings",
    "greedy_assignment",
]
