#!/usr/bin/env python
"""Export a CenterNet model, decoding included, and check the file against PyTorch.

    python tools/export_model.py \\
        --config-file configs/CPU/centernet_multilevel_MobileNetV3_small_FPN_shapes.yaml \\
        --format onnx --output output/export --sample-image datasets/shapes/val/000001.jpg \\
        MODEL.WEIGHTS output/main_job/model_final.pth

Writes ``--output``/model.pt2, model.onnx, model.xml (OpenVINO, with model.onnx) or model.ts:
images (N, 3, H, W) float32 0-255 in INPUT.FORMAT order (CenterTrack: also prev_images and
prev_heatmaps) -> boxes (N, T, 4) XYXY, scores (N, T), classes (N, T) (and keypoints (N, T, J, 3)
or displacements (N, T, 2)); see centernet_d2/export/adapter.py and docs/export.md. For a tracking
config each sample image's previous frame is the one before it, its heatmap the model's
detections there. Then runs the file (onnxruntime, OpenVINO or PyTorch) and PyTorch on the
sample images, prints the largest differences and fails if they exceed ``--tolerance``.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import dataclasses
import logging

import torch
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.data.register import check_registered
from centernet_d2.deploy import RUNTIMES
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import class_metadata
from centernet_d2.export import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    ExportAdapter,
    export_and_check,
    export_metadata,
    export_size,
    load_image,
    random_image,
)
from centernet_d2.tracking import TrackerSettings
from centernet_d2.utils.cli import config_tool_parser, run_tool

logger = logging.getLogger("centernet_d2")
UNITS = {"boxes": " px", "displacements": " px"}


def get_parser():
    parser = config_tool_parser(__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("--output", required=True, help="folder of the exported file")
    parser.add_argument(
        "--sample-image",
        action="append",
        default=[],
        metavar="FILE",
        help="an image for tracing (the first) and the parity check (all); repeat the flag for "
        "more images; default: a random image",
    )
    parser.add_argument(
        "--size",
        nargs=2,
        type=int,
        metavar=("H", "W"),
        help="input size to trace at, multiples of the backbone's size divisibility (default: a "
        "square of INPUT.MIN_SIZE_TEST)",
    )
    parser.add_argument(
        "--fixed-size",
        action="store_true",
        help="export for the traced size only (default: any multiple of the size divisibility "
        "where the model allows; TorchScript is always fixed)",
    )
    parser.add_argument(
        "--runtime",
        choices=sorted({r for rs in RUNTIMES.values() for r in rs}),
        help="runtime of the check (default: onnxruntime for ONNX, OpenVINO for openvino, "
        "PyTorch for pt2 and torchscript)",
    )
    parser.add_argument(
        "--calibration-images",
        type=int,
        default=32,
        metavar="N",
        help="onnx_int8: calibrate on the first N images of DATASETS.TRAIN[0]",
    )
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset version")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest accepted difference from PyTorch of boxes (pixels), scores and the other "
        "outputs",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


def calibration_images(cfg, size, count):
    """The first ``count`` images of DATASETS.TRAIN[0] as the export takes them (1, 3, H, W)."""
    if not cfg.DATASETS.TRAIN:
        raise ValueError("onnx_int8 calibrates on DATASETS.TRAIN[0]: the config has none")
    check_registered(cfg.DATASETS.TRAIN[:1], "DATASETS.TRAIN")
    files = [d["file_name"] for d in DatasetCatalog.get(cfg.DATASETS.TRAIN[0])[:count]]
    logger.info(f"INT8 calibration on {len(files)} image(s) of {cfg.DATASETS.TRAIN[0]}")
    return [load_image(f, size, cfg.INPUT.FORMAT)[None].numpy() for f in files]


def tracking_metadata(cfg):
    """The tracker of a tracking model's deployment: TEST.TRACKING."""
    settings = dataclasses.asdict(TrackerSettings.from_config(cfg))
    return {"settings": settings, "prev_heatmap_score": cfg.TEST.TRACKING.PREV_HEATMAP_SCORE}


def main(args):
    setup_logger(name="centernet_d2")
    cfg = setup_cfg(args.config_file, args.opts)
    cfg.freeze()
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)  # also the class names it holds
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    size = args.size or export_size(cfg.INPUT.MIN_SIZE_TEST, model.backbone.size_divisibility)
    size = tuple(size)
    if args.sample_image:
        images = torch.stack([load_image(p, size, cfg.INPUT.FORMAT) for p in args.sample_image])
    else:
        logger.info("no --sample-image: tracing and checking on a random image")
        images = random_image(size)[None]
    names = class_metadata(cfg, model.class_names).get("thing_classes", None)
    if names and len(names) != cfg.MODEL.CENTERNET.NUM_CLASSES:
        names = None
    adapter = ExportAdapter(model)
    metadata = export_metadata(
        adapter,
        size,
        cfg.INPUT.FORMAT,
        cfg.MODEL.CENTERNET.SCORE_THRESH_TEST,
        names,
        test_resize=(cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST),
        tracking=tracking_metadata(cfg) if len(adapter.input_names) > 1 else None,
    )
    calibration = None
    if args.format == "onnx_int8":
        calibration = calibration_images(cfg, size, args.calibration_images)
    inputs = model.example_inputs(images.to(model.device))
    path, diffs = export_and_check(
        model,
        tuple(x[:1] for x in inputs),
        args.output,
        args.format,
        inputs,
        metadata,
        args.opset,
        args.runtime,
        dynamic_size=not args.fixed_size,
        calibration=calibration,
    )
    runtime = args.runtime or {"pt2": "torch.export", "torchscript": "TorchScript"}.get(
        args.format, "OpenVINO" if args.format == "openvino" else "onnxruntime"
    )
    measured = ", ".join(
        (
            f"{diffs[n]} differing classes"
            if n == "classes"
            else f"max |{n}| {diffs[n]:.3g}{UNITS.get(n, '')}"
        )
        for n in adapter.output_names
    )
    print(
        f"{path}: {runtime} vs PyTorch on {len(images)} image(s) of {size[0]}x{size[1]}: {measured}"
    )
    if args.format == "onnx_int8":  # judged by its AP: tools/benchmark.py --formats
        return path, diffs
    worst = max(v for n, v in diffs.items() if n != "classes")
    if worst > args.tolerance or diffs["classes"]:
        raise SystemExit(f"the export differs from PyTorch by more than {args.tolerance}")
    return path, diffs


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
