"""Multi-object tracking metrics of a video dataset: ``MOTEvaluator`` and :func:`mot_metrics`.

MOTA, IDF1 and the counts (identity switches, false positives, misses) come from motmetrics
(py-motmetrics), HOTA, DetA and AssA from TrackEval's ``HOTA`` metric, the two libraries the
MOTChallenge results are computed with. Each video is evaluated on its own and the videos are
combined as those libraries combine sequences: motmetrics' ``compute_many(...,
generate_overall=True)`` (the counts of all videos together) and TrackEval's
``HOTA.combine_sequences``.

A ground-truth object and a prediction can match when their box IoU is at least ``iou_thresh``
(0.5, as MOTChallenge's CLEAR and ID metrics) and, with ``class_aware``, their classes are the same
(HOTA: IoU 0 across classes). Crowd ground truth (``iscrowd`` 1, the ignored persons of
MOTChallenge) is not counted; a prediction matched to one (Hungarian matching on IoU >= 0.5 with
all ground truth, as TrackEval's MOTChallenge preprocessing) is dropped.

Shape shorthand: G ground-truth objects and P predictions of a frame. Boxes are XYXY pixels.
"""

import copy
import itertools
import logging
import os
from collections import OrderedDict, defaultdict
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import DatasetEvaluator
from detectron2.structures import BoxMode
from detectron2.utils import comm
from detectron2.utils.logger import create_small_table
from tabulate import tabulate

from ..utils.boxes import box_iou
from .mot_files import track_rows, write_mot_results

__all__ = [
    "FrameDetectionsEvaluator",
    "MOTEvaluator",
    "box_iou",
    "identity_switches",
    "mot_metrics",
    "plot_identity_switches",
]

# The keys of the results, in the order they are reported; PERCENT_KEYS are in percent.
RESULT_KEYS = ("MOTA", "IDF1", "HOTA", "DetA", "AssA", "IDSW", "FP", "FN", "GT")
PERCENT_KEYS = ("MOTA", "IDF1", "HOTA", "DetA", "AssA")
# motmetrics' names of the results
_MOTMETRICS = {
    "MOTA": "mota",
    "IDF1": "idf1",
    "IDSW": "num_switches",
    "FP": "num_false_positives",
    "FN": "num_misses",
    "GT": "num_objects",
}
CROWD_IOU = 0.5  # a prediction matched to crowd ground truth at this IoU is dropped (TrackEval)
_EPS = np.finfo(float).eps


def _frame_similarity(frame: Mapping[str, np.ndarray], class_aware: bool):
    """One frame's ground truth and predictions after dropping crowd-matched predictions.

    Returns:
        gt_ids (G,), pred_ids (P,), IoU (G, P), 0 across classes when ``class_aware``.
    """
    from scipy.optimize import linear_sum_assignment

    gt_boxes, pred_boxes = frame["gt_boxes"].reshape(-1, 4), frame["pred_boxes"].reshape(-1, 4)
    iou = box_iou(gt_boxes, pred_boxes)  # (G_all, P_all)
    crowd = frame["gt_crowd"].astype(bool)
    keep_pred = np.ones(len(pred_boxes), dtype=bool)
    if crowd.any() and len(pred_boxes):
        score = np.where(iou >= CROWD_IOU - _EPS, iou, 0.0)
        rows, cols = linear_sum_assignment(-score)
        matched = score[rows, cols] > 0
        keep_pred[cols[matched & crowd[rows]]] = False
    if class_aware:
        iou = iou * (frame["gt_classes"][:, None] == frame["pred_classes"][None, :])
    iou = iou[~crowd][:, keep_pred]
    return frame["gt_ids"][~crowd], frame["pred_ids"][keep_pred], iou


def _hota_data(frames: Sequence[Tuple[np.ndarray, np.ndarray, np.ndarray]]) -> dict:
    """TrackEval's input of one sequence: ids numbered 0, 1, ... within the sequence."""
    gt_index = {v: i for i, v in enumerate(np.unique(np.concatenate([f[0] for f in frames])))}
    pred_index = {v: i for i, v in enumerate(np.unique(np.concatenate([f[1] for f in frames])))}
    return {
        "gt_ids": [np.array([gt_index[v] for v in f[0]], dtype=int) for f in frames],
        "tracker_ids": [np.array([pred_index[v] for v in f[1]], dtype=int) for f in frames],
        "similarity_scores": [f[2] for f in frames],
        "num_gt_dets": sum(len(f[0]) for f in frames),
        "num_tracker_dets": sum(len(f[1]) for f in frames),
        "num_gt_ids": len(gt_index),
        "num_tracker_ids": len(pred_index),
    }


def mot_metrics(
    videos: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    iou_thresh: float = 0.5,
    class_aware: bool = True,
) -> Tuple[Dict[str, float], Dict[str, Dict[str, float]]]:
    """
    MOT metrics of tracking results.

    Args:
        videos: video name -> its frames in order, each a dict of numpy arrays: ``gt_ids``
            (G,), ``gt_boxes`` (G, 4) XYXY, ``gt_classes`` (G,), ``gt_crowd`` (G,) bool,
            ``pred_ids`` (P,), ``pred_boxes`` (P, 4) XYXY, ``pred_classes`` (P,).
        iou_thresh: least IoU of a match for MOTA and IDF1.
        class_aware: match only objects of the same class.

    Returns:
        (all videos, {video name: its results}), each a dict of :data:`RESULT_KEYS`: MOTA, IDF1,
        HOTA, DetA, AssA in percent, the counts IDSW, FP, FN and GT (ground-truth boxes).
    """
    import motmetrics as mm
    from trackeval.metrics import HOTA

    if not videos:
        raise ValueError("mot_metrics needs at least one video")
    accumulators, hota = [], {}
    hota_metric = HOTA()
    for name, frames in videos.items():
        acc, matched = _accumulate(frames, iou_thresh, class_aware)
        accumulators.append(acc)
        hota[name] = hota_metric.eval_sequence(_hota_data(matched))
    names = list(videos)
    summary = mm.metrics.create().compute_many(
        accumulators, metrics=list(_MOTMETRICS.values()), names=names, generate_overall=True
    )
    hota["OVERALL"] = hota_metric.combine_sequences({n: hota[n] for n in names})

    def results(row: str) -> Dict[str, float]:
        out = {k: summary.loc[row, v] for k, v in _MOTMETRICS.items()}
        out.update({k: float(np.mean(hota[row][k])) for k in ("HOTA", "DetA", "AssA")})
        return {k: 100.0 * float(out[k]) if k in PERCENT_KEYS else int(out[k]) for k in RESULT_KEYS}

    return results("OVERALL"), {n: results(n) for n in names}


def _accumulate(frames: Sequence[Mapping[str, np.ndarray]], iou_thresh: float, class_aware: bool):
    """One video's motmetrics accumulator (frame ids 0, 1, ...) and per frame (gt ids, pred ids,
    IoU) for TrackEval."""
    import motmetrics as mm

    acc = mm.MOTAccumulator(auto_id=False)
    matched = []
    for t, frame in enumerate(frames):
        gt_ids, pred_ids, iou = _frame_similarity(frame, class_aware)
        # motmetrics: a distance per pair, NaN where they may not match
        dist = np.where(iou >= iou_thresh - _EPS, 1.0 - iou, np.nan)
        acc.update(gt_ids.tolist(), pred_ids.tolist(), dist, frameid=t)
        matched.append((gt_ids, pred_ids, iou))
    return acc, matched


def identity_switches(
    videos: Mapping[str, Sequence[Mapping[str, np.ndarray]]],
    iou_thresh: float = 0.5,
    class_aware: bool = True,
) -> Dict[str, np.ndarray]:
    """Per video (the input of :func:`mot_metrics`), its identity switches per frame (T,): the
    frames where an object's match moves to another track id (motmetrics' SWITCH events)."""
    out = {}
    for name, frames in videos.items():
        acc, _ = _accumulate(frames, iou_thresh, class_aware)
        events = acc.mot_events
        switches = np.zeros(len(frames), np.int64)
        if len(events):
            frame_ids = events.index.get_level_values(0)[events["Type"].values == "SWITCH"]
            np.add.at(switches, np.asarray(frame_ids, np.int64), 1)
        out[name] = switches
    return out


def plot_identity_switches(switches: Mapping[str, np.ndarray], path: str) -> str:
    """Cumulative identity switches over the frames, a line per video."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4))
    for name, per_frame in switches.items():
        ax.step(np.arange(1, len(per_frame) + 1), np.cumsum(per_frame), where="post",
                label=f"{name} ({int(per_frame.sum())})")  # fmt: skip
    ax.set(xlabel="frame", ylabel="identity switches so far", title="identity switches over time")
    ax.grid(alpha=0.3)
    if len(switches) <= 20:
        ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class MOTEvaluator(DatasetEvaluator):
    """
    Tracking metrics of a video dataset (registered with ``video_id``, ``frame_id`` and per
    annotation ``track_id``, e.g. by :func:`centernet_d2.data.register_coco_video_dataset`).

    ``process`` takes, per frame, an input with its ``image_id`` and an output with
    ``"instances"`` holding ``pred_boxes``, ``pred_classes`` and ``pred_track_ids`` in the size of
    the dataset's images. The ground truth is read from ``DatasetCatalog``, as
    ``COCOEvaluator`` reads it from the json, and only the frames processed are evaluated.
    ``evaluate`` returns ``{"tracking": {...}}`` with the keys of :func:`mot_metrics`, for all
    videos together, and logs a table of them and one per video.
    """

    def __init__(
        self,
        dataset_name: str,
        distributed: bool = True,
        *,
        iou_thresh: float = 0.5,
        class_aware: bool = True,
        output_dir: Optional[str] = None,
        analysis: bool = False,
    ):
        """
        Args:
            dataset_name: a registered video dataset.
            distributed: gather the predictions of all processes (as Detectron2's evaluators);
                results on the main process, ``{}`` on the others.
            iou_thresh, class_aware: as :func:`mot_metrics`.
            output_dir: where to write the tracks as MOTChallenge result files,
                ``output_dir/<dataset_name>/mot_results/<video>.txt`` (:mod:`.mot_files`).
            analysis: also write there ``tracking_per_video.md`` (the table of each video) and
                ``identity_switches.png`` (:func:`plot_identity_switches`).
        """
        self._analysis = analysis
        self._output_dir = output_dir
        self._dataset_name = dataset_name
        self._distributed = distributed
        self._iou_thresh = iou_thresh
        self._class_aware = class_aware
        self._logger = logging.getLogger(__name__)
        self._predictions: Dict[int, Dict[str, np.ndarray]] = {}

    def reset(self) -> None:
        self._predictions = {}

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            instances = out["instances"]
            if not instances.has("pred_track_ids"):
                raise ValueError(
                    f"MOTEvaluator needs outputs whose instances have pred_track_ids (from a "
                    f"tracker); image {inp['image_id']} has {list(instances.get_fields())}"
                )
            self._predictions[inp["image_id"]] = track_rows(instances)

    def evaluate(self) -> "OrderedDict[str, Dict[str, float]]":
        predictions = self._predictions
        if self._distributed:
            comm.synchronize()
            per_rank = comm.gather(self._predictions, dst=0)
            if not comm.is_main_process():
                return OrderedDict()
            predictions = dict(itertools.chain.from_iterable(p.items() for p in per_rank))
        if not predictions:
            self._logger.warning("[MOTEvaluator] Did not receive valid predictions.")
            return OrderedDict()
        videos = self._videos(predictions)
        if self._output_dir:
            self._write_results(videos)
        overall, per_video = mot_metrics(videos, self._iou_thresh, self._class_aware)
        rows = [[name, *(per_video[name][k] for k in RESULT_KEYS)] for name in per_video]
        table = tabulate(rows, ("video",) + RESULT_KEYS, tablefmt="pipe", floatfmt=".2f")
        self._logger.info(f"Tracking results of {self._dataset_name} per video:\n" + table)
        if self._output_dir and self._analysis:
            folder = os.path.join(self._output_dir, self._dataset_name)
            with open(os.path.join(folder, "tracking_per_video.md"), "w") as f:
                f.write(table + "\n")
            switches = identity_switches(videos, self._iou_thresh, self._class_aware)
            plot_identity_switches(switches, os.path.join(folder, "identity_switches.png"))
        self._logger.info(
            f"Tracking results of {self._dataset_name} ({len(videos)} videos, "
            f"{sum(len(f) for f in videos.values())} frames): \n" + create_small_table(overall)
        )
        return OrderedDict(tracking=overall)

    def _write_results(self, videos: Mapping[str, List[Dict[str, np.ndarray]]]) -> None:
        folder = os.path.join(self._output_dir, self._dataset_name, "mot_results")
        num_classes = len(MetadataCatalog.get(self._dataset_name).get("thing_classes", [None]))
        for name, frames in videos.items():
            numbered = [(f["frame_id"], f) for f in frames]
            write_mot_results(os.path.join(folder, name + ".txt"), numbered, num_classes)
        self._logger.info(f"MOTChallenge result files of {len(videos)} videos in {folder}")

    def _videos(self, predictions: Mapping[int, Dict[str, np.ndarray]]):
        """The frames of :func:`mot_metrics` for the predicted images, by video name."""
        frames_of = defaultdict(list)  # video id -> [(frame id, frame)]
        for d in DatasetCatalog.get(self._dataset_name):
            if d["image_id"] not in predictions:
                continue
            for key in ("video_id", "frame_id"):
                if key not in d:
                    raise ValueError(
                        f"dataset {self._dataset_name!r}: image {d['image_id']} has no {key!r}; "
                        "MOTEvaluator needs a video dataset (register_coco_video_dataset)"
                    )
            frame = copy.copy(predictions[d["image_id"]])
            frame.update(_ground_truth(d, self._dataset_name), frame_id=d["frame_id"])
            frames_of[d["video_id"]].append((d["frame_id"], frame))
        names = MetadataCatalog.get(self._dataset_name).get("video_names", {})
        return {
            str(names.get(vid, vid)): [f for _, f in sorted(frames, key=lambda x: x[0])]
            for vid, frames in sorted(frames_of.items())
        }


def _ground_truth(d: dict, dataset_name: str) -> Dict[str, np.ndarray]:
    annos = d.get("annotations", [])
    missing = [i for i, a in enumerate(annos) if "track_id" not in a]
    if missing:
        raise ValueError(
            f"dataset {dataset_name!r}: annotation {missing[0]} of image {d['image_id']} has no "
            "'track_id'"
        )
    boxes = [BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
    return {
        "gt_ids": np.array([a["track_id"] for a in annos], dtype=np.int64),
        "gt_boxes": np.array(boxes, dtype=np.float64).reshape(-1, 4),
        "gt_classes": np.array([a["category_id"] for a in annos], dtype=np.int64),
        "gt_crowd": np.array([a.get("iscrowd", 0) for a in annos], dtype=bool),
    }


class FrameDetectionsEvaluator(DatasetEvaluator):
    """Runs a detection evaluator (e.g. ``COCOEvaluator``) on the per-frame detections of a
    tracking model, the outputs' ``"detections"`` (see
    :class:`centernet_d2.tracking.CenterTrackWithTracker`), instead of its tracks
    (``"instances"``): COCO AP of a video dataset counts every detection with its score, not
    only those the tracker outputs."""

    def __init__(self, evaluator: DatasetEvaluator, key: str = "detections"):
        self._evaluator = evaluator
        self._key = key

    def reset(self) -> None:
        self._evaluator.reset()

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        self._evaluator.process(inputs, [{"instances": out[self._key]} for out in outputs])

    def evaluate(self):
        return self._evaluator.evaluate()
