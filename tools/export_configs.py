#!/usr/bin/env python
"""Export every config (random weights) to torch.export and ONNX and check each file against
PyTorch; prints a Markdown table, one line per config: the time and largest differences of each
format, or why it does not export.

    python tools/export_configs.py --configs 'configs/*/*.yaml' --size 128

About a minute per config on two CPU cores.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import glob
import logging
import os
import tempfile
import time
import warnings

import torch
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.deploy.runtime import first_line
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import export_and_check, export_size, random_image
from centernet_d2.utils.cli import add_debug_flag, run_tool

FORMATS = ("pt2", "onnx")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", default="configs/*/*.yaml", help="a glob of config files")
    parser.add_argument("--size", type=int, default=128, help="INPUT.MIN_SIZE_TEST of the export")
    add_debug_flag(parser)
    return parser


def export_config(path: str, size: int) -> str:
    """One table row: per format "seconds, max |boxes| px, max |scores|", or the error."""
    opts = [
        "MODEL.DEVICE",
        "cpu",
        "INPUT.MIN_SIZE_TEST",
        str(size),
        "INPUT.MAX_SIZE_TEST",
        str(size),
    ]
    cfg = setup_cfg(path, opts)
    model = build_model(cfg).eval()
    shape = export_size(size, model.backbone.size_divisibility)
    inputs = model.example_inputs(torch.stack([random_image(shape, 0), random_image(shape, 1)]))
    cells = [os.path.relpath(path), type(model).__name__]
    for fmt in FORMATS:
        start = time.perf_counter()
        try:
            with tempfile.TemporaryDirectory() as out:
                _, diffs = export_and_check(model, tuple(x[:1] for x in inputs), out, fmt, inputs)
        except Exception as e:  # the row says why; the table goes on
            cells.append(f"does not export: {first_line(e)[:120]}")
            continue
        worst = max(v for k, v in diffs.items() if k != "classes")
        cells.append(
            f"{time.perf_counter() - start:.0f} s, max diff {worst:.1e}, "
            f"{diffs['classes']} unmatched"
        )
    return "| " + " | ".join(cells) + " |"


def main(args):
    setup_logger(name="centernet_d2")
    logging.getLogger("centernet_d2").setLevel(logging.WARNING)
    warnings.simplefilter("ignore")
    paths = sorted(glob.glob(args.configs))
    if not paths:
        raise ValueError(f"--configs {args.configs!r} matches no file")
    print("| config | model | " + " | ".join(FORMATS) + " |")
    print("|---|---|" + "---|" * len(FORMATS))
    rows = []
    for path in paths:
        rows.append(export_config(path, args.size))
        print(rows[-1], flush=True)
    return rows


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
