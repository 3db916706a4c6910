#!/usr/bin/env python
"""Convert torchvision ImageNet weights (ResNet, ResNeXt, MobileNetV2/V3) to Detectron2 checkpoints.

    python tools/convert_torchvision_weights.py resnet18-f37072fd.pth R-18.pkl \\
        --config-file configs/COCO-Detection/centernet_R_18_deconv_140e.yaml

The input is a state dict file you have (``torchvision.models.resnet18(weights=...).state_dict()``
saved with ``torch.save``); nothing is downloaded. The output (``.pkl`` or ``.pth``) goes into
``MODEL.WEIGHTS``. With ``--config-file`` (and ``--opts KEY VALUE ...`` overrides), the model of
that config is built and the checkpoint matched to it: the tool lists the modules the checkpoint
does not cover (the upsampler / FPN and the head, initialised by the model) and fails if a key of
the ImageNet backbone is missing, unexpected or of another shape.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import logging

from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.convert import checkpoint_key_report, convert_torchvision_file, module_prefixes
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.utils.cli import add_debug_flag, run_tool

logger = logging.getLogger("centernet_d2")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="torchvision state dict (.pth)")
    parser.add_argument("output", help="Detectron2 checkpoint to write (.pkl or .pth)")
    parser.add_argument(
        "--config-file", metavar="FILE", help="check the checkpoint against this config's model"
    )
    parser.add_argument(
        "--opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs, last"
    )
    return add_debug_flag(parser)


def check_against_config(conversion, config_file, opts):
    """Build the config's model on the CPU and match the converted keys to it; returns the
    KeyReport and the prefix of the ImageNet backbone's keys in the model."""
    cfg = setup_cfg(config_file, list(opts) + ["MODEL.DEVICE", "cpu"])
    model_keys = build_model(cfg).state_dict()
    report = checkpoint_key_report(model_keys, conversion.model)
    # the ImageNet network is the wrapped bottom-up of the deconv / FPN backbones
    wrapped = any(k.startswith("backbone.bottom_up.") for k in model_keys)
    return report, "backbone.bottom_up." if wrapped else "backbone."


def main(args):
    setup_logger(name="centernet_d2")
    conversion = convert_torchvision_file(args.input, args.output)
    opts = " ".join(str(v) for v in conversion.config_opts)
    print(f"{args.output}: torchvision {conversion.family}, {len(conversion.model)} tensors")
    print(f"  left out: {', '.join(conversion.dropped) or 'nothing'}")
    print(f"  config for this backbone: {opts}")
    if not args.config_file:
        return conversion, None
    report, prefix = check_against_config(conversion, args.config_file, args.opts)
    print(
        f"  new in the model (not in the checkpoint): {', '.join(module_prefixes(report.missing))}"
    )
    bad_missing = [k for k in report.missing if k.startswith(prefix)]
    # FrozenBatchNorm2d has no num_batches_tracked: that counter is harmless to leave out
    bad_unexpected = [k for k in report.unexpected if not k.endswith("num_batches_tracked")]
    for name, keys in [
        ("backbone keys missing from the checkpoint", bad_missing),
        ("checkpoint keys the model does not have", bad_unexpected),
        ("keys of another shape in the model", report.mismatched),
    ]:
        if keys:
            print(f"  {name} ({len(keys)}): {', '.join(keys[:10])}")
    if bad_missing or bad_unexpected or report.mismatched:
        raise SystemExit(
            f"the checkpoint does not fit {args.config_file}'s backbone; its architecture needs "
            f"the config overrides {opts}"
        )
    print(f"  every key of {prefix}* is in the checkpoint, and every checkpoint key is used")
    return conversion, report


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
