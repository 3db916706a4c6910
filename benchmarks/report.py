"""The benchmark's report: CenterNet's ratios against the peers, the pass/fail check against
limits given by the caller (``LIMITS`` in ``tools/benchmark.py``), a markdown table and a plot."""

from typing import Dict, List, Sequence, Tuple

import numpy as np

__all__ = ["compare", "markdown_table", "plot_benchmark"]

# (description, ratio key, limit); "{b}" in both stands for each inference batch size
Limits = Sequence[Tuple[str, str, float]]


def _ratios(models: Dict[str, Dict], batch_sizes: Sequence[int]) -> Dict[str, float]:
    c = models["centernet"]
    peers = [p for p in models if p != "centernet"]
    ratios: Dict[str, float] = {}
    for b in batch_sizes:
        inf = c["inference"][str(b)]
        ratios[f"decode_share_b{b}"] = inf["decode"]["median"] / inf["total"]["median"]
        for peer in peers:
            peer_total = models[peer]["inference"][str(b)]["total"]["median"]
            ratios[f"latency_vs_{peer}_b{b}"] = inf["total"]["median"] / peer_total
    ratios["targets_share"] = c["train"]["targets"]["median"] / c["train"]["total"]["median"]
    for peer in peers:
        p = models[peer]
        ratios[f"train_vs_{peer}"] = c["train"]["total"]["median"] / p["train"]["total"]["median"]
        ratios[f"activation_vs_{peer}"] = c["activation_mb"] / p["activation_mb"]
        ratios[f"gflops_vs_{peer}"] = c["gflops"] / p["gflops"]
        ratios[f"params_vs_{peer}"] = c["params"] / p["params"]
    return ratios


def compare(report: Dict, limits: Limits) -> Tuple[Dict[str, float], List[Dict]]:
    """CenterNet against the peers in a :func:`~.runs.run_benchmark` report: its ratios (shares
    of its own time, and its time, memory, GFLOPs and parameters over each peer's), and per limit
    whose ratio was measured ``{"target", "ratio", "limit", "met"}``: met when at or below it."""
    batch_sizes = report["meta"]["batch_sizes"]
    ratios = _ratios(report["models"], batch_sizes)
    targets = []
    for name, key, limit in limits:
        for b in batch_sizes if "{b}" in key else [None]:
            k = key.format(b=b)
            if k in ratios:
                targets.append(
                    {
                        "target": name.format(b=b),
                        "ratio": ratios[k],
                        "limit": limit,
                        "met": ratios[k] <= limit,
                    }
                )
    return ratios, targets


def _ms(s: Dict) -> str:
    return f"{s['median']:.1f} ({s['p10']:.1f}-{s['p90']:.1f})"


def markdown_table(report: Dict) -> str:
    """The report as markdown: one row per model, then the targets."""
    meta, models = report["meta"], report["models"]
    bs = meta["batch_sizes"]
    head = ["model", "format", "params (M)", "GFLOPs"]
    head += [f"latency b{b} ms" for b in bs]
    head += [f"decode b{bs[0]} ms", f"train step b{meta['train_batch_size']} ms"]
    head += ["targets ms", "activations MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        row = [name, m.get("memory_format", "?"), f"{m['params'] / 1e6:.2f}", f"{m['gflops']:.1f}"]
        row += [_ms(m["inference"][str(b)]["total"]) for b in bs]
        row += [_ms(m["inference"][str(bs[0])]["decode"]), _ms(m["train"]["total"])]
        row += [_ms(m["train"]["targets"]), f"{m['activation_mb']:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target (CenterNet) | measured | limit | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['target']} | {t['ratio']:.3f} | {t['limit']} | {met} |")
    return "\n".join(lines)


def plot_benchmark(report: Dict, path: str) -> None:
    """PNG of the report: inference and training phases per model, latency over input size,
    target-building time over objects per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, models = report["meta"], report["models"]
    names = list(models)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, key, phases, title in (
        (
            axes[0, 0],
            "inference",
            ("preprocess", "network", "decode"),
            f"inference, batch {meta['batch_sizes'][0]} ({meta['size']} px)",
        ),
        (
            axes[0, 1],
            "train",
            ("data", "targets", "forward_backward", "optimizer"),
            f"training step, batch {meta['train_batch_size']}",
        ),
    ):
        bottom = np.zeros(len(names))
        for phase in phases:
            if key == "inference":
                values = [
                    models[n][key][str(meta["batch_sizes"][0])][phase]["median"] for n in names
                ]
            else:
                values = [models[n][key][phase]["median"] for n in names]
            ax.bar(names, values, bottom=bottom, label=phase)
            bottom += np.asarray(values)
        ax.set_ylabel("ms (median)")
        ax.set_title(title)
        ax.legend()
    for ax, key, xlabel, title in (
        (axes[1, 0], "latency_vs_size", "input size (px)", "inference latency, batch 1"),
        (
            axes[1, 1],
            "targets_vs_objects",
            "objects per image",
            f"target building, batch {meta['train_batch_size']}",
        ),
    ):
        for n in names:
            xs = [int(x) for x in models[n][key]]
            ys = [s["median"] for s in models[n][key].values()]
            lo = [s["p10"] for s in models[n][key].values()]
            hi = [s["p90"] for s in models[n][key].values()]
            ax.plot(xs, ys, marker="o", label=n)
            ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms (median, p10-p90)")
        ax.set_title(title)
        if key == "targets_vs_objects":
            ax.set_xscale("symlog")
        ax.legend()
    formats = ", ".join(f"{n} {m.get('memory_format', '?')}" for n, m in models.items())
    dtype = f"{meta['dtype']}; {formats}"
    fig.suptitle(f"{meta['device']} ({meta['gpu'] or meta['cpu']}), {dtype}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
