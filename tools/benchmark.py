#!/usr/bin/env python
"""Speed and memory of a CenterNet config against Detectron2's RetinaNet and FCOS; with
``--formats``, one trained model's AP and latency in each deployment format.

    python tools/benchmark.py \\
        --config-file configs/COCO-Detection/centernet_R_18_deconv_140e.yaml --output out/bench
    python tools/benchmark.py --formats --config-file output/main_job/config.yaml \\
        --output output/formats MODEL.WEIGHTS output/main_job/model_final.pth

Writes ``benchmark.json`` and ``benchmark.png`` (``formats.json`` and ``formats.png``) into
``--output`` and prints a markdown table.
The definitions of every number are in ``benchmarks/runs.py``; the pass/fail limits are
:data:`LIMITS` below (docs/benchmark.md).
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import json
import logging
import os
import sys

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.data.register import check_registered
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import (
    ExportAdapter,
    export_metadata,
    export_model,
    export_size,
    load_image,
)
from centernet_d2.utils.cli import add_debug_flag, run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the benchmark is a package at the repository root, not in the library
    sys.path.insert(0, ROOT)
from benchmarks.formats import (  # noqa: E402  isort:skip
    FORMATS,
    format_table,
    plot_formats,
    run_format_benchmark,
)

from benchmarks.peers import PEERS  # noqa: E402  isort:skip
from benchmarks.report import compare, markdown_table, plot_benchmark  # noqa: E402  isort:skip
from benchmarks.runs import choose_precision, run_benchmark  # noqa: E402  isort:skip

# What CenterNet must reach (docs/benchmark.md): (description, ratio of report["ratios"], limit);
# met when the ratio is at or below the limit; "{b}" stands for each inference batch size.
LIMITS = (
    ("latency vs RetinaNet (batch {b})", "latency_vs_retinanet_b{b}", 0.45),
    ("latency vs FCOS (batch {b})", "latency_vs_fcos_b{b}", 0.8),
    ("decoding share of inference (batch {b})", "decode_share_b{b}", 0.03),
    ("target building share of a training step", "targets_share", 0.05),
    ("training step vs RetinaNet", "train_vs_retinanet", 0.6),
    ("training activation memory vs RetinaNet", "activation_vs_retinanet", 0.7),
)
DEFAULT_CONFIG = "configs/COCO-Detection/centernet_R_18_deconv_140e.yaml"
CHANNELS_LAST = {"config": None, "on": True, "off": False}


def _ints(text):
    return [int(x) for x in text.split(",") if x]


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", default=DEFAULT_CONFIG, metavar="FILE")
    parser.add_argument("--output", default="output/benchmark", help="folder for json and png")
    parser.add_argument(
        "--size", type=int, help="input size in px (default: the config's INPUT.MIN_SIZE_TEST)"
    )
    parser.add_argument("--batch-sizes", type=_ints, default=[1, 8], help="inference batches")
    parser.add_argument(
        "--train-batch-size", type=int, help="training batch (default: largest --batch-sizes)"
    )
    parser.add_argument("--objects", type=int, default=50, help="GT objects per training image")
    parser.add_argument(
        "--sizes", type=_ints, default=[256, 384, 512, 768, 1024], help="latency-vs-size inputs"
    )
    parser.add_argument(
        "--object-counts", type=_ints, default=[1, 10, 50, 100, 500], help="targets-vs-objects"
    )
    parser.add_argument("--peers", default=",".join(PEERS), help=f"among {','.join(PEERS)}")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before each timing")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median, p10-p90)")
    parser.add_argument(
        "--sweep-repeats", type=int, default=3, help="timed runs of each size / object count"
    )
    parser.add_argument("--device", help="default: the config's MODEL.DEVICE")
    parser.add_argument("--amp", action="store_true", help="CPU: bfloat16 autocast")
    parser.add_argument(
        "--channels-last",
        choices=sorted(CHANNELS_LAST),
        default="on",
        help="CPU memory format: 'on' (default) / 'off': every model channels-last / NCHW; "
        "'config': CenterNet as MODEL.CENTERNET.CHANNELS_LAST says, the peers in Detectron2's NCHW",
    )
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--formats",
        action="store_true",
        help="AP and batch-1 latency of the trained model (MODEL.WEIGHTS) in each deployment "
        "format on DATASETS.TEST[0] (benchmarks/formats.py)",
    )
    parser.add_argument(
        "--format-list",
        default=",".join(FORMATS),
        help=f"--formats: among {','.join(FORMATS)}",
    )
    parser.add_argument("--images", type=int, default=0, help="--formats: first N test images")
    parser.add_argument("opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE pairs")
    return add_debug_flag(parser)


def benchmark_formats(cfg, args):
    """``--formats``: export the trained model to ONNX (and INT8, OpenVINO), then AP and latency
    of each format (benchmarks/formats.py)."""
    if not cfg.MODEL.WEIGHTS:
        raise ValueError("--formats measures a trained model: set MODEL.WEIGHTS")
    if not cfg.DATASETS.TEST or not cfg.DATASETS.TRAIN:
        raise ValueError("--formats needs DATASETS.TEST (AP) and DATASETS.TRAIN (INT8 calibration)")
    check_registered([cfg.DATASETS.TEST[0], cfg.DATASETS.TRAIN[0]], "DATASETS")
    cfg.defrost()
    cfg.MODEL.DEVICE = "cpu"
    model = build_model(cfg).eval()
    SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    dataset = DatasetCatalog.get(cfg.DATASETS.TEST[0])
    dataset = dataset[: args.images] if args.images else dataset
    size = export_size(cfg.INPUT.MIN_SIZE_TEST, model.backbone.size_divisibility)
    metadata = export_metadata(
        ExportAdapter(model),
        size,
        cfg.INPUT.FORMAT,
        cfg.MODEL.CENTERNET.SCORE_THRESH_TEST,
        test_resize=(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST),
    )
    image = load_image(dataset[0]["file_name"], size, cfg.INPUT.FORMAT)[None]
    onnx_path, _ = export_model(model, image, args.output, "onnx", metadata)
    calibration = [d["file_name"] for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:32]]
    report = run_format_benchmark(
        model,
        onnx_path,
        dataset,
        MetadataCatalog.get(cfg.DATASETS.TEST[0]).json_file,
        calibration,
        formats=[f for f in args.format_list.split(",") if f],
        threads=(1, 0),
        repeats=args.repeats,
        warmup=args.warmup,
    )
    report["meta"].update(config=args.config_file, weights=cfg.MODEL.WEIGHTS)
    with open(os.path.join(args.output, "formats.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_formats(report, os.path.join(args.output, "formats.png"))
    print(format_table(report))
    return report


def main(args):
    setup_logger(name="centernet_d2")
    setup_logger(name="benchmarks")
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = setup_cfg(args.config_file, args.opts)
    if args.formats:
        os.makedirs(args.output, exist_ok=True)
        return benchmark_formats(cfg, args)
    device = args.device or cfg.MODEL.DEVICE
    if device.startswith("cuda") and not torch.cuda.is_available():
        logging.getLogger("centernet_d2").info("CUDA is not available: running on cpu")
        device = "cpu"
    report = run_benchmark(
        cfg,
        choose_precision(device, amp=args.amp, channels_last=CHANNELS_LAST[args.channels_last]),
        batch_sizes=args.batch_sizes,
        size=args.size,
        train_batch_size=args.train_batch_size,
        num_objects=args.objects,
        scaling_sizes=args.sizes,
        object_counts=args.object_counts,
        peers=[p for p in args.peers.split(",") if p],
        warmup=args.warmup,
        repeats=args.repeats,
        sweep_repeats=args.sweep_repeats,
    )
    report["meta"]["config"] = args.config_file
    report["ratios"], report["targets"] = compare(report, LIMITS)
    os.makedirs(args.output, exist_ok=True)
    with open(os.path.join(args.output, "benchmark.json"), "w") as f:
        json.dump(report, f, indent=2)
    plot_benchmark(report, os.path.join(args.output, "benchmark.png"))
    table = markdown_table(report)
    print(table)
    return report


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
