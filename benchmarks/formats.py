"""Accuracy and latency of one trained model in each deployment format, side by side
(``tools/benchmark.py --formats``).

Every format sees the same inputs: each validation image prepared by
:class:`~centernet_d2.deploy.DeployPredictor` (the model's test resize, padding with the mean),
so that the AP differences are the runtimes' own. Formats (:data:`FORMATS`): PyTorch eager (the
exported function, :class:`~centernet_d2.export.ExportAdapter`), ``torch.compile`` of it,
onnxruntime on the float ONNX file and on its INT8 version (static quantization calibrated on
training images), OpenVINO on the OpenVINO IR. Latency: one image (batch 1), median of
``repeats`` interleaved runs, at each thread count (0: the runtime's default, all cores).
"""

import logging
import os
from typing import Callable, Dict, List, Sequence

import cv2
import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from torch import nn

from centernet_d2.deploy import DeployPredictor, ExportedModel
from centernet_d2.export import ExportAdapter, quantize_int8, save_openvino

from .timing import measure_interleaved

__all__ = ["FORMATS", "format_table", "plot_formats", "run_format_benchmark"]

logger = logging.getLogger(__name__)

FORMATS = ("pytorch", "torch.compile", "onnxruntime", "onnxruntime int8", "openvino")
Runner = Callable[[np.ndarray], Dict[str, np.ndarray]]


def _torch_runner(module: nn.Module, names: Sequence[str], threads: int) -> Runner:
    def run(x: np.ndarray) -> Dict[str, np.ndarray]:
        if threads:
            torch.set_num_threads(threads)
        with torch.no_grad():
            return {n: t.numpy() for n, t in zip(names, module(torch.from_numpy(x)))}

    return run


def _runners(
    name: str, files: Dict[str, str], adapter: nn.Module, compiled: nn.Module, threads: int
) -> Runner:
    if name == "pytorch":
        return _torch_runner(adapter, adapter.output_names, threads)
    if name == "torch.compile":  # compiled once, for every thread count
        return _torch_runner(compiled, adapter.output_names, threads)
    key, runtime = {
        "onnxruntime": ("onnx", "onnxruntime"),
        "onnxruntime int8": ("onnx_int8", "onnxruntime"),
        "openvino": ("openvino", "openvino"),
    }[name]
    path = files[key]
    exported = ExportedModel(path, runtime, threads)
    return lambda x: exported(images=x)


def _coco_ap(
    outputs: List[Dict[str, np.ndarray]], image_ids: Sequence[int], json_file: str
) -> float:
    """COCO box AP (%) of per-image detections (boxes XYXY in image pixels, scores, classes as
    contiguous ids 0..K-1 mapped to the json's sorted category ids)."""
    gt = COCO(json_file)
    categories = sorted(gt.getCatIds())
    results = []
    for image_id, out in zip(image_ids, outputs):
        for box, score, k in zip(out["boxes"], out["scores"], out["classes"]):
            x0, y0, x1, y1 = (float(v) for v in box)
            results.append(
                {
                    "image_id": int(image_id),
                    "category_id": categories[int(k)],
                    "bbox": [x0, y0, x1 - x0, y1 - y0],
                    "score": float(score),
                }
            )
    if not results:
        return 0.0
    evaluation = COCOeval(gt, gt.loadRes(results), "bbox")
    evaluation.params.imgIds = list(image_ids)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return float(evaluation.stats[0] * 100)


def run_format_benchmark(
    model: nn.Module,
    onnx_path: str,
    dataset: List[Dict],
    json_file: str,
    calibration_files: Sequence[str],
    formats: Sequence[str] = FORMATS,
    threads: Sequence[int] = (1, 0),
    warmup: int = 2,
    repeats: int = 20,
) -> Dict:
    """AP on ``dataset`` (Detectron2 dicts with "file_name", "image_id"; ground truth in the COCO
    ``json_file``) and batch-1 latency per format and thread count.

    Args:
        model: the trained model, in eval mode, on the CPU.
        onnx_path: its float ONNX export (``tools/export_model.py --format onnx``); the INT8
            file and the OpenVINO IR are written next to it.
        calibration_files: training images for the INT8 calibration.
    Returns:
        {"formats": {name: {"ap": AP %, "latency_ms": {threads: Stats dict}}}, "meta": ...}.
    """
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"unknown formats {unknown}; known: {list(FORMATS)}")
    predictor = DeployPredictor(onnx_path)
    folder = os.path.dirname(onnx_path)
    files = {"onnx": onnx_path}
    if "onnxruntime int8" in formats:
        calibration = (predictor.preprocess(cv2.imread(f))[0] for f in calibration_files)
        files["onnx_int8"] = quantize_int8(
            onnx_path, os.path.join(folder, "model_int8.onnx"), calibration
        )
    if "openvino" in formats:
        files["openvino"] = os.path.join(folder, "model.xml")
        save_openvino(onnx_path, files["openvino"], predictor.metadata)
    adapter = ExportAdapter(model)
    compiled = torch.compile(adapter, dynamic=False)
    inputs = [predictor.preprocess(cv2.imread(d["file_name"])) for d in dataset]
    report: Dict = {"formats": {name: {"latency_ms": {}} for name in formats}}
    for name in formats:  # AP at the runtime's default threads
        run = _runners(name, files, adapter, compiled, 0)
        outputs = []
        for x, (sx, sy) in inputs:
            out = {k: v[0] for k, v in run(x).items()}
            keep = out["scores"] >= predictor.score_thresh
            out = {k: v[keep] for k, v in out.items()}
            out["boxes"] = out["boxes"] * np.array([sx, sy, sx, sy], np.float32)
            outputs.append(out)
        report["formats"][name]["ap"] = _coco_ap(
            outputs, [d["image_id"] for d in dataset], json_file
        )
        logger.info(f"{name}: AP {report['formats'][name]['ap']:.2f}")
    x = inputs[0][0]
    default_threads = torch.get_num_threads()
    for t in threads:
        runs = {}
        for name in formats:
            run = _runners(name, files, adapter, compiled, t)

            def timed(timer, run=run):
                run(x)
                timer.lap("run")

            runs[name] = timed
        stats = measure_interleaved(runs, torch.device("cpu"), warmup, repeats)
        torch.set_num_threads(default_threads)
        for name in formats:
            report["formats"][name]["latency_ms"][str(t)] = vars(stats[name]["total"])
    report["meta"] = {
        "input": list(x.shape),
        "images": len(dataset),
        "threads": list(threads),
        "cpu_threads": default_threads,
        "repeats": repeats,
        "calibration_images": len(calibration_files),
    }
    return report


def format_table(report: Dict) -> str:
    """The report as a Markdown table: AP, its difference from PyTorch eager, latency per
    thread count and the speed-up over PyTorch eager."""
    threads = report["meta"]["threads"]
    label = {t: f"{t} thread{'s' if t != 1 else ''}" if t else "all threads" for t in threads}
    head = ["format", "AP", "AP vs PyTorch"] + [f"ms, {label[t]}" for t in threads]
    head += [f"speed-up, {label[t]}" for t in threads]
    formats = report["formats"]
    base = formats.get("pytorch")
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in formats.items():
        ms = [r["latency_ms"][str(t)]["median"] for t in threads]
        delta = round(r["ap"] - base["ap"], 2) + 0.0 if base else None  # + 0.0: no "-0.00"
        cells = [name, f"{r['ap']:.2f}", f"{delta:+.2f}" if base else ""]
        cells += [f"{v:.1f}" for v in ms]
        cells += [
            f"{base['latency_ms'][str(t)]['median'] / v:.2f}x" if base else ""
            for t, v in zip(threads, ms)
        ]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def plot_formats(report: Dict, path: str) -> str:
    """AP against batch-1 latency per format and thread count, as a picture at ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    markers = dict(zip(report["meta"]["threads"], "os^"))
    for i, (name, r) in enumerate(report["formats"].items()):
        for t, stats in r["latency_ms"].items():
            label = f"{name} ({'all' if t == '0' else t} thr.)"
            ax.scatter(stats["median"], r["ap"], marker=markers[int(t)], color=f"C{i}", label=label)
    ax.set_xlabel("latency, one image (ms, median)")
    ax.set_ylabel("COCO AP (%)")
    ax.set_title(f"Formats on {report['meta']['images']} validation images")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
