#!/usr/bin/env python
"""Run a CenterNet on images, folders or a video and write pictures, like Detectron2's demo.

    python tools/demo.py --config-file configs/CPU/centernet_R_18_deconv_shapes.yaml \\
        --input datasets/shapes/val --output out/ --show-heatmap \\
        --opts MODEL.WEIGHTS output/main_job/model_final.pth

``--video-input`` takes video files or folders of frames (images sorted by name; a MOTChallenge
sequence folder's ``img1/``) and writes ``<name>.mp4`` per video: with a tracking config
(CenterTrack) the tracks, each box labelled with its id and followed by a trail of its last
centres, and ``<name>.txt``, the tracks as a MOTChallenge result file
(:mod:`centernet_d2.evaluation.mot_files`; ``tools/eval_mot.py`` evaluates a folder of them);
else the detections.
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
from centernet_d2.engine.predictor import CenterNetPredictor, CenterTrackPredictor
from centernet_d2.engine.trainer import is_tracking_config
from centernet_d2.evaluation.mot_files import track_rows, write_mot_results
from centernet_d2.utils.cli import config_tool_parser, run_tool
from centernet_d2.utils.visualize import (
    draw_predictions,
    draw_tracks,
    heatmap_overlay,
    update_trails,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
FRAMES_FPS = 25  # frame rate of the video written from a folder of frames
TRAIL_LENGTH = 15  # frames of a track's trail


def get_parser():
    parser = config_tool_parser(__doc__.splitlines()[0])
    parser.add_argument("--input", nargs="+", help="image files, globs ('dir/*.jpg') or folders")
    parser.add_argument(
        "--video-input",
        nargs="+",
        help="video files or folders of frames (images sorted by name; a MOTChallenge sequence "
        "folder: its img1/), one video each",
    )
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


def video_frames(path):
    """The BGR frames of a video file or of a folder of images (sorted by name; a MOTChallenge
    sequence's ``img1/``), their number (None if unknown), frame rate and (width, height)."""
    if os.path.isdir(os.path.join(path, "img1")):
        path = os.path.join(path, "img1")
    if os.path.isdir(path):
        paths = expand_inputs([path])
        first = read_image(paths[0], format="BGR")
        frames = (read_image(p, format="BGR") for p in paths)
        return frames, len(paths), FRAMES_FPS, (first.shape[1], first.shape[0])
    video = cv2.VideoCapture(path)
    if not video.isOpened():
        raise FileNotFoundError(f"--video-input {path}: cannot open the video")
    size = (int(video.get(cv2.CAP_PROP_FRAME_WIDTH)), int(video.get(cv2.CAP_PROP_FRAME_HEIGHT)))

    def frames():
        try:
            while True:
                ok, frame = video.read()  # BGR, as the predictors take it
                if not ok:
                    return
                yield frame
        finally:
            video.release()

    count = int(video.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    return frames(), count, video.get(cv2.CAP_PROP_FPS) or FRAMES_FPS, size


def run_video(predictor, path, output):
    frames, count, fps, size = video_frames(path)
    os.makedirs(output, exist_ok=True)
    name = os.path.splitext(os.path.basename(os.path.normpath(path)))[0]
    out_path = os.path.join(output, name + ".mp4")
    writer = cv2.VideoWriter(out_path, cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    tracking = isinstance(predictor, CenterTrackPredictor)
    if tracking:
        predictor.reset()  # a new video: track ids from 1
    trails, tracks = {}, []
    try:
        for frame in tqdm.tqdm(frames, total=count, desc=name, unit="frame"):
            instances = predictor(frame)["instances"]
            rgb = np.ascontiguousarray(frame[:, :, ::-1])
            if tracking:
                tracks.append((len(tracks) + 1, track_rows(instances)))
                trails = update_trails(trails, instances, TRAIL_LENGTH)
                drawn = draw_tracks(rgb, instances, predictor.metadata, trails)
            else:
                drawn = draw_predictions(rgb, instances, predictor.metadata)
            writer.write(np.ascontiguousarray(drawn[:, :, ::-1]))
    finally:
        writer.release()
    if tracking:
        num_classes = len(predictor.metadata.get("thing_classes", [None]))
        write_mot_results(os.path.join(output, name + ".txt"), tracks, num_classes)
    return out_path


def main(args):
    setup_logger(name="centernet_d2")
    logger = logging.getLogger("centernet_d2")
    opts = list(args.opts) + ["MODEL.CENTERNET.SCORE_THRESH_TEST", str(args.confidence_threshold)]
    cfg = setup_cfg(args.config_file, opts)
    cfg.freeze()
    # a tracking config's predictor tracks through --video-input; still images it detects alone
    predictor = CenterTrackPredictor(cfg) if is_tracking_config(cfg) else CenterNetPredictor(cfg)
    if args.input:
        paths = expand_inputs(args.input)
        run_images(predictor, paths, args.output, args.show_heatmap)
        logger.info(f"wrote {len(paths)} pictures to {args.output}")
    for video in args.video_input or ():
        logger.info(f"wrote {run_video(predictor, video, args.output)}")


if __name__ == "__main__":
    parser = get_parser()
    args = parser.parse_args()
    if not args.input and not args.video_input:
        parser.error(
            "give --input (images, globs or folders) or --video-input (a video or a folder of "
            "frames)"
        )
    run_tool(main, args)
