"""Pictures of what the model sees: heatmap overlays and training curves."""

import json
import os
from collections import defaultdict
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from torch import Tensor

if TYPE_CHECKING:  # no import of the data package at run time: pictures stay dependency-light
    from ..data.stats import DatasetStatistics

__all__ = [
    "heatmap_overlay",
    "draw_predictions",
    "draw_tracks",
    "update_trails",
    "load_metrics",
    "plot_training_curves",
    "plot_box_sizes",
    "draw_training_sample",
    "image_grid",
]


def heatmap_overlay(
    image: np.ndarray,
    heatmap: Tensor,
    stride: int,
    input_size: Optional[Tuple[int, int]] = None,
    alpha: float = 0.6,
) -> np.ndarray:
    """Blend the per-position max over classes of a heatmap onto an image.

    Args:
        image: (H, W, 3) uint8 RGB.
        heatmap: (K, h, w) probabilities in [0, 1] on the model's output grid, covering the
            image's top-left ``(h * stride, w * stride)`` pixels (the padded input).
        stride: input pixels per heatmap cell.
        input_size: (height, width) of the image the model saw (before padding), when the model
            saw a resized copy of ``image``; default the size of ``image``.
        alpha: weight of the heatmap colours where the heatmap is high.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    H, W = image.shape[:2]
    in_h, in_w = input_size or (H, W)
    peak = heatmap.max(dim=0).values.float().clamp(0, 1).cpu().numpy()  # (h, w)
    # the grid covers the padded input: scale by the stride, cut to the input, resize to the image
    grid = (peak.shape[1] * stride, peak.shape[0] * stride)
    peak = cv2.resize(cv2.resize(peak, grid)[:in_h, :in_w], (W, H))
    peak = np.sqrt(np.clip(peak, 0, 1))  # lifts the gaussians' tails into view
    colour = cv2.applyColorMap((peak * 255).astype(np.uint8), cv2.COLORMAP_JET)[:, :, ::-1]
    weight = alpha * np.clip(peak * 1.5, 0.3, 1.0)[:, :, None]
    return (image * (1 - weight) + colour * weight).astype(np.uint8)


def draw_predictions(image: np.ndarray, instances, metadata) -> np.ndarray:
    """Detections drawn by Detectron2's ``Visualizer`` on an (H, W, 3) uint8 RGB image, labelled
    with ``metadata.thing_classes``; returns the RGB picture."""
    from detectron2.utils.visualizer import ColorMode, Visualizer

    v = Visualizer(image, metadata, instance_mode=ColorMode.IMAGE)
    return v.draw_instance_predictions(instances.to("cpu")).get_image()


def update_trails(
    trails: Dict[int, List[Tuple[float, float]]], instances, length: int = 15
) -> Dict[int, List[Tuple[float, float]]]:
    """The trails of the tracks in ``instances`` (``pred_boxes``, ``pred_track_ids``): per track
    id, the box centres of its last ``length`` frames, this frame's last; tracks absent from
    this frame are dropped. ``trails`` is not modified."""
    boxes = instances.pred_boxes.tensor.cpu()
    centers = ((boxes[:, :2] + boxes[:, 2:]) / 2).tolist()
    ids = instances.pred_track_ids.tolist()
    return {i: (trails.get(i, []) + [tuple(c)])[-length:] for i, c in zip(ids, centers)}


def draw_tracks(
    image: np.ndarray, instances, metadata, trails: Dict[int, List[Tuple[float, float]]]
) -> np.ndarray:
    """Tracks drawn by Detectron2's ``Visualizer`` on an (H, W, 3) uint8 RGB image: each box in
    its track's colour, labelled "<id> <class> <score %>", and its trail (``trails[id]``, see
    :func:`update_trails`) as a line through its last centres. Returns the RGB picture."""
    from detectron2.utils.colormap import colormap
    from detectron2.utils.visualizer import Visualizer

    instances = instances.to("cpu")
    palette = colormap(rgb=True, maximum=1)
    names = metadata.get("thing_classes", None) or []
    ids = instances.pred_track_ids.tolist()
    colours = [palette[i % len(palette)] for i in ids]
    labels = [
        f"{i} {names[c] if c < len(names) else c} {s:.0%}"
        for i, c, s in zip(ids, instances.pred_classes.tolist(), instances.scores.tolist())
    ]
    v = Visualizer(image, metadata)
    v.overlay_instances(boxes=instances.pred_boxes, labels=labels, assigned_colors=colours)
    for i, colour in zip(ids, colours):
        points = trails.get(i, [])
        if len(points) > 1:
            xs, ys = zip(*points)
            v.draw_line(list(xs), list(ys), color=colour, linewidth=2)
    return v.get_output().get_image()


def load_metrics(path: str) -> List[Dict]:
    """The records of Detectron2's ``metrics.json`` (one JSON object per line)."""
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(metrics_json: str, out_png: str, keys: Sequence[str] = ()) -> str:
    """Plot losses (left) and evaluation AP / AP50 (right) against iteration, from a Detectron2
    ``metrics.json``; returns ``out_png``.

    Args:
        keys: loss keys to draw; default every key starting with "loss" or named "total_loss".
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = load_metrics(metrics_json)
    if not records:
        raise ValueError(f"{metrics_json} has no records")
    series = defaultdict(list)
    for r in records:
        for k, v in r.items():
            if k != "iteration" and isinstance(v, (int, float)):
                series[k].append((r["iteration"], v))
    keys = list(keys) or sorted(k for k in series if k.startswith("loss") or k == "total_loss")
    ap_keys = [k for k in series if k.endswith("/AP") or k.endswith("/AP50")]

    fig, (ax_loss, ax_ap) = plt.subplots(1, 2, figsize=(12, 4.5))
    for k in keys:
        it, v = zip(*series[k])
        ax_loss.plot(it, v, label=k, linewidth=1)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("iteration")
    ax_loss.set_title("training losses")
    ax_loss.legend(fontsize=8)
    for k in sorted(ap_keys):
        it, v = zip(*series[k])
        ax_ap.plot(it, v, marker="o", label=k)
    ax_ap.set_xlabel("iteration")
    ax_ap.set_ylim(0, 100)
    ax_ap.set_title("evaluation" if ap_keys else "evaluation (none recorded)")
    if ap_keys:
        ax_ap.legend(fontsize=8)
    ax_ap.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def plot_box_sizes(stats: "DatasetStatistics", out_png: str, title: str = "") -> str:
    """Histograms of the boxes' shorter and longer sides at the training scale (log bins), per
    class stacked, with the output stride marked: what lies left of it CenterNet sees as at most
    one cell. ``stats`` from :func:`centernet_d2.data.dataset_statistics`; returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sides = stats.sides  # (M, 2)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    if len(sides):
        positive = sides[sides > 0]
        low = max(min(positive.min(initial=1.0), stats.stride) / 2, 0.25)
        high = max(positive.max(initial=1.0), 2.0 * stats.stride) * 1.5
        bins = np.geomspace(low, high, 40)
    else:
        bins = np.geomspace(0.5, 2.0 * stats.stride, 10)
    for ax, values, label in (
        (axes[0], sides.min(axis=1) if len(sides) else sides, "shorter side"),
        (axes[1], sides.max(axis=1) if len(sides) else sides, "longer side"),
    ):
        per_class = [values[stats.classes == k] for k in range(len(stats.class_names))]
        ax.hist(per_class, bins=bins, stacked=True, label=list(stats.class_names))
        ax.axvline(stats.stride, color="red", linestyle="--")
        ax.text(
            stats.stride,
            ax.get_ylim()[1] * 0.95,
            f" stride {stats.stride} px",
            color="red",
            va="top",
        )
        ax.set_xscale("log")
        ax.set_xlabel(f"box {label} at the training scale (px)")
        ax.set_ylabel("boxes")
    axes[0].set_title(
        f"{100 * stats.small_share:.1f} % of {stats.num_objects} boxes below the stride"
    )
    axes[1].set_title(title)
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png


def draw_training_sample(
    image: np.ndarray,
    boxes: np.ndarray,
    labels: Sequence[str],
    heatmap: Tensor,
    stride: int,
) -> np.ndarray:
    """A training image after augmentation with its target heatmap (max over classes) blended in
    and the ground-truth boxes drawn by Detectron2's ``Visualizer``.

    Args:
        image: (H, W, 3) uint8 RGB, the augmented image (before padding).
        boxes: (M, 4) XYXY, image pixels; labels: M strings.
        heatmap: (K, h, w) target heatmap on the output grid of the padded image.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    from detectron2.utils.visualizer import Visualizer

    overlay = heatmap_overlay(image, heatmap, stride)
    v = Visualizer(overlay)
    return v.overlay_instances(boxes=boxes, labels=list(labels)).get_image()


def image_grid(images: Sequence[np.ndarray], columns: int = 4, pad: int = 4) -> np.ndarray:
    """Images of any sizes in rows of ``columns``, each in a cell of the largest size, on white."""
    if not images:
        raise ValueError("image_grid needs at least one image")
    cell_h = max(i.shape[0] for i in images) + pad
    cell_w = max(i.shape[1] for i in images) + pad
    rows = (len(images) + columns - 1) // columns
    grid = np.full((rows * cell_h, min(columns, len(images)) * cell_w, 3), 255, np.uint8)
    for n, img in enumerate(images):
        y, x = (n // columns) * cell_h, (n % columns) * cell_w
        grid[y : y + img.shape[0], x : x + img.shape[1]] = img
    return grid
