"""Comparing training runs: evaluation AP against iteration, as a table and a picture."""

import math
import os
from typing import Dict, List, Optional, Tuple

from .visualize import load_metrics

__all__ = ["ap_curve", "iterations_to_reach", "compare_table", "plot_ap_comparison"]


def ap_curve(metrics_json: str, key: str = "bbox/AP") -> List[Tuple[int, float]]:
    """(iteration, value) of every evaluation recorded under ``key`` in a Detectron2
    ``metrics.json``, by iteration. Raises ``ValueError`` naming the file when there is none."""
    points = sorted((r["iteration"], float(r[key])) for r in load_metrics(metrics_json) if key in r)
    if not points:
        raise ValueError(
            f"{metrics_json} records no {key!r}: train with TEST.EVAL_PERIOD > 0 to evaluate "
            "during training"
        )
    return points


def iterations_to_reach(curve: List[Tuple[int, float]], value: float) -> Optional[int]:
    """The first evaluated iteration whose AP is at least ``value``; None if never."""
    return next((it for it, ap in curve if ap >= value), None)


def compare_table(curves: Dict[str, List[Tuple[int, float]]], reference: str) -> str:
    """Markdown: per run its final AP, best AP, and the first evaluated iteration at which it
    reached the ``reference`` run's final AP (and that iteration as a fraction of the
    reference's last iteration). Evaluations without any detection (NaN, as Detectron2's
    ``COCOEvaluator`` reports them) do not count for the best AP."""
    if reference not in curves:
        raise ValueError(f"reference run {reference!r} is not among {sorted(curves)}")
    ref_iter, ref_ap = curves[reference][-1]
    lines = [
        f"| run | final iteration | final AP | best AP | iterations to {ref_ap:.2f} AP "
        f"({reference}'s final) | fraction of {ref_iter} |",
        "|---|---|---|---|---|---|",
    ]
    for name, curve in curves.items():
        reach = iterations_to_reach(curve, ref_ap)
        frac = f"{reach / ref_iter:.2f}" if reach is not None else "not reached"
        best = max((v for _, v in curve if not math.isnan(v)), default=math.nan)
        lines.append(
            f"| {name} | {curve[-1][0]} | {curve[-1][1]:.2f} | {best:.2f} "
            f"| {reach if reach is not None else 'not reached'} | {frac} |"
        )
    return "\n".join(lines)


def plot_ap_comparison(
    curves: Dict[str, List[Tuple[int, float]]], out_png: str, title: str = "", key: str = "AP"
) -> str:
    """One line per run: ``key`` against iteration; returns ``out_png``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        it, ap = zip(*curve)
        ax.plot(it, ap, marker="o", label=name)
    ax.set_xlabel("iteration")
    ax.set_ylabel(key)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=100)
    plt.close(fig)
    return out_png
