#!/usr/bin/env python
"""Run a CenterNet on images, folders or a video and write pictures, like Detectron2's demo.

    python tools/demo.py --config-file configs/CPU/centernet_R_18_deconv_shapes.yaml \\
        --input datasets/shapes/val --output out/ --show-heatmap \\
        --opts MODEL.WEIGHTS output/main_job/model_final.pth
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import glob
import logging
import os

import cv2
import numpy as np
import tqdm
from detectron2.utils.logger import setup_logger

from centernet_d2.data.image_io import read_image
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterNetPredictor
from centernet_d2.utils.cli import config_tool_parser, run_tool
from centernet_d2.utils.visualize import draw_predictions, heatmap_overlay

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def get_parser():
    parser = config_tool_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", nargs="+", help="image files, globs ('dir/*.jpg') or folders")
    parser.add_argument("--video-input", help="a video file")
    parser.add_argument("--output", required=True, help="folder for the pictures (or the video)")
    parser.add_argument("--confidence-threshold", type=float, default=0.3)
    parser.add_argument(
        "--show-heatmap", action="store_true", help="also write the heatmap overlay per image"
    )
    parser.add_argument("--opts", default=[], nargs=argparse.REMAINDER, help="KEY VALUE pairs")
    return parser


def expand_inputs(inputs):
    """Files, globs and folders -> sorted image paths; FileNotFoundError names what matched
    nothing."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = [
                os.path.join(item, f)
                for f in sorted(os.listdir(item))
                if f.lower().endswith(IMAGE_EXTENSIONS)
            ]
        else:
            found = sorted(glob.glob(os.path.expanduser(item)))
        if not found:
            raise FileNotFoundError(f"--input {item}: no image found")
        paths += found
    return paths


def run_images(predictor, paths, output, show_heatmap):
    os.makedirs(output, exist_ok=True)
    for path in tqdm.tqdm(paths, desc="images", unit="img"):
        bgr = read_image(path, format="BGR")
        rgb = np.ascontiguousarray(bgr[:, :, ::-1])
        predictions, heatmap, input_size = predictor.predict_with_heatmap(bgr)
        stem = os.path.splitext(os.path.basename(path))[0]
        drawn = draw_predictions(rgb, predictions["instances"], predictor.metadata)
        cv2.imwrite(os.path.join(output, stem + ".jpg"), drawn[:, :, ::-1])
        if show_heatmap:
            overlay = heatmap_overlay(rgb, heatmap, predictor.detector.stride, input_size)
            cv2.imwrite(os.path.join(output, stem + "_heatmap.jpg"), overlay[:, :, ::-1])


def run_video(predictor, path, output):
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise FileNotFoundError(f"--video-input {path}: cannot open the video")
    width, height = int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(
        video.get(cv2.CAP_PROP_FRAME_HEIGHT)
    )
    fps = video.get(cv2.CAP_PROP_FPS) or 25
    frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    os.makedirs(output, exist_ok=True)
    out_path = os.path.join(output, os.path.splitext(os.path.basename(path))[0] + ".mp4")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    try:
        for _ in tqdm.tqdm(range(frames) if frames else iter(int, 1), desc="frames", unit="frame"):
            ok, frame = video.read()  # BGR, as the predictor takes it
            if not ok:
                break
            instances = predictor(frame)["instances"]
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            writer.write(draw_predictions(rgb, instances, predictor.metadata)[:, :, ::-1])
    finally:
        video.release()
        writer.release()
    return out_path


def main(args):
    setup_logger(name="centernet_d2")
    logger = logging.getLogger("centernet_d2")
    opts = list(args.opts) + ["MODEL.CENTERNET.SCORE_THRESH_TEST", str(args.confidence_threshold)]
    cfg = setup_cfg(args.config_file, opts)
    cfg.freeze()
    predictor = CenterNetPredictor(cfg)
    if args.input:
        paths = expand_inputs(args.input)
        run_images(predictor, paths, args.output, args.show_heatmap)
        logger.info(f"wrote {len(paths)} pictures to {args.output}")
    if args.video_input:
        logger.info(f"wrote {run_video(predictor, args.video_input, args.output)}")


if __name__ == "__main__":
    parser = get_parser()
    args = parser.parse_args()
    if not args.input and not args.video_input:
        parser.error("give --input (images, globs or folders) or --video-input (a video file)")
    run_tool(main, args)
