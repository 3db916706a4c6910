"""MOTChallenge result files: one ``<sequence>.txt`` per video, a line per track box::

    frame, id, bb_left, bb_top, bb_width, bb_height, score, class, -1, -1

``frame`` from 1, ``id`` the track id, the box in the frame's pixels as the model predicts it (in
the convention of the ground truth it learnt from: MOTChallenge's files are read as they are),
``class`` the 1-based category for a model of more than one class and -1 for one class (the
MOTChallenge layout, whose 8th column TrackEval ignores in results). :func:`write_mot_results`
and :func:`read_mot_results` write and read them; :func:`evaluate_mot_results` evaluates a
folder of them against a registered video dataset (a built-in shapes video set, or a
MOTChallenge split registered by ``--mot-dataset``) with :class:`.mot.MOTEvaluator`, the
trainer's evaluator, so results from elsewhere compare on equal terms.
"""

import os
from collections import OrderedDict
from typing import Dict, Iterable, Mapping, Optional, Tuple

import numpy as np

__all__ = ["evaluate_mot_results", "read_mot_results", "track_rows", "write_mot_results"]

_COLUMNS = 10


def track_rows(instances) -> Dict[str, np.ndarray]:
    """A frame's tracks (Detectron2 ``Instances`` with ``pred_boxes``, ``pred_classes``,
    ``pred_track_ids`` and optionally ``scores``) as the arrays of :func:`write_mot_results`
    ("scores" 1 where the tracker gave none)."""
    instances = instances.to("cpu")
    n = len(instances)
    return {
        "pred_ids": instances.pred_track_ids.numpy(),
        "pred_boxes": instances.pred_boxes.tensor.numpy().astype(np.float64),
        "scores": instances.scores.numpy() if instances.has("scores") else np.ones(n),
        "pred_classes": instances.pred_classes.numpy(),
    }


def write_mot_results(
    path: str, frames: Iterable[Tuple[int, Mapping[str, np.ndarray]]], num_classes: int
) -> str:
    """
    Write one video's tracks to ``path`` (its folder created), atomically.

    Args:
        frames: (frame number from 1, tracks) in order; tracks: "pred_ids" (K,), "pred_boxes"
            (K, 4) XYXY pixels, "scores" (K,), "pred_classes" (K,) 0-based.
        num_classes: the model's; 1 writes class -1.
    Returns:
        ``path``.
    """
    lines = []
    for frame, tracks in frames:
        boxes = np.asarray(tracks["pred_boxes"], np.float64).reshape(-1, 4)
        classes = np.asarray(tracks["pred_classes"]).reshape(-1)
        for i, box in enumerate(boxes):
            x, y, w, h = box[0], box[1], box[2] - box[0], box[3] - box[1]
            cls = int(classes[i]) + 1 if num_classes > 1 else -1
            track = int(tracks["pred_ids"][i])
            score = float(tracks["scores"][i])
            lines.append(f"{frame},{track},{x:.4f},{y:.4f},{w:.4f},{h:.4f},{score:.4f},{cls},-1,-1")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("".join(line + "\n" for line in lines))
    os.replace(tmp, path)
    return path


def read_mot_results(path: str) -> Dict[int, Dict[str, np.ndarray]]:
    """A MOTChallenge result file -> {frame number: "pred_ids" (K,) int64, "pred_boxes" (K, 4)
    XYXY float64, "scores" (K,), "pred_classes" (K,) 0-based, -1 where the file has none}.
    ``ValueError`` naming the file and line for another layout."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MOT result file {path} not found")
    rows = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            fields = line.replace(" ", "").strip().split(",")
            try:
                values = [float(v) for v in fields]
            except ValueError:
                values = []
            if len(values) < 7:
                raise ValueError(
                    f"{path}, line {number}: expected frame,id,left,top,width,height,score[,class,"
                    f"-1,-1] numbers, got {line.strip()!r}"
                )
            rows.append((values + [-1.0] * _COLUMNS)[:_COLUMNS])
    table = np.asarray(rows, np.float64).reshape(-1, _COLUMNS)
    out = {}
    for frame in np.unique(table[:, 0]).astype(int):
        r = table[table[:, 0] == frame]
        boxes = np.concatenate([r[:, 2:4], r[:, 2:4] + r[:, 4:6]], axis=1)
        classes = np.where(r[:, 7] > 0, r[:, 7] - 1, -1).astype(np.int64)
        out[int(frame)] = {
            "pred_ids": r[:, 1].astype(np.int64),
            "pred_boxes": boxes,
            "scores": r[:, 6],
            "pred_classes": classes,
        }
    return out


def evaluate_mot_results(
    results_dir: str, dataset_name: str, iou_thresh: float = 0.5
) -> "OrderedDict[str, Dict[str, float]]":
    """
    Evaluate ``results_dir/<video name>.txt`` (a file per video of ``dataset_name``, named as
    its ``video_names`` metadata, else its video id) against ``dataset_name``'s ground truth
    with :class:`.mot.MOTEvaluator`: MOTA, IDF1, HOTA... as the trainer reports them. Files
    without classes are matched regardless of class.

    Returns:
        ``{"tracking": {...}}`` as ``MOTEvaluator.evaluate``.
    """
    import torch
    from detectron2.data import DatasetCatalog, MetadataCatalog
    from detectron2.structures import Boxes, Instances

    from .mot import MOTEvaluator

    dicts = DatasetCatalog.get(dataset_name)
    if any("video_id" not in d or "frame_id" not in d for d in dicts):
        raise ValueError(
            f"dataset {dataset_name!r} has images without video_id / frame_id: MOT results are "
            "evaluated against a video dataset (--coco-video-dataset, tools/convert_mot.py)"
        )
    names = MetadataCatalog.get(dataset_name).get("video_names", {})
    results: Dict[object, Dict[int, Dict[str, np.ndarray]]] = {}
    for d in dicts:
        if d["video_id"] not in results:
            name = str(names.get(d["video_id"], d["video_id"]))
            results[d["video_id"]] = read_mot_results(os.path.join(results_dir, name + ".txt"))
    class_aware = any((f["pred_classes"] >= 0).any() for r in results.values() for f in r.values())
    evaluator = MOTEvaluator(
        dataset_name, distributed=False, iou_thresh=iou_thresh, class_aware=class_aware
    )
    empty = {
        "pred_ids": np.zeros(0, np.int64),
        "pred_boxes": np.zeros((0, 4)),
        "scores": np.zeros(0),
        "pred_classes": np.zeros(0, np.int64),
    }
    for d in dicts:
        frame = results[d["video_id"]].get(int(d["frame_id"]), empty)
        instances = Instances(
            (d["height"], d["width"]),
            pred_boxes=Boxes(torch.as_tensor(frame["pred_boxes"], dtype=torch.float64)),
            scores=torch.as_tensor(frame["scores"]),
            pred_classes=torch.as_tensor(frame["pred_classes"]).clamp(min=0),
            pred_track_ids=torch.as_tensor(frame["pred_ids"]),
        )
        evaluator.process([{"image_id": d["image_id"]}], [{"instances": instances}])
    return evaluator.evaluate()
