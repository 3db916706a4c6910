#!/usr/bin/env python
"""Export a CenterNet to TorchScript or ONNX, decoding included, and check it against PyTorch.

    python tools/export_model.py \\
        --config-file configs/CPU/centernet_MobileNetV3_small_FPN_shapes.yaml --format onnx \\
        --output output/export --sample-image datasets/shapes/val/000001.jpg \\
        MODEL.WEIGHTS output/main_job/model_final.pth

Writes ``--output``/model.onnx or model.ts: images (N, 3, H, W) float32 0-255 in INPUT.FORMAT order
-> boxes (N, T, 4) XYXY, scores (N, T), classes (N, T) (and keypoints (N, T, J, 3) with
MODEL.KEYPOINT_ON); see centernet_d2/export.py and
docs/export.md. A tracking config (CenterTrack) also takes prev_images and prev_heatmaps and gives
displacements (centernet_d2/tracking/export.py); each sample image's previous frame is the one
before it, its heatmap the model's detections there. Then runs the file (onnxruntime on the CPU,
or ``torch.jit.load``) and PyTorch on the sample images, prints the largest differences and fails
if they exceed ``--tolerance``.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import logging

import torch
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import class_metadata
from centernet_d2.export import (
    EXPORT_FORMATS,
    ONNX_OPSET,
    export_and_check,
    export_metadata,
    export_size,
    load_image,
    output_names,
    random_image,
)
from centernet_d2.modeling import CenterTrack
from centernet_d2.tracking.export import (
    export_tracking_and_check,
    tracking_inputs_from_frames,
)
from centernet_d2.utils.cli import config_tool_parser, run_tool

logger = logging.getLogger("centernet_d2")


def get_parser():
    parser = config_tool_parser(__doc__.splitlines()[0])
    parser.add_argument("--format", required=True, choices=EXPORT_FORMATS)
    parser.add_argument("--output", required=True, help="folder for model.ts / model.onnx")
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
        help="input size of the export, multiples of the backbone's size divisibility "
        "(default: a square of INPUT.MIN_SIZE_TEST)",
    )
    parser.add_argument("--opset", type=int, default=ONNX_OPSET, help="ONNX opset version")
    parser.add_argument(
        "--tolerance",
        type=float,
        default=1e-3,
        help="largest accepted difference from PyTorch of boxes (pixels) and scores",
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return parser


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
    metadata = export_metadata(
        size,
        cfg.INPUT.FORMAT,
        cfg.MODEL.PIXEL_MEAN,
        cfg.MODEL.PIXEL_STD,
        cfg.MODEL.CENTERNET.SCORE_THRESH_TEST,
        names,
        output_names(model),
    )
    if isinstance(model, CenterTrack):  # frames, previous frames and heatmaps in
        inputs = tracking_inputs_from_frames(model, images)
        path, diffs = export_tracking_and_check(
            model,
            tuple(x[:1] for x in inputs),
            args.output,
            args.format,
            inputs,
            metadata,
            args.opset,
        )
    else:
        path, diffs = export_and_check(
            model, images[:1], args.output, args.format, images, metadata, args.opset
        )
    runtime = "onnxruntime" if args.format == "onnx" else "TorchScript"
    tracked = "".join(
        f", max |{name}| difference {diffs[name]:.3g}{unit}"
        for name, unit in (("displacements", " px"), ("keypoints", ""))
        if name in diffs
    )
    print(
        f"{path}: {runtime} vs PyTorch on {len(images)} image(s) of {size[0]}x{size[1]}: "
        f"max |boxes| difference {diffs['boxes']:.3g} px, max |scores| difference "
        f"{diffs['scores']:.3g}{tracked}, {diffs['classes']} differing classes"
    )
    worst = max(
        diffs["boxes"],
        diffs["scores"],
        diffs.get("displacements", 0.0),
        diffs.get("keypoints", 0.0),
    )
    if worst > args.tolerance or diffs["classes"]:
        raise SystemExit(f"the export differs from PyTorch by more than {args.tolerance}")
    return path, diffs


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
