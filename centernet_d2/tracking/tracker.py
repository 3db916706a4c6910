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

Shape shorthand: D detections of the current frame (above ``score_thresh``), T tracks kept from
the previous frame (active and lost), P linked pairs. Boxes are XYXY in input pixels.

Differences from CenterTrack's ``Tracker`` (``src/lib/utils/tracker.py``):

* its ``max_age`` counts the matched frame too: CenterTrack's ``--max_age k`` is ``max_age =
  k - 1`` here (its default, -1, keeps no lost track: 0 here);
* a lost track moves at its velocity (its centre's motion over its last matched frame); the code
  released with the paper keeps it in place (``v = [0, 0]``), a path its published experiments
  never take (``--max_age`` -1).
"""

import dataclasses
from typing import Optional, Tuple

import torch
from detectron2.structures import Boxes, Instances, pairwise_iou

__all__ = ["MATCH_BY", "Tracker", "TrackerSettings", "greedy_assignment"]

MATCH_BY = ("displacement", "iou")


@dataclasses.dataclass(frozen=True)
class TrackerSettings:
    """
    Settings of a :class:`Tracker`; invalid values raise ``ValueError`` naming the field.

    Attributes:
        match_by: one of :data:`MATCH_BY`: "displacement" (CenterTrack: centre distance after the
            predicted displacement, limited by the box sizes) or "iou" (box IoU of the detection
            and the track's last box, no displacement).
        score_thresh: detections with a score not above this are dropped before matching
            (CenterTrack's ``--track_thresh``).
        new_track_score: an unmatched detection starts a track if its score is above this
            (CenterTrack's ``--new_thresh``); lower unmatched detections are not output.
        max_age: frames a track may stay unmatched and still be matched later; 0 ends a track in
            the first frame without a match.
        min_iou: the least IoU of a pair with ``match_by="iou"``.
    """

    match_by: str = "displacement"
    score_thresh: float = 0.3
    new_track_score: float = 0.3
    max_age: int = 0
    min_iou: float = 0.3

    def __post_init__(self):
        if self.match_by not in MATCH_BY:
            raise ValueError(f"match_by must be one of {MATCH_BY}, got {self.match_by!r}")
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, int) or self.max_age < 0:
            raise ValueError(f"max_age must be an int >= 0, got {self.max_age!r}")
        if not 0.0 <= self.min_iou <= 1.0:
            raise ValueError(f"min_iou must be in [0, 1], got {self.min_iou!r}")
        if self.new_track_score < self.score_thresh:
            raise ValueError(
                f"new_track_score ({self.new_track_score}) must be >= score_thresh "
                f"({self.score_thresh}): detections below score_thresh never reach matching"
            )


def greedy_assignment(cost: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """
    CenterTrack's greedy matching: row after row, each row takes the valid column of least cost
    that no earlier row took (ties: the first such column); a row without one stays unmatched.

    Args:
        cost: (D, T) float; not modified.
        valid: (D, T) bool; only these pairs may be matched.

    Returns:
        (P, 2) long: ``[row, column]`` of each pair, rows ascending.
    """
    assert cost.shape == valid.shape and cost.dim() == 2, (cost.shape, valid.shape)
    cost = torch.where(valid, cost, torch.full_like(cost, float("inf")))  # a copy
    pairs = []
    if cost.shape[1]:
        for row in range(cost.shape[0]):  # sequential: each row depends on the rows before
            col = int(cost[row].argmin())
            if torch.isfinite(cost[row, col]):
                pairs.append((row, col))
                cost[:, col] = float("inf")
    return torch.tensor(pairs, dtype=torch.long, device=cost.device).view(-1, 2)


def _centers(boxes: torch.Tensor) -> torch.Tensor:
    """(X, 4) XYXY -> (X, 2) centres."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _areas(boxes: torch.Tensor) -> torch.Tensor:
    return (boxes[:, 2] - boxes[:, 0]).clamp(min=0) * (boxes[:, 3] - boxes[:, 1]).clamp(min=0)


class Tracker:
    """
    CenterTrack's online tracker, one video at a time: :meth:`step` on each frame in order,
    :meth:`reset` before the next video. Its state is the previous frame's tracks; track ids are
    1, 2, ... in the order the tracks start, anew after :meth:`reset`.
    """

    def __init__(
        self,
        *,
        match_by: str = TrackerSettings.match_by,
        score_thresh: float = TrackerSettings.score_thresh,
        new_track_score: float = TrackerSettings.new_track_score,
        max_age: int = TrackerSettings.max_age,
        min_iou: float = TrackerSettings.min_iou,
    ):
        """Args: as the fields of :class:`TrackerSettings`."""
        self.settings = TrackerSettings(
            match_by=match_by,
            score_thresh=score_thresh,
            new_track_score=new_track_score,
            max_age=max_age,
            min_iou=min_iou,
        )
        self.reset()

    @classmethod
    def from_settings(cls, settings: TrackerSettings) -> "Tracker":
        return cls(**dataclasses.asdict(settings))

    def reset(self) -> None:
        """Forget all tracks (a new video); ids start at 1 again."""
        self._next_id = 1
        self._image_size: Optional[Tuple[int, int]] = None
        self._boxes = torch.zeros(0, 4)  # (T, 4) last box; lost tracks moved by their velocity
        self._scores = torch.zeros(0)  # (T,) score of the last matched detection
        self._classes = torch.zeros(0, dtype=torch.long)  # (T,)
        self._ids = torch.zeros(0, dtype=torch.long)  # (T,)
        self._lost = torch.zeros(0, dtype=torch.long)  # (T,) frames since the last match
        self._velocity = torch.zeros(0, 2)  # (T, 2) centre motion per frame, input pixels

    @property
    def num_tracks(self) -> int:
        """Tracks kept for the next frame, active and lost."""
        return len(self._ids)

    def step(self, instances: Instances) -> Instances:
        """
        Link one frame's detections to the tracks and update the tracks.

        Args:
            instances: the frame's detections: ``pred_boxes`` (XYXY, input pixels), ``scores``,
                ``pred_classes``, and, with ``match_by="displacement"``, optionally
                ``pred_displacements`` (D, 2): previous centre minus current centre, input
                pixels (without it, the current centres are matched).

        Returns:
            The detections above ``score_thresh`` that are matched or start a track, in their
            input order, with all their fields and ``pred_track_ids`` (long).
        """
        s = self.settings
        dets = instances[instances.scores > s.score_thresh]
        boxes = dets.pred_boxes.tensor  # (D, 4)
        if self._boxes.device != boxes.device:
            self._to(boxes.device)
        classes = dets.pred_classes
        same_class = classes[:, None] == self._classes[None, :]  # (D, T)
        if s.match_by == "iou":
            iou = pairwise_iou(Boxes(boxes), Boxes(self._boxes))  # (D, T)
            cost, valid = -iou, same_class & (iou >= s.min_iou)
        else:
            centers = _centers(boxes)
            if dets.has("pred_displacements"):
                centers = centers + dets.pred_displacements
            # squared distances against areas: dist <= sqrt(area) of both boxes, as CenterTrack
            dist2 = ((centers[:, None, :] - _centers(self._boxes)[None, :, :]) ** 2).sum(2)
            valid = (dist2 <= _areas(self._boxes)[None, :]) & (dist2 <= _areas(boxes)[:, None])
            cost, valid = dist2, valid & same_class
        order = torch.argsort(dets.scores, descending=True, stable=True)  # (D,)
        pairs = greedy_assignment(cost[order], valid[order])  # (P, 2)
        det_idx, track_idx = order[pairs[:, 0]], pairs[:, 1]

        track_ids = torch.full((len(dets),), -1, dtype=torch.long, device=boxes.device)
        track_ids[det_idx] = self._ids[track_idx]
        unmatched = track_ids < 0
        new = unmatched & (dets.scores > s.new_track_score)  # (D,)
        num_new = int(new.sum())
        track_ids[new] = torch.arange(
            self._next_id, self._next_id + num_new, dtype=torch.long, device=boxes.device
        )
        self._next_id += num_new

        # The next frame's tracks: matched and new ones (lost 0), then the lost ones kept.
        velocity = torch.zeros_like(boxes[:, :2])
        velocity[det_idx] = _centers(boxes[det_idx]) - _centers(self._boxes[track_idx])
        linked = track_ids >= 0
        kept = torch.ones(len(self._ids), dtype=torch.bool, device=boxes.device)
        kept[track_idx] = False
        kept &= self._lost < s.max_age
        moved = self._boxes[kept] + self._velocity[kept].repeat(1, 2)
        self._boxes = torch.cat([boxes[linked], moved])
        self._scores = torch.cat([dets.scores[linked], self._scores[kept]])
        self._classes = torch.cat([classes[linked], self._classes[kept]])
        self._ids = torch.cat([track_ids[linked], self._ids[kept]])
        self._lost = torch.cat([torch.zeros_like(track_ids[linked]), self._lost[kept] + 1])
        self._velocity = torch.cat([velocity[linked], self._velocity[kept]])
        self._image_size = tuple(instances.image_size)

        out = dets[linked]
        out.pred_track_ids = track_ids[linked]
        return out

    def active_tracks(self, min_score: float = 0.0) -> Optional[Instances]:
        """
        What a tracking model takes from the previous frame: the tracks matched or started in
        the last :meth:`step` (not the lost ones) with a score of at least ``min_score``
        (CenterTrack's ``--pre_thresh``).

        Returns:
            ``Instances`` of the last frame's size with ``pred_boxes`` (XYXY, input pixels),
            ``scores``, ``pred_classes`` and ``pred_track_ids``; None before the first frame of a
            video.
        """
        if self._image_size is None:
            return None
        keep = (self._lost == 0) & (self._scores >= min_score)
        return Instances(
            self._image_size,
            pred_boxes=Boxes(self._boxes[keep].clone()),
            scores=self._scores[keep].clone(),
            pred_classes=self._classes[keep].clone(),
            pred_track_ids=self._ids[keep].clone(),
        )

    def _to(self, device: torch.device) -> None:
        for name in ("_boxes", "_scores", "_classes", "_ids", "_lost", "_velocity"):
            setattr(self, name, getattr(self, name).to(device))
