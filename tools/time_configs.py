#!/usr/bin/env python
"""Build, one training step and inference time of every config in configs/, on random inputs.

    python tools/time_configs.py [--size 256] [--batch 2]

Prints a markdown table; a quick check that every config builds and runs on this machine (the test
suite asserts the same, without timing).
"""

import argparse
import glob
import os
import time

import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from centernet_d2.engine.defaults import setup_cfg

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def random_batch(batch, size, num_classes):
    g = torch.Generator().manual_seed(0)
    boxes = torch.tensor([[10.0, 10.0, 60.0, 80.0], [100.0, 50.0, 200.0, 120.0]]) * size / 256
    inputs = []
    for _ in range(batch):
        inst = Instances((size, size), gt_boxes=Boxes(boxes))
        inst.gt_classes = torch.randint(0, num_classes, (len(boxes),), generator=g)
        image = torch.randint(0, 256, (3, size, size), generator=g).float()
        inputs.append({"image": image, "instances": inst})
    return inputs


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=2)
    args = parser.parse_args()
    print(f"| config | build (s) | train step, {args.batch} x {args.size} px (s) | inference (s) |")
    print("|---|---|---|---|")
    for path in sorted(glob.glob(os.path.join(ROOT, "configs", "**", "*.yaml"), recursive=True)):
        if os.path.basename(path).startswith("Base-"):
            continue
        torch.manual_seed(0)
        cfg = setup_cfg(path, ["MODEL.WEIGHTS", ""])
        start = time.perf_counter()
        model = build_model(cfg)
        build = time.perf_counter() - start
        inputs = random_batch(args.batch, args.size, cfg.MODEL.CENTERNET.NUM_CLASSES)
        steps = []
        model.train()
        with EventStorage():
            for _ in range(3):  # the first includes one-off set-up: keep the fastest
                start = time.perf_counter()
                sum(model(inputs).values()).backward()
                steps.append(time.perf_counter() - start)
        model.eval()
        with torch.no_grad():
            start = time.perf_counter()
            model(inputs)
            infer = time.perf_counter() - start
        name = os.path.relpath(path, os.path.join(ROOT, "configs"))
        print(f"| {name} | {build:.2f} | {min(steps):.2f} | {infer:.2f} |", flush=True)


if __name__ == "__main__":
    main()
