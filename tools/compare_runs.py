#!/usr/bin/env python
"""Compare training runs by their evaluation AP against iteration (from each run's
``metrics.json``, written when training with ``TEST.EVAL_PERIOD > 0``):

    python tools/compare_runs.py --run classic=output/classic --run ttf=output/ttf \\
        --reference classic --output docs/ttf/ap_vs_iteration.png

Prints a markdown table (final AP, best AP, first iteration reaching the reference run's final AP)
and writes the picture.
"""

import argparse
import os

from centernet_d2.utils.compare import ap_curve, compare_table, plot_ap_comparison


def _run(text):
    name, sep, folder = text.partition("=")
    if not sep or not name or not folder:
        raise argparse.ArgumentTypeError(f"--run takes NAME=OUTPUT_DIR, got {text!r}")
    return name, folder


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=_run, action="append", required=True, metavar="NAME=DIR")
    parser.add_argument("--reference", help="run whose final AP the others must reach")
    parser.add_argument("--key", default="bbox/AP", help="metric in metrics.json")
    parser.add_argument("--title", default="")
    parser.add_argument("--output", required=True, help="PNG path")
    return parser


def main(args):
    curves = {name: ap_curve(os.path.join(d, "metrics.json"), args.key) for name, d in args.run}
    table = compare_table(curves, args.reference or args.run[0][0])
    plot_ap_comparison(curves, args.output, args.title, args.key)
    with open(os.path.splitext(args.output)[0] + ".md", "w") as f:
        f.write(table + "\n")
    print(table)
    return table


if __name__ == "__main__":
    main(get_parser().parse_args())
