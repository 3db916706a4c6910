"""Tracking by linking detections over frames (CenterTrack, "Tracking Objects as Points"): the
online :class:`Tracker`, :class:`CenterTrackWithTracker` (a CenterTrack run over videos in order)
and :class:`CenterTrackPredictor` (frame by frame, for applications)."""

from .inference import CenterTrackWithTracker
from .predictor import CenterTrackPredictor
from .tracker import MATCH_BY, Tracker, TrackerSettings, greedy_assignment

__all__ = [
    "MATCH_BY",
    "CenterTrackPredictor",
    "CenterTrackWithTracker",
    "Tracker",
    "TrackerSettings",
    "greedy_assignment",
]
