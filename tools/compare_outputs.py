#!/usr/bin/env python
"""Check that a change leaves every model's outputs as they were.

``save`` builds each config (random weights from ``--seed``, or the weights of an earlier save),
runs one training step on two fixed images (the first with two boxes, with keypoints where the
config has them; the second empty) and inference on them, and writes the losses, the detections
and the weights to a file; ``compare`` prints, per config, the largest difference of two such
files' losses and detections:

    python tools/compare_outputs.py save before.pt            # on the code before the change
    python tools/compare_outputs.py save after.pt --weights-from before.pt
    python tools/compare_outputs.py compare before.pt after.pt

``--weights-from`` loads the earlier run's weights into each model, so that a change in the order
in which a model draws its random initial weights does not count as a change of its outputs.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import glob
import os
from typing import Dict, List

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, Keypoints
from detectron2.utils.events import EventStorage

from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.utils.cli import add_debug_flag, run_tool

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
SIZES = [(97, 131), (75, 120)]
BOXES = [[[10.0, 12, 60, 70], [70, 5, 120, 40]], []]
OUTPUT_SIZE = (50, 66)


def config_files(pattern: str) -> List[str]:
    """The configs under ``configs/`` matching ``pattern`` (a glob relative to it), Base-* out."""
    paths = glob.glob(os.path.join(CONFIG_DIR, pattern), recursive=True)
    return sorted(p for p in paths if not os.path.basename(p).startswith("Base-"))


def fixed_inputs(cfg) -> List[Dict]:
    """Two images of ``SIZES`` with the boxes of ``BOXES``, classes, keypoints: from one seed."""
    g = torch.Generator().manual_seed(0)
    inputs = []
    for (h, w), boxes in zip(SIZES, BOXES):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor(boxes).view(-1, 4))
        classes = torch.randint(0, cfg.MODEL.CENTERNET.NUM_CLASSES, (len(boxes),), generator=g)
        inst.gt_classes = classes
        if cfg.MODEL.KEYPOINT_ON:  # keypoints at random places in the boxes, all visible
            b = inst.gt_boxes.tensor.view(-1, 1, 4)
            t = torch.rand(len(b), cfg.MODEL.CENTERNET.NUM_KEYPOINTS, 2, generator=g)
            xy = b[..., :2] + t * (b[..., 2:] - b[..., :2])
            inst.gt_keypoints = Keypoints(torch.cat([xy, torch.full_like(xy[..., :1], 2.0)], 2))
        image = torch.randint(0, 256, (3, h, w), generator=g).float()
        inputs.append({"image": image, "instances": inst, "height": h, "width": w})
    return inputs


def run_config(path: str, seed: int, weights=None) -> Dict:
    """One config's losses, detections (fields as tensors) and initial weights."""
    cfg = setup_cfg(path, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    torch.manual_seed(seed)
    model = build_model(cfg).train()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if weights is not None:
        model.load_state_dict(weights)
    inputs = fixed_inputs(cfg)
    with EventStorage():
        losses = {k: float(v) for k, v in model(inputs).items()}
    model.eval()
    h, w = OUTPUT_SIZE
    with torch.no_grad():
        outputs = model([{"image": x["image"], "height": h, "width": w} for x in inputs])
    detections = [
        {k: getattr(v, "tensor", v) for k, v in out["instances"].get_fields().items()}
        for out in outputs
    ]
    return {
        "type": type(model).__name__,
        "losses": losses,
        "detections": detections,
        "state": state,
    }


def save(output: str, pattern: str, seed: int, weights_from: str = "") -> Dict[str, Dict]:
    reference = torch.load(weights_from, weights_only=False) if weights_from else {}
    results = {}
    for path in config_files(pattern):
        name = os.path.relpath(path, CONFIG_DIR)
        weights = reference.get(name, {}).get("state")
        results[name] = run_config(path, seed, weights)
        print(f"{name}: {results[name]['type']}, losses {results[name]['losses']}", flush=True)
    torch.save(results, output)
    return results


def differences(a: Dict, b: Dict) -> Dict[str, float]:
    """Per config of either file, the largest |difference| of losses and detections; inf where
    the config, a loss, a field or a shape is missing on one side."""
    out = {}
    for name in sorted(set(a) | set(b)):
        if name not in a or name not in b or set(a[name]["losses"]) != set(b[name]["losses"]):
            out[name] = float("inf")
            continue
        worst = max(abs(a[name]["losses"][k] - b[name]["losses"][k]) for k in a[name]["losses"])
        for p, q in zip(a[name]["detections"], b[name]["detections"]):
            for k in set(p) | set(q):
                if k not in p or k not in q or p[k].shape != q[k].shape:
                    worst = float("inf")
                elif p[k].numel():
                    worst = max(worst, float((p[k].float() - q[k].float()).abs().max()))
        out[name] = worst
    return out


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("save", help="run every config and save its outputs")
    s.add_argument("output", help="file to write (.pt)")
    s.add_argument("--configs", default="**/*.yaml", help="glob under configs/ (default all)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--weights-from", default="", help="an earlier save whose weights to load")
    c = sub.add_parser("compare", help="largest differences of two saves")
    c.add_argument("a")
    c.add_argument("b")
    add_debug_flag(parser)
    return parser


def main(args):
    if args.command == "save":
        if args.weights_from and not os.path.isfile(args.weights_from):
            raise FileNotFoundError(
                f"--weights-from {args.weights_from} not found: write it with "
                "`compare_outputs.py save` first"
            )
        if not config_files(args.configs):
            raise ValueError(f"--configs {args.configs!r} matches no config under {CONFIG_DIR}")
        return save(args.output, args.configs, args.seed, args.weights_from)
    for path in (args.a, args.b):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} not found: write it with `compare_outputs.py save`")
    diffs = differences(
        torch.load(args.a, weights_only=False), torch.load(args.b, weights_only=False)
    )
    for name, value in diffs.items():
        print(f"{value:10.3g}  {name}")
    print(f"largest difference: {max(diffs.values(), default=0.0):.3g}")
    return diffs


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
