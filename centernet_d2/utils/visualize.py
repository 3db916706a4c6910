"""Pictures of what the model sees: heatmap overlays and training curves."""

import json
import os
from collections import defaultdict
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from torch import Tensor

__all__ = ["heatmap_overlay", "load_metrics", "plot_training_curves"]


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
