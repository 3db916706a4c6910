"""Tracking by linking detections over frames (CenterTrack, "Tracking Objects as Points"): the
online :class:`Tracker` (numpy alone, also on the deploy side) and, with Detectron2,
:class:`CenterTrackWithTracker` (a CenterTrack run over videos in order) and
:func:`track_instances`; frame by frame, for applications:
:class:`centernet_d2.engine.predictor.CenterTrackPredictor`.
"""

import importlib

from .tracker import MATCH_BY, TrackedDetections, Tracker, TrackerSettings, greedy_assignment

_WITH_DETECTRON2 = ("CenterTrackWithTracker", "track_instances")  # in .inference, loaded on use

__all__ = [
    "MATCH_BY",
    "CenterTrackWithTracker",
    "TrackedDetections",
    "Tracker",
    "TrackerSettings",
    "greedy_assignment",
    "track_instances",
]


def __getattr__(name):
    if name in _WITH_DETECTRON2:
        return getattr(importlib.import_module(".inference", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
