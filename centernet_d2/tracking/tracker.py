"""CenterTrack's online tracker ("Tracking Objects as Points", Zhou, Koltun and Krähenbühl 2020,
section 4.2): detections of each frame are linked to the tracks of the frame before.

A detection at centre ``c`` with a predicted displacement ``d`` (the model's offset from its
centre in this frame to its centre in the previous frame) is looked for at ``c + d``; it is
linked to a track centre of its class no farther than ``sqrt`` of both the track's and the
detection's box area: the detections in descending score, each to the nearest track left (the
paper's greedy matching, "in descending order of confidence"). Unlinked detections above
``new_track_score`` start tracks; a track left unmatched is kept, moving at its last velocity,
for ``max_age`` frames, and may be matched again meanwhile; a kept (lost) track is not output.
``match_by="iou"`` links by box IoU instead, without displacements, the paper's IoU ablation.

With ``second_stage`` (ByteTrack's association, Zhang et al. 2022, run on CenterTrack's detections
in its paper), the detections scoring above ``low_score_thresh`` but not above ``score_thresh``
are linked to the tracks of the previous frame that the first stage left unmatched, by the IoU
(at least ``second_iou``) of the detection's box moved by its displacement and the track's box:
a partly hidden object's weak detection continues its track. They never start one.

Shape shorthand: D detections of a frame, T tracks kept from the previous frame (active and lost),
P linked pairs. Boxes are XYXY in input pixels. numpy only: the tracker runs on the deploy side,
without PyTorch or Detectron2.

Differences from CenterTrack's ``Tracker`` (``src/lib/utils/tracker.py``):

* its ``max_age`` counts the matched frame too: CenterTrack's ``--max_age k`` is ``max_age =
  k - 1`` here (its default, -1, keeps no lost track: 0 here);
* a lost track moves at its velocity (its centre's motion over its last matched frame); the code
  released with the paper keeps it in place (``v = [0, 0]``), a path its published experiments
  never take (``--max_age`` -1).
"""

import dataclasses
from typing import Dict, NamedTuple, Optional

import numpy as np

from ..utils.boxes import box_areas, box_centers, box_iou

__all__ = ["MATCH_BY", "TrackedDetections", "Tracker", "TrackerSettings", "greedy_assignment"]

MATCH_BY = ("displacement", "iou")


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    """
    Settings of a :class:`Tracker`; invalid values raise ``ValueError`` naming the field.

    Attributes:
        match_by: one of :data:`MATCH_BY`: "displacement" (CenterTrack: centre distance after the
            predicted displacement, limited by the box sizes) or "iou" (box IoU of the detection
            and the track's last box, no displacement).
        score_thresh: detections scoring above this are linked in the first stage (CenterTrack's
            ``--track_thresh``); lower ones are dropped, but for the second stage.
        new_track_score: an unmatched detection starts a track if its score is above this
            (CenterTrack's ``--new_thresh``); lower unmatched detections are not output.
        max_age: frames a track may stay unmatched and still be matched later; 0 ends a track in
            the first frame without a match.
        min_iou: the least IoU of a pair with ``match_by="iou"``.
        second_stage: link the detections scoring in (``low_score_thresh``, ``score_thresh``] to
            the tracks of the previous frame left unmatched by the first stage (ByteTrack).
        low_score_thresh: the second stage's lower score bound, below ``score_thresh``.
        second_iou: the least IoU of a second-stage pair: the detection's box moved by its
            displacement (with ``match_by="displacement"``) and the track's box (ByteTrack: 0.5).
    """

    match_by: str = "displacement"
    score_thresh: float = 0.3
    new_track_score: float = 0.3
    max_age: int = 0
    min_iou: float = 0.3
    second_stage: bool = False
    low_score_thresh: float = 0.1
    second_iou: float = 0.5

    @classmethod
    def from_config(cls, cfg) -> "TrackerSettings":
        """The settings of a config's ``TEST.TRACKING``."""
        k = cfg.TEST.TRACKING
        return cls(
            match_by=k.MATCH_BY,
            score_thresh=k.SCORE_THRESH,
            new_track_score=k.NEW_TRACK_SCORE,
            max_age=k.MAX_AGE,
            min_iou=k.MIN_IOU,
            second_stage=k.SECOND_STAGE,
            low_score_thresh=k.LOW_SCORE_THRESH,
            second_iou=k.SECOND_STAGE_MIN_IOU,
        )

    def __post_init__(self):
        if self.match_by not in MATCH_BY:
            raise ValueError(f"match_by must be one of {MATCH_BY}, got {self.match_by!r}")
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0:
            raise ValueError(f"max_age must be an int >= 0, got {self.max_age!r}")
        for name in ("min_iou", "second_iou"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if self.new_track_score < self.score_thresh:
            raise ValueError(
                f"new_track_score ({self.new_track_score}) must be >= score_thresh "
                f"({self.score_thresh}): detections below score_thresh never reach matching"
            )
        if self.second_stage and not self.low_score_thresh < self.score_thresh:
            raise ValueError(
                f"low_score_thresh ({self.low_score_thresh}) must be below score_thresh "
                f"({self.score_thresh}) for the second stage to see any detection"
            )


class TrackedDetections(NamedTuple):
    """What :meth:`Tracker.step` outputs of a frame's D detections."""

    index: np.ndarray  # (K,) int64: the detections output (matched or new), ascending
    track_ids: np.ndarray  # (K,) int64: their track ids


def greedy_assignment(cost: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """
    CenterTrack's greedy matching: row after row, each row takes the valid column of least cost
    that no earlier row took (ties: the first such column); a row without one stays unmatched.

    Args:
        cost: (D, T) float; not modified.
        valid: (D, T) bool; only these pairs may be matched.

    Returns:
        (P, 2) int64: ``[row, column]`` of each pair, rows ascending.
    """
    assert cost.shape == valid.shape and cost.ndim == 2, (cost.shape, valid.shape)
    cost = np.where(valid, cost, np.inf)  # a copy
    pairs = []
    if cost.shape[1]:
        for row in range(cost.shape[0]):  # sequential: each row depends on the rows before
            col = int(cost[row].argmin())
            if np.isfinite(cost[row, col]):
                pairs.append((row, col))
                cost[:, col] = np.inf
    return np.asarray(pairs, dtype=np.int64).reshape(-1, 2)


class Tracker:
    """
    CenterTrack's online tracker, one video at a time: :meth:`step` on each frame in order,
    :meth:`reset` before the next video. Its state is the previous frame's tracks; track ids are
    1, 2, ... in the order the tracks start, anew after :meth:`reset`.
    """

    def __init__(self, settings: Optional[TrackerSettings] = None, **fields):
        """
        Args:
            settings: default ``TrackerSettings()``.
            fields: fields of :class:`TrackerSettings` to set instead, e.g. ``max_age=10``.
        """
        self.settings = dataclasses.replace(settings or TrackerSettings(), **fields)
        self.reset()

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> "Tracker":
        return cls(settings)

    def reset(self) -> None:
        """Forget all tracks (a new video); ids start at 1 again."""
        self._next_id = 1
        self._started = False
        self._boxes = np.zeros((0, 4), np.float32)  # (T, 4) last box; lost ones moved on
        self._scores = np.zeros(0, np.float32)  # (T,) score of the last matched detection
        self._classes = np.zeros(0, np.int64)  # (T,)
        self._ids = np.zeros(0, np.int64)  # (T,)
        self._lost = np.zeros(0, np.int64)  # (T,) frames since the last match
        self._velocity = np.zeros((0, 2), np.float32)  # (T, 2) centre motion per frame

    @property
    def num_tracks(self) -> int:
        """Tracks kept for the next frame, active and lost."""
        return len(self._ids)

    def step(
        self,
        boxes: np.ndarray,
        scores: np.ndarray,
        classes: np.ndarray,
        displacements: Optional[np.ndarray] = None,
    ) -> TrackedDetections:
        """
        Link one frame's detections to the tracks and update the tracks.

        Args:
            boxes: (D, 4) XYXY, input pixels.
            scores: (D,).
            classes: (D,) int.
            displacements: (D, 2) previous centre minus current centre, input pixels, used with
                ``match_by="displacement"`` (without them the current centres are matched).

        Returns:
            The detections matched or starting a track, and their track ids.
        """
        s = self.settings
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
        scores = np.asarray(scores, np.float32).reshape(-1)
        classes = np.asarray(classes, np.int64).reshape(-1)
        shift = np.zeros((len(boxes), 2), np.float32)  # to where each was in the previous frame
        if displacements is not None and s.match_by == "displacement":
            shift = np.asarray(displacements, np.float32).reshape(-1, 2)
        track_of = np.full(len(boxes), -1, np.int64)  # (D,) the matched track's index

        first = np.flatnonzero(scores > s.score_thresh)
        free = np.ones(self.num_tracks, bool)
        by_iou = s.match_by == "iou"
        self._link(first, np.flatnonzero(free), boxes, shift, scores, classes, track_of, by_iou)
        if s.second_stage:
            free[track_of[track_of >= 0]] = False
            low = np.flatnonzero((scores > s.low_score_thresh) & (scores <= s.score_thresh))
            active = np.flatnonzero(free & (self._lost == 0))  # ByteTrack: not the lost tracks
            self._link(low, active, boxes, shift, scores, classes, track_of, True, s.second_iou)

        matched = np.flatnonzero(track_of >= 0)
        track_ids = np.full(len(boxes), -1, np.int64)
        track_ids[matched] = self._ids[track_of[matched]]
        new = first[track_of[first] < 0]
        new = new[scores[new] > s.new_track_score]
        track_ids[new] = np.arange(self._next_id, self._next_id + len(new))
        self._next_id += len(new)
        self._update(boxes, scores, classes, track_ids, track_of)
        index = np.flatnonzero(track_ids >= 0)
        return TrackedDetections(index, track_ids[index])

    def _link(
        self, dets, tracks, boxes, shift, scores, classes, track_of, by_iou, min_iou=None
    ) -> None:
        """Match detections ``dets`` (indices) to tracks ``tracks`` (indices), greedily in
        descending score, and write the pairs into ``track_of``: with ``by_iou`` by the IoU
        (at least ``min_iou``, default ``min_iou`` of the settings) of each detection's box moved
        by ``shift`` (D, 2) and the track's box, else by CenterTrack's centre distance after
        ``shift``."""
        if not len(dets) or not len(tracks):
            return
        same_class = classes[dets][:, None] == self._classes[tracks][None, :]  # (D, T)
        moved = boxes[dets] + np.tile(shift[dets], 2)
        if by_iou:
            iou = box_iou(moved, self._boxes[tracks])
            min_iou = self.settings.min_iou if min_iou is None else min_iou
            cost, valid = -iou, same_class & (iou >= min_iou)
        else:
            # squared distances against areas: dist <= sqrt(area) of both boxes, as CenterTrack
            track_centers = box_centers(self._boxes[tracks])
            cost = ((box_centers(moved)[:, None, :] - track_centers[None, :, :]) ** 2).sum(2)
            valid = same_class & (cost <= box_areas(self._boxes[tracks])[None, :])
            valid &= cost <= box_areas(boxes[dets])[:, None]
        order = np.argsort(-scores[dets], kind="stable")  # (D,)
        pairs = greedy_assignment(cost[order], valid[order])
        track_of[dets[order[pairs[:, 0]]]] = tracks[pairs[:, 1]]

    def _update(self, boxes, scores, classes, track_ids, track_of) -> None:
        """The next frame's tracks: the matched and new ones (lost 0), then the unmatched tracks
        kept for up to ``max_age`` frames, moved by their velocity."""
        linked = np.flatnonzero(track_ids >= 0)
        velocity = np.zeros((len(boxes), 2), np.float32)
        matched = track_of >= 0
        velocity[matched] = box_centers(boxes[matched]) - box_centers(
            self._boxes[track_of[matched]]
        )
        kept = np.ones(self.num_tracks, bool)
        kept[track_of[matched]] = False
        kept &= self._lost < self.settings.max_age
        moved = self._boxes[kept] + np.tile(self._velocity[kept], 2)
        self._boxes = np.concatenate([boxes[linked], moved]).astype(np.float32)
        self._scores = np.concatenate([scores[linked], self._scores[kept]])
        self._classes = np.concatenate([classes[linked], self._classes[kept]])
        self._ids = np.concatenate([track_ids[linked], self._ids[kept]])
        self._lost = np.concatenate([np.zeros(len(linked), np.int64), self._lost[kept] + 1])
        self._velocity = np.concatenate([velocity[linked], self._velocity[kept]])
        self._started = True

    def active_tracks(self, min_score: float = 0.0) -> Optional[Dict[str, np.ndarray]]:
        """
        What a tracking model takes from the previous frame: the tracks matched or started in
        the last :meth:`step` (not the lost ones) with a score of at least ``min_score``
        (CenterTrack's ``--pre_thresh``).

        Returns:
            "boxes" (A, 4) XYXY, input pixels, "scores", "classes", "track_ids"; None before
            the first frame of a video.
        """
        if not self._started:
            return None
        keep = (self._lost == 0) & (self._scores >= min_score)
        return {
            "boxes": self._boxes[keep].copy(),
            "scores": self._scores[keep].copy(),
            "classes": self._classes[keep].copy(),
            "track_ids": self._ids[keep].copy(),
        }
