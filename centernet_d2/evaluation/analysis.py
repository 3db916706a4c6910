"""What a detector gets wrong, from its COCO-format detections and the ground truth:
:func:`pr_curves` (per class, from pycocotools' ``COCOeval``), :func:`confusion_matrix`,
:func:`error_breakdown` (in the manner of TIDE, Bolya et al. 2020) and :func:`analyze_detections`,
which writes them as pictures and Markdown; :class:`DetectionAnalysis` runs it after every
evaluation of a detection or keypoint set.

Shape shorthand: K classes (contiguous ids 0..K-1), G ground-truth boxes and D detections of an
image. Boxes are XYWH pixels as in COCO files.

Error types of :func:`error_breakdown`, for each detection scoring at least ``score_thresh`` that
``COCOeval`` (IoU 0.5, its own matching: each ground truth once, in descending score) leaves
unmatched, by its best IoU with the image's ground truth (crowd regions left out):

* ``duplicate``: IoU >= 0.5 with an object of its class that a higher detection took;
* ``class``: IoU >= 0.5 with an object of another class (confusion);
* ``localization``: IoU in [0.1, 0.5) with an object of its class;
* ``both``: IoU in [0.1, 0.5) with an object of another class only;
* ``background``: IoU < 0.1 with every object;

and ``missed``: an object that no detection matches and no localisation, class or both error
points at (TIDE's "missed" is the same: an object nothing claims).
"""

import contextlib
import copy
import io
import json
import logging
import os
from collections import OrderedDict
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from detectron2.evaluation import DatasetEvaluator

__all__ = [
    "ERROR_TYPES",
    "DetectionAnalysis",
    "analyze_detections",
    "confusion_matrix",
    "error_breakdown",
    "pr_curves",
]

logger = logging.getLogger(__name__)

ERROR_TYPES = ("localization", "class", "duplicate", "background", "both", "missed")
MATCH_IOU = 0.5  # COCO's AP50 threshold: a detection this close to an object of its class is right
BACKGROUND_IOU = 0.1  # TIDE's background threshold
MIN_DRAWN_SIDE = 480  # the worst images are enlarged by a whole factor to at least this side


def _coco_eval(coco_gt, detections: List[Dict], iou_type: str = "bbox", oks_sigmas=None):
    """pycocotools' ``COCOeval`` of ``detections`` after ``evaluate`` and ``accumulate``, quiet
    (``oks_sigmas``: of the keypoints, for ``iou_type`` "keypoints"); None without detections."""
    from pycocotools.cocoeval import COCOeval

    if not detections:
        return None
    with contextlib.redirect_stdout(io.StringIO()):
        coco_dt = coco_gt.loadRes(copy.deepcopy(detections))
        evaluation = COCOeval(coco_gt, coco_dt, iou_type)
        if oks_sigmas is not None:
            evaluation.params.kpt_oks_sigmas = np.asarray(oks_sigmas, np.float64)
        evaluation.evaluate()
        evaluation.accumulate()
    return evaluation


def pr_curves(
    coco_gt, detections: List[Dict], iou_type: str = "bbox", oks_sigmas=None
) -> Dict[str, np.ndarray]:
    """
    Per-class precision-recall curves as COCO computes AP: precision interpolated at 101 recall
    points, all areas, the last ``maxDets`` (keypoints: OKS of ``oks_sigmas`` for IoU).

    Returns:
        "recall" (101,); "precision50" (K, 101) at IoU 0.5 and "precision" (K, 101) averaged
        over IoU 0.5:0.95, NaN where a class has no ground truth; "ap50", "ap" (K,) in percent:
        the means of those curves, which equal COCO's per-class AP50 and AP.
    """
    evaluation = _coco_eval(coco_gt, detections, iou_type, oks_sigmas)
    recall = np.linspace(0.0, 1.0, 101)
    num_classes = len(coco_gt.getCatIds())
    if evaluation is None:
        zeros = np.zeros((num_classes, 101))
        return {"recall": recall, "precision50": zeros, "precision": zeros,
                "ap50": np.zeros(num_classes), "ap": np.zeros(num_classes)}  # fmt: skip
    p = evaluation.eval["precision"][:, :, :, 0, -1]  # (T, R, K), -1 where undefined
    p = np.where(p > -1, p, np.nan)
    absent = np.isnan(p).all(axis=(0, 1))  # classes without ground truth
    p = np.nan_to_num(p, nan=0.0)
    p[:, :, absent] = np.nan
    precision50, precision = p[0].T, p.mean(axis=0).T
    return {
        "recall": recall,
        "precision50": precision50,
        "precision": precision,
        "ap50": 100 * precision50.mean(axis=1),
        "ap": 100 * precision.mean(axis=1),
    }


def _iou_xywh(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from ..utils.boxes import box_iou

    xyxy = lambda x: np.concatenate([x[:, :2], x[:, :2] + x[:, 2:]], 1)  # noqa: E731
    return box_iou(xyxy(a.reshape(-1, 4)), xyxy(b.reshape(-1, 4)))


def _image_objects(coco_gt, image_id: int, category_index: Dict[int, int]):
    """(boxes (G, 4) XYWH, classes (G,) contiguous, annotation ids (G,)) of the image's
    non-crowd objects."""
    annos = [a for a in coco_gt.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
    boxes = np.array([a["bbox"] for a in annos], np.float64).reshape(-1, 4)
    classes = np.array([category_index[a["category_id"]] for a in annos], np.int64)
    return boxes, classes, np.array([a["id"] for a in annos], np.int64)


def confusion_matrix(
    coco_gt, detections: List[Dict], iou_thresh: float = MATCH_IOU, score_thresh: float = 0.3
) -> np.ndarray:
    """
    The confusion matrix of the detections scoring at least ``score_thresh``: per image, in
    descending score, each detection takes the unclaimed object (any class, crowd regions left
    out) of the highest IoU, if at least ``iou_thresh``.

    Returns:
        (K + 1, K + 1) int64 counts: row the object's class, column the detection's; row K
        (background) counts detections that took no object, column K the objects none took.
    """
    cats = sorted(coco_gt.getCatIds())
    index = {c: i for i, c in enumerate(cats)}
    K = len(cats)
    matrix = np.zeros((K + 1, K + 1), np.int64)
    by_image: Dict[int, List[Dict]] = {}
    for d in detections:
        if d["score"] >= score_thresh:
            by_image.setdefault(d["image_id"], []).append(d)
    for image_id in coco_gt.getImgIds():
        gt_boxes, gt_classes, _ = _image_objects(coco_gt, image_id, index)
        dets = sorted(by_image.get(image_id, []), key=lambda d: -d["score"])
        iou = _iou_xywh(np.array([d["bbox"] for d in dets]), gt_boxes)  # (D, G)
        taken = np.zeros(len(gt_boxes), bool)
        for i, d in enumerate(dets):
            free = np.where(taken, -1.0, iou[i]) if len(gt_boxes) else np.zeros(0)
            j = int(free.argmax()) if len(free) else -1
            if j >= 0 and free[j] >= iou_thresh:
                taken[j] = True
                matrix[gt_classes[j], index[d["category_id"]]] += 1
            else:
                matrix[K, index[d["category_id"]]] += 1
        for j in np.flatnonzero(~taken):
            matrix[gt_classes[j], K] += 1
    return matrix


def error_breakdown(
    coco_gt, detections: List[Dict], score_thresh: float = 0.3
) -> Tuple[Dict[str, int], Dict[int, Dict[str, object]]]:
    """
    The errors of the detections scoring at least ``score_thresh`` (module docstring), the
    matching from pycocotools' ``COCOeval`` at IoU 0.5.

    Returns:
        counts: {"true_positive": n, "objects": n, and each of :data:`ERROR_TYPES`: n};
        per image id: "errors" (its count of errors), "detections" [(detection index in
        ``detections``, type: "true_positive" or an error type)], "missed" [annotation ids].
    """
    cats = sorted(coco_gt.getCatIds())
    index = {c: i for i, c in enumerate(cats)}
    counts = dict.fromkeys(("true_positive", "objects") + ERROR_TYPES, 0)
    per_image: Dict[int, Dict[str, object]] = {}
    numbered = [dict(d, _index=i) for i, d in enumerate(detections)]
    evaluation = _coco_eval(coco_gt, numbered)
    matched_dt, matched_gt = set(), set()  # detection indices / annotation ids matched at 0.5
    if evaluation is not None:
        t = int(np.argmin(np.abs(evaluation.params.iouThrs - MATCH_IOU)))
        area_all = evaluation.params.areaRng[0]
        dt_index = {a["id"]: a["_index"] for a in evaluation.cocoDt.anns.values()}
        for e in evaluation.evalImgs:
            if e is None or e["aRng"] != area_all:
                continue
            for k, dt_id in enumerate(e["dtIds"]):
                gt_id = int(e["dtMatches"][t, k])
                if gt_id > 0 and not e["dtIgnore"][t, k]:
                    matched_dt.add(dt_index[dt_id])
                    if detections[dt_index[dt_id]]["score"] >= score_thresh:
                        matched_gt.add(gt_id)
    by_image: Dict[int, List[int]] = {}
    for i, d in enumerate(detections):
        if d["score"] >= score_thresh:
            by_image.setdefault(d["image_id"], []).append(i)
    for image_id in coco_gt.getImgIds():
        gt_boxes, gt_classes, gt_ids = _image_objects(coco_gt, image_id, index)
        counts["objects"] += len(gt_ids)
        dets = by_image.get(image_id, [])
        iou = _iou_xywh(np.array([detections[i]["bbox"] for i in dets]), gt_boxes)
        claimed, kinds = set(), []
        for row, i in enumerate(dets):
            if i in matched_dt:
                kinds.append((i, "true_positive"))
                continue
            same = gt_classes == index[detections[i]["category_id"]]
            best_same = iou[row][same].max(initial=0.0)
            best_other = iou[row][~same].max(initial=0.0)
            if best_same >= MATCH_IOU:
                kind = "duplicate"
            elif best_other >= MATCH_IOU:
                kind = "class"
            elif best_same >= BACKGROUND_IOU:
                kind = "localization"
            elif best_other >= BACKGROUND_IOU:
                kind = "both"
            else:
                kind = "background"
            if kind in ("class", "localization", "both"):
                target = same if kind == "localization" else ~same
                claimed.add(int(gt_ids[np.flatnonzero(target)[iou[row][target].argmax()]]))
            kinds.append((i, kind))
        missed = [int(g) for g in gt_ids if g not in matched_gt and g not in claimed]
        for _, kind in kinds:
            counts[kind] += 1
        counts["missed"] += len(missed)
        errors = sum(k != "true_positive" for _, k in kinds) + len(missed)
        per_image[image_id] = {"errors": errors, "detections": kinds, "missed": missed}
    return counts, per_image


def _names(coco_gt) -> List[str]:
    return [coco_gt.cats[c]["name"] for c in sorted(coco_gt.getCatIds())]


def plot_pr_curves(curves: Dict[str, np.ndarray], names: Sequence[str], path: str) -> str:
    """One picture, two panels (IoU 0.5 and 0.5:0.95), a line per class with its AP."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.8), sharey=True)
    for ax, key, title in (
        (axes[0], "precision50", "IoU 0.5"),
        (axes[1], "precision", "IoU 0.5:0.95"),
    ):
        ap = curves["ap50" if key == "precision50" else "ap"]
        for k, name in enumerate(names):
            if not np.isnan(curves[key][k]).all():
                ax.plot(curves["recall"], curves[key][k], label=f"{name} {ap[k]:.1f}")
        ax.set(
            title=f"precision-recall, {title} (AP per class)",
            xlabel="recall",
            xlim=(0, 1),
            ylim=(0, 1.02),
        )
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    axes[0].set_ylabel("precision")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_confusion_matrix(
    matrix: np.ndarray, names: Sequence[str], path: str, iou_thresh: float, score_thresh: float
) -> str:
    """Counts and, beside them, rows normalised (the share of each class's objects)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(names) + ["background"]
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, np.maximum(rows, 1))
    size = 2.5 + 0.55 * len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(2 * size + 1, size))
    for ax, values, title, fmt in (
        (axes[0], matrix, "counts", "d"),
        (axes[1], normalised, "share of the row", ".2f"),
    ):
        ax.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
        for (r, c), v in np.ndenumerate(values):
            if matrix[r, c]:
                colour = "white" if normalised[r, c] > 0.6 else "black"
                ax.text(c, r, format(v, fmt), ha="center", va="center", fontsize=8, color=colour)
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set(xlabel="detected as", ylabel="object", title=title)
    fig.suptitle(f"confusion matrix, IoU >= {iou_thresh}, score >= {score_thresh}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_errors(counts: Dict[str, int], path: str, score_thresh: float) -> str:
    """A bar per error type."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.8))
    values = [counts[k] for k in ERROR_TYPES]
    bars = ax.bar(
        ERROR_TYPES,
        values,
        color=["#d62728", "#9467bd", "#ff7f0e", "#7f7f7f", "#8c564b", "#1f77b4"],
    )
    ax.bar_label(bars)
    ax.set(
        ylabel="count",
        title=f"errors at score >= {score_thresh}: {counts['true_positive']} right of "
        f"{counts['objects']} objects",
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_errors(
    image: np.ndarray, coco_gt, image_id: int, detections: List[Dict], image_errors: Dict
) -> np.ndarray:
    """An RGB image drawn twice side by side: its objects (missed ones in blue), and the
    detections scoring at least the threshold, right ones green, errors red with their type;
    enlarged by a whole factor if its long side is under :data:`MIN_DRAWN_SIDE`."""
    import cv2
    from detectron2.utils.visualizer import Visualizer

    names = {c["id"]: c["name"] for c in coco_gt.cats.values()}
    missed = set(image_errors["missed"])
    annos = [a for a in coco_gt.imgToAnns.get(image_id, []) if not a.get("iscrowd", 0)]
    scale = max(1, -(-MIN_DRAWN_SIDE // max(image.shape[:2])))  # small images enlarged: legible
    if scale > 1:
        size = (image.shape[1] * scale, image.shape[0] * scale)
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    xyxy = lambda b: [
        scale * b[0],
        scale * b[1],
        scale * (b[0] + b[2]),
        scale * (b[1] + b[3]),
    ]  # noqa: E731
    left = Visualizer(image)
    left.overlay_instances(
        boxes=np.array([xyxy(a["bbox"]) for a in annos]).reshape(-1, 4),
        labels=[names[a["category_id"]] + (" missed" if a["id"] in missed else "") for a in annos],
        assigned_colors=[(0.1, 0.3, 1.0) if a["id"] in missed else (0.2, 0.8, 0.2) for a in annos],
    )
    kinds = image_errors["detections"]
    right = Visualizer(image)
    right.overlay_instances(
        boxes=np.array([xyxy(detections[i]["bbox"]) for i, _ in kinds]).reshape(-1, 4),
        labels=[
            f"{names[detections[i]['category_id']]} {detections[i]['score']:.0%}"
            + ("" if k == "true_positive" else f" {k}")
            for i, k in kinds
        ],
        assigned_colors=[
            (0.2, 0.8, 0.2) if k == "true_positive" else (1.0, 0.1, 0.1) for _, k in kinds
        ],
    )
    gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
    return np.concatenate([left.get_output().get_image(), gap, right.get_output().get_image()], 1)


def analyze_detections(
    coco_gt,
    detections: List[Dict],
    output_dir: str,
    image_files: Optional[Dict[int, str]] = None,
    score_thresh: float = 0.3,
    iou_thresh: float = MATCH_IOU,
    worst_images: int = 8,
    oks_sigmas: Optional[Sequence[float]] = None,
) -> Dict[str, object]:
    """
    Write into ``output_dir``: ``pr_curves.png`` (and ``pr_curves_keypoints.png`` with
    ``oks_sigmas``, the keypoints' OKS sigmas), ``confusion_matrix.png``, ``errors.png``,
    ``analysis.md`` (the tables) and ``analysis.json`` (the numbers), and ``worst/`` with the ``worst_images`` images of the most
    errors (``image_files``: image id -> file) drawn by :func:`draw_errors`.

    Args:
        coco_gt: pycocotools ``COCO`` of the ground truth.
        detections: COCO results (``image_id``, ``category_id`` of ``coco_gt``, ``bbox`` XYWH,
            ``score``; ``keypoints`` for the keypoint curves).
    Returns:
        the numbers of ``analysis.json``.
    """
    os.makedirs(output_dir, exist_ok=True)
    names = _names(coco_gt)
    curves = pr_curves(coco_gt, detections)
    plot_pr_curves(curves, names, os.path.join(output_dir, "pr_curves.png"))
    if oks_sigmas is not None and detections and "keypoints" in detections[0]:
        kp = pr_curves(coco_gt, detections, "keypoints", oks_sigmas)
        plot_pr_curves(kp, names, os.path.join(output_dir, "pr_curves_keypoints.png"))
    matrix = confusion_matrix(coco_gt, detections, iou_thresh, score_thresh)
    plot_confusion_matrix(
        matrix, names, os.path.join(output_dir, "confusion_matrix.png"), iou_thresh, score_thresh
    )
    counts, per_image = error_breakdown(coco_gt, detections, score_thresh)
    plot_errors(counts, os.path.join(output_dir, "errors.png"), score_thresh)
    worst = sorted(per_image, key=lambda i: (-per_image[i]["errors"], i))[:worst_images]
    worst = [i for i in worst if per_image[i]["errors"] > 0]
    if image_files and worst:
        import cv2

        folder = os.path.join(output_dir, "worst")
        os.makedirs(folder, exist_ok=True)
        for rank, image_id in enumerate(worst, 1):
            image = cv2.imread(image_files[image_id])
            if image is None:
                raise FileNotFoundError(f"image {image_files[image_id]} not found or unreadable")
            drawn = draw_errors(
                image[:, :, ::-1], coco_gt, image_id, detections, per_image[image_id]
            )
            name = f"{rank:02d}_image{image_id}_{per_image[image_id]['errors']}errors.png"
            cv2.imwrite(os.path.join(folder, name), drawn[:, :, ::-1])
    report = {
        "score_thresh": score_thresh,
        "iou_thresh": iou_thresh,
        "classes": names,
        "ap50": curves["ap50"].tolist(),
        "ap": curves["ap"].tolist(),
        "confusion_matrix": matrix.tolist(),
        "errors": counts,
        "worst_images": [{"image_id": i, "errors": per_image[i]["errors"]} for i in worst],
    }
    with open(os.path.join(output_dir, "analysis.json"), "w") as f:
        json.dump(report, f, indent=1)
    with open(os.path.join(output_dir, "analysis.md"), "w") as f:
        f.write(_markdown(report))
    logger.info(f"Error analysis of {len(detections)} detections written to {output_dir}")
    return report


def _markdown(report: Dict) -> str:
    names, errors = report["classes"], report["errors"]
    lines = ["| class | AP | AP50 |", "|---|---|---|"]
    lines += [
        f"| {n} | {a:.2f} | {b:.2f} |" for n, a, b in zip(names, report["ap"], report["ap50"])
    ]
    lines += ["", f"Errors of the detections scoring at least {report['score_thresh']} "
              f"({errors['true_positive']} right of {errors['objects']} objects):", ""]  # fmt: skip
    lines += ["| " + " | ".join(ERROR_TYPES) + " |", "|" + "---|" * len(ERROR_TYPES)]
    lines += ["| " + " | ".join(str(errors[k]) for k in ERROR_TYPES) + " |", ""]
    labels = names + ["background"]
    lines += [f"Confusion matrix (rows: objects, columns: detected as; IoU >= "
              f"{report['iou_thresh']}):", ""]  # fmt: skip
    lines += ["| | " + " | ".join(labels) + " |", "|---" * (len(labels) + 1) + "|"]
    for label, row in zip(labels, report["confusion_matrix"]):
        lines.append(f"| {label} | " + " | ".join(str(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


class DetectionAnalysis(DatasetEvaluator):
    """A Detectron2 ``DatasetEvaluator`` that, next to the AP evaluator, collects a detection or
    keypoint set's detections and at ``evaluate`` writes :func:`analyze_detections` into
    ``output_dir/<dataset>/``; it returns no numbers (the AP table stays the AP evaluator's).
    The ground truth: the dataset's dicts in COCO form (Detectron2's ``convert_to_coco_dict``),
    so any registered set works, Pascal VOC ones included."""

    def __init__(
        self,
        dataset_name: str,
        output_dir: str,
        score_thresh: float = 0.3,
        iou_thresh: float = MATCH_IOU,
        worst_images: int = 8,
        oks_sigmas: Optional[Sequence[float]] = None,
        distributed: bool = True,
    ):
        """
        Args:
            output_dir: the pictures go to ``output_dir/<dataset_name>/``.
            score_thresh, iou_thresh, worst_images, oks_sigmas: of :func:`analyze_detections`.
            distributed: gather the detections of all processes; the main one writes.
        """
        self._dataset_name = dataset_name
        self._output_dir = os.path.join(output_dir, dataset_name)
        self._settings = dict(
            score_thresh=score_thresh,
            iou_thresh=iou_thresh,
            worst_images=worst_images,
            oks_sigmas=oks_sigmas,
        )
        self._distributed = distributed
        self.reset()

    def reset(self) -> None:
        self._detections: List[Dict] = []

    def process(self, inputs: List[dict], outputs: List[dict]) -> None:
        from detectron2.evaluation.coco_evaluation import instances_to_coco_json

        for inp, out in zip(inputs, outputs):
            if "instances" in out:
                instances = out["instances"].to("cpu")
                self._detections.extend(instances_to_coco_json(instances, inp["image_id"]))

    def evaluate(self):
        from detectron2.utils import comm

        detections = self._detections
        if self._distributed:
            comm.synchronize()
            detections = [d for part in comm.gather(detections, dst=0) for d in part]
            if not comm.is_main_process():
                return OrderedDict()
        coco_gt, to_dataset_id = dataset_coco(self._dataset_name)
        detections = [dict(d, category_id=to_dataset_id[d["category_id"]]) for d in detections]
        files = {i["id"]: i["file_name"] for i in coco_gt.dataset["images"]}
        analyze_detections(coco_gt, detections, self._output_dir, files, **self._settings)
        return OrderedDict()


def dataset_coco(dataset_name: str):
    """(pycocotools ``COCO`` of a registered dataset's dicts, contiguous class id -> its
    category id there)."""
    from detectron2.data import MetadataCatalog
    from detectron2.data.datasets.coco import convert_to_coco_dict
    from pycocotools.coco import COCO

    coco_dict = convert_to_coco_dict(dataset_name)
    meta = MetadataCatalog.get(dataset_name)
    mapping = meta.get("thing_dataset_id_to_contiguous_id")
    if mapping:
        to_dataset_id = {v: k for k, v in mapping.items()}
    else:
        to_dataset_id = {i: i for i in range(len(meta.thing_classes))}
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO()
        coco.dataset = coco_dict
        coco.createIndex()
    return coco, to_dataset_id
