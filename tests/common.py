"""Helpers shared by the tests: paths, tiny configs, the tools, and generated datasets in the
formats users bring (Pascal VOC, YOLO)."""

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np

if TYPE_CHECKING:
    from detectron2.structures import Instances

ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
CONFIG_DIR = os.path.join(ROOT, "configs")
# the main job's config, and CPU configs with the ltrb head and with ResNet-18 + deconv
CONFIG = os.path.join(CONFIG_DIR, "CPU", "centernet_MobileNetV3_small_FPN_shapes.yaml")
LTRB_CONFIG = os.path.join(CONFIG_DIR, "CPU", "centernet_MobileNetV3_small_FPN_shapes_ltrb.yaml")
MULTILEVEL_CONFIG = os.path.join(
    CONFIG_DIR, "CPU", "centernet_multilevel_MobileNetV3_small_FPN_shapes.yaml"
)
R18_CONFIG = os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml")
# the CPU tracking config (CenterTrack on the built-in shapes videos)
TRACK_CONFIG = os.path.join(
    CONFIG_DIR, "CPU", "centertrack_MobileNetV3_small_FPN_shapes_video.yaml"
)
# a tiny schedule: small images, small batches, no periodic evaluation or checkpoints
TINY = [
    "SOLVER.IMS_PER_BATCH", "4",
    "SOLVER.MAX_ITER", "20",
    "SOLVER.STEPS", "()",
    "SOLVER.WARMUP_ITERS", "5",
    "SOLVER.CHECKPOINT_PERIOD", "1000",
    "TEST.EVAL_PERIOD", "0",
    "INPUT.CENTERNET.TRAIN_SIZE", "(128, 128)",
    "INPUT.MIN_SIZE_TEST", "128",
    "INPUT.MAX_SIZE_TEST", "128",
    "DATALOADER.NUM_WORKERS", "0",
    "SEED", "1",
    "TEST.ANALYSIS.ENABLED", "False",  # the pictures after evaluation: TrainedBoxesRun draws them
]  # fmt: skip


def tiny_cfg(*opts: str, config_file: str = CONFIG):
    """``setup_cfg`` of ``config_file`` with :data:`TINY` and ``opts``, on the CPU."""
    from centernet_d2.engine.defaults import setup_cfg

    return setup_cfg(config_file, TINY + ["MODEL.DEVICE", "cpu"] + list(opts))


def model_cfg(config_file: str, *opts: str):
    """``setup_cfg`` of ``config_file`` and ``opts`` on the CPU, without weights."""
    from centernet_d2.engine.defaults import setup_cfg

    return setup_cfg(config_file, ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts])


def gt_instances(boxes, classes, size) -> "Instances":
    """Instances of ``size`` (h, w) with ``gt_boxes`` (XYXY pixels) and ``gt_classes``."""
    import torch
    from detectron2.structures import Boxes, Instances

    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
    return inst


def training_inputs(sizes, boxes_per_image, num_classes, seed=0) -> List[dict]:
    """Random images of the given (h, w) with GT boxes of random classes, as a model's training
    inputs; an image without boxes has no objects."""
    import torch

    g = torch.Generator().manual_seed(seed)
    inputs = []
    for (h, w), boxes in zip(sizes, boxes_per_image):
        classes = torch.randint(0, num_classes, (len(boxes),), generator=g)
        image = torch.randint(0, 256, (3, h, w), generator=g).float()
        inst = gt_instances(boxes, classes, (h, w))
        inputs.append({"image": image, "instances": inst, "height": h, "width": w})
    return inputs


def load_tool(name: str):
    """The module ``tools/<name>.py`` (the tools are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, os.path.join(ROOT, "tools", name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_tool_process(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python tools/<name>.py args`` in a new process from the repository root."""
    cmd = [sys.executable, os.path.join(ROOT, "tools", name + ".py"), *args]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=timeout)


def run_tool_in_process(tool, argv: Sequence[str], parser=None) -> Tuple[int, str]:
    """A tool's ``__main__`` path (``run_tool`` around its ``main``) on ``argv``, in this process:
    (exit status, stderr). ``tool``: its name (``tools/<name>.py``) or its loaded module;
    ``parser``: the function that makes its argument parser (default its ``get_parser``)."""
    import contextlib
    import io

    from centernet_d2.utils.cli import run_tool

    tool = load_tool(tool) if isinstance(tool, str) else tool
    args = (parser or tool.get_parser)().parse_args(list(argv))
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        try:
            run_tool(tool.main, args)
        except SystemExit as e:
            return e.code, err.getvalue()
    return 0, err.getvalue()


# (class name, BGR colour) of the boxes drawn by write_boxes_image
_COLOURS = [(40, 40, 220), (220, 120, 30), (30, 200, 60), (200, 200, 40)]


def write_boxes_image(path: str, size: Tuple[int, int], boxes: Sequence[Sequence[float]], classes):
    """An image of ``size`` (height, width), grey noise with a filled rectangle per box (XYXY,
    pixels) in its class's colour."""
    rng = np.random.default_rng(len(boxes) + size[0])
    image = rng.integers(90, 140, (*size, 3), dtype=np.uint8)
    for (x0, y0, x1, y1), c in zip(boxes, classes):
        cv2.rectangle(image, (int(x0), int(y0)), (int(x1) - 1, int(y1) - 1), _COLOURS[c], -1)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    ok, data = cv2.imencode(".png" if ext == ".png" else ".jpg", image)
    assert ok
    with open(path, "wb") as f:  # cv2.imwrite decides the format by the (lower-case) ending
        f.write(data.tobytes())


def random_boxes(rng, num: int, size: Tuple[int, int], min_side=12, max_side=48) -> List[List[int]]:
    """``num`` integer XYXY boxes inside an image of ``size`` (height, width)."""
    h, w = size
    out = []
    for _ in range(num):
        bw, bh = rng.integers(min_side, max_side, 2)
        x0, y0 = rng.integers(0, w - bw), rng.integers(0, h - bh)
        out.append([int(x0), int(y0), int(x0 + bw), int(y0 + bh)])
    return out


def write_voc_annotation(
    path: str,
    objects: Sequence[Tuple[str, Sequence[int], int]],
    size: Tuple[int, int],
    filename: Optional[str] = None,
) -> None:
    """A VOC XML file; ``objects``: (name, XYXY 0-based pixel box, difficult)."""
    root = ET.Element("annotation")
    if filename is not None:
        ET.SubElement(root, "filename").text = filename
    s = ET.SubElement(root, "size")
    ET.SubElement(s, "width").text = str(size[1])
    ET.SubElement(s, "height").text = str(size[0])
    ET.SubElement(s, "depth").text = "3"
    for name, (x0, y0, x1, y1), difficult in objects:
        obj = ET.SubElement(root, "object")
        ET.SubElement(obj, "name").text = name
        ET.SubElement(obj, "pose").text = "Unspecified"
        ET.SubElement(obj, "truncated").text = "0"
        ET.SubElement(obj, "difficult").text = str(difficult)
        box = ET.SubElement(obj, "bndbox")
        # VOC boxes are 1-based inclusive pixel corners
        for k, v in zip(("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1, y1)):
            ET.SubElement(box, k).text = str(int(v))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    ET.ElementTree(root).write(path)


def write_helmet_voc(root: str, stray_label: bool = True) -> Dict[str, object]:
    """A VOC folder shaped like the Safety Helmet Wearing Dataset: classes ``hat`` and
    ``person``; ``trainval`` (12 images) holds both, ``test`` (4 images) only ``hat``; some images
    are ``.JPG`` (named so in the XML's <filename>), some ``.jpeg`` with no <filename>; one
    trainval object is ``dog`` (``stray_label``) and one is ``difficult``.

    Returns:
        {"dir", "ids": {split: ids}, "boxes": {id: [(name, box, difficult)]}, "stray": path of
        the XML holding the stray label, "jpg_upper": an id whose image is .JPG}
    """
    rng = np.random.default_rng(3)
    size = (128, 160)
    ids = {
        "trainval": [f"{i:06d}" for i in range(1, 13)],
        "test": [f"{i:06d}" for i in range(13, 17)],
    }
    boxes = {}
    for split, split_ids in ids.items():
        for n, fileid in enumerate(split_ids):
            num = 1 + n % 3
            names = (
                ["hat"] * num
                if split == "test"
                else [("hat", "person")[(n + k) % 2] for k in range(num)]
            )
            objects = [(name, box, 0) for name, box in zip(names, random_boxes(rng, num, size))]
            if fileid == "000002":
                objects[0] = (objects[0][0], objects[0][1], 1)  # difficult
            if stray_label and fileid == "000005":
                objects[-1] = ("dog", objects[-1][1], 0)
            boxes[fileid] = objects
            ext = {"000003": ".JPG", "000007": ".JPG", "000004": ".jpeg", "000014": ".JPG"}.get(
                fileid, ".jpg"
            )
            classes = [("hat", "person", "dog").index(o[0]) for o in objects]
            write_boxes_image(
                os.path.join(root, "JPEGImages", fileid + ext),
                size,
                [o[1] for o in objects],
                classes,
            )
            filename = None if ext == ".jpeg" else fileid + ext
            write_voc_annotation(
                os.path.join(root, "Annotations", fileid + ".xml"), objects, size, filename
            )
    os.makedirs(os.path.join(root, "ImageSets", "Main"), exist_ok=True)
    for split, split_ids in ids.items():
        with open(os.path.join(root, "ImageSets", "Main", split + ".txt"), "w") as f:
            f.write("\n".join(split_ids) + "\n")
    return {
        "dir": root,
        "ids": ids,
        "boxes": boxes,
        "stray": os.path.join(root, "Annotations", "000005.xml"),
        "jpg_upper": "000003",
    }


def write_yolo_folder(
    root: str,
    split: str,
    images: Dict[str, Tuple[Tuple[int, int], List[Tuple[int, List[float]]]]],
    class_names: Sequence[str],
    layout: str = "images/split",
    names_file: str = "data.yaml",
) -> None:
    """A YOLO folder: per image name, (size (h, w), [(class, XYXY pixel box)]) written as
    ``class cx cy w h`` normalised with 9 decimals; an image with ``None`` objects gets no label
    file. ``layout``: "images/split" (DIR/images/SPLIT) or "split/images" (DIR/SPLIT/images)."""
    if layout == "images/split":
        image_dir, label_dir = os.path.join(root, "images", split), os.path.join(
            root, "labels", split
        )
    else:
        image_dir, label_dir = os.path.join(root, split, "images"), os.path.join(
            root, split, "labels"
        )
    for name, (size, objects) in images.items():
        h, w = size
        boxes = [b for _, b in objects or []]
        write_boxes_image(
            os.path.join(image_dir, name + ".jpg"), size, boxes, [c % 4 for c, _ in objects or []]
        )
        if objects is None:
            continue
        os.makedirs(label_dir, exist_ok=True)
        with open(os.path.join(label_dir, name + ".txt"), "w") as f:
            for c, (x0, y0, x1, y1) in objects:
                cx, cy, bw, bh = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h, (x1 - x0) / w, (y1 - y0) / h
                f.write(f"{c} {cx:.9f} {cy:.9f} {bw:.9f} {bh:.9f}\n")
    if names_file == "data.yaml":
        with open(os.path.join(root, "data.yaml"), "w") as f:
            json.dump({"names": {i: n for i, n in enumerate(class_names)}}, f)  # JSON is YAML
    else:
        with open(os.path.join(root, "classes.txt"), "w") as f:
            f.write("\n".join(class_names) + "\n")


def boxes_coco_argv(config_file: str, name: str, root: str, json_file: str) -> List[str]:
    """``tools/train_net.py`` arguments that train and evaluate ``config_file`` on the set of
    :func:`write_boxes_coco` (``json_file``, images in ``root/images``) registered as ``name``,
    at its 64 px, with :data:`TINY`."""
    return [
        "--config-file", config_file, "--coco-dataset", name, json_file,
        os.path.join(root, "images"), *TINY,
        "DATASETS.TRAIN", f"('{name}',)", "DATASETS.TEST", f"('{name}',)",
        "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)", "INPUT.CENTERNET.SCALE_RANGE", "(0.9, 1.1)",
        "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64", "SOLVER.WARMUP_ITERS", "20",
    ]  # fmt: skip


def run_main(argv: List[str]):
    """``tools/train_net.py``'s ``main`` on ``argv`` in this process: its results."""
    train_net = load_tool("train_net")
    return train_net.main(train_net.argument_parser().parse_args(argv))


class TrainedBoxesRun:
    """A model trained for ``iterations`` on :func:`write_boxes_coco`'s set (registered as
    ``name``) through ``tools/train_net.py``: ``argv`` (the run's arguments without the
    iterations and output), ``out`` (its OUTPUT_DIR, with ``model_final.pth``) and ``results``.
    ``cleanup()`` removes its folder."""

    def __init__(self, config_file, name, extra_argv=(), keypoints=False, iterations=400):
        self._tmp = tempfile.TemporaryDirectory()
        json_file = write_boxes_coco(self._tmp.name, keypoints=keypoints)
        self.argv = boxes_coco_argv(config_file, name, self._tmp.name, json_file) + list(extra_argv)
        self.out = os.path.join(self._tmp.name, "out")
        opts = ["SOLVER.MAX_ITER", str(iterations), "SOLVER.IMS_PER_BATCH", "8"]
        opts += ["TEST.ANALYSIS.ENABLED", "True"]  # the error analysis after the evaluation
        self.results = run_main(self.argv + opts + ["OUTPUT_DIR", self.out])

    @property
    def weights(self) -> str:
        return os.path.join(self.out, "model_final.pth")

    def cleanup(self):
        self._tmp.cleanup()


def write_boxes_coco(
    root: str, num_images: int = 8, size: int = 64, seed: int = 0, keypoints: bool = False
) -> str:
    """A COCO-format set a model learns in a few hundred iterations: ``num_images`` grey images
    of ``size`` px, each with two filled squares of 16-32 px of one class "box"; images in
    ``root/images``. With ``keypoints`` a COCO-keypoints json with per-class keypoint sets: the
    first square is a "box" with the keypoints "top_left" and "top_right" (its top corners, a
    left / right pair), the second (another colour) a "plain" square without keypoints. Returns
    the json's path."""
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for i in range(num_images):
        boxes = random_boxes(rng, 2, (size, size), min_side=16, max_side=32)
        classes = [0, 1] if keypoints else [0, 0]
        write_boxes_image(os.path.join(root, "images", f"{i}.jpg"), (size, size), boxes, classes)
        images.append({"id": i + 1, "file_name": f"{i}.jpg", "height": size, "width": size})
        for (x0, y0, x1, y1), c in zip(boxes, classes):
            annotations.append(
                {"id": len(annotations) + 1, "image_id": i + 1, "category_id": c + 1,
                 "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0), "iscrowd": 0}
            )  # fmt: skip
            if keypoints:  # COCO's convention: the continuous position - 0.5
                kps = [x0 - 0.5, y0 - 0.5, 2, x1 - 0.5, y0 - 0.5, 2] if c == 0 else []
                annotations[-1].update(keypoints=kps, num_keypoints=len(kps) // 3)
    categories = [{"id": 1, "name": "box"}]
    if keypoints:
        categories[0].update(keypoints=["top_left", "top_right"], skeleton=[[1, 2]])
        categories.append({"id": 2, "name": "plain", "keypoints": [], "skeleton": []})
    path = os.path.join(root, "boxes.json")
    with open(path, "w") as f:
        json.dump({"images": images, "annotations": annotations, "categories": categories}, f)
    return path


def evaluator_inputs(dicts, detections):
    """(inputs, outputs) for an evaluator's ``process``: per dataset dict its ``image_id``, and
    Instances of its (box XYXY, score, class) ``detections``."""
    import torch
    from detectron2.structures import Boxes, Instances

    inputs, outputs = [], []
    for d, det in zip(dicts, detections):
        inst = Instances((d["height"], d["width"]))
        boxes = torch.tensor([b for b, _, _ in det], dtype=torch.float32).view(-1, 4)
        inst.pred_boxes = Boxes(boxes)
        inst.scores = torch.tensor([s for _, s, _ in det], dtype=torch.float32)
        inst.pred_classes = torch.tensor([c for _, _, c in det], dtype=torch.long)
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


def pred_instances(
    boxes, classes, scores=None, size=(128, 128), displacements=None, track_ids=None
) -> "Instances":
    """Instances of ``size`` (h, w) as a model predicts them: ``pred_boxes`` (XYXY pixels),
    ``pred_classes``, ``scores`` (default 0.9 each), and, if given, ``pred_displacements``
    (D, 2) and ``pred_track_ids``."""
    import torch
    from detectron2.structures import Boxes, Instances

    boxes = torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    scores = [0.9] * len(boxes) if scores is None else scores
    inst = Instances(tuple(size))
    inst.pred_boxes = Boxes(boxes)
    inst.scores = torch.as_tensor(scores, dtype=torch.float32)
    inst.pred_classes = torch.as_tensor(classes, dtype=torch.int64)
    if displacements is not None:
        inst.pred_displacements = torch.as_tensor(displacements, dtype=torch.float32).view(-1, 2)
    if track_ids is not None:
        inst.pred_track_ids = torch.as_tensor(track_ids, dtype=torch.int64)
    return inst


def square(cx: float, cy: float, side: float = 20.0) -> List[float]:
    """The XYXY box of a square of ``side`` centred at (cx, cy)."""
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def coco_video_json(num_videos: int = 2, num_frames: int = 3, size=(48, 64)) -> dict:
    """A COCO-video json (CenterTrack's): ``num_videos`` videos named ``vid<v>`` of
    ``num_frames`` frames (files ``vid<v>/<t>.jpg``), two objects per frame: track ``10 v + 1``
    (category 1, "car") moving 2 px per frame right and track ``10 v + 2`` (category 2,
    "person")."""
    h, w = size
    coco = {"videos": [], "images": [], "annotations": [],
            "categories": [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]}  # fmt: skip
    for v in range(1, num_videos + 1):
        coco["videos"].append({"id": v, "file_name": f"vid{v}"})
        for t in range(1, num_frames + 1):
            image_id = len(coco["images"]) + 1
            coco["images"].append(
                {"id": image_id, "file_name": f"vid{v}/{t}.jpg", "height": h, "width": w,
                 "video_id": v, "frame_id": t,
                 "prev_image_id": image_id - 1 if t > 1 else -1,
                 "next_image_id": image_id + 1 if t < num_frames else -1}
            )  # fmt: skip
            for k, (box, cat) in enumerate((([2 * t, 4, 10, 12], 1), ([30, 20, 8, 16], 2))):
                coco["annotations"].append(
                    {"id": len(coco["annotations"]) + 1, "image_id": image_id, "category_id": cat,
                     "bbox": box, "area": box[2] * box[3], "iscrowd": 0, "track_id": 10 * v + k + 1}
                )  # fmt: skip
    return coco


def write_coco_video(
    root: str, coco: dict, name: str = "video.json", draw_objects: bool = False
) -> str:
    """``coco`` written to ``root/name``, with a grey image for each of its images under
    ``root`` (``draw_objects``: grey noise with each annotation's box filled in its category's
    colour, :func:`write_boxes_image`). Returns the json's path."""
    for image in coco["images"]:
        path = os.path.join(root, image["file_name"])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        size = (image["height"], image["width"])
        if draw_objects:
            annos = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
            boxes = [[x, y, x + w, y + h] for x, y, w, h in (a["bbox"] for a in annos)]
            write_boxes_image(path, size, boxes, [a["category_id"] % 4 for a in annos])
        else:
            cv2.imwrite(path, np.full((*size, 3), 128, np.uint8))
    path = os.path.join(root, name)
    with open(path, "w") as f:
        json.dump(coco, f)
    return path


# gt.txt rows of write_mot_folder, per frame f: (id, XYWH box, conf, class, visibility)
MOT_ROWS = (
    (1, lambda f: [2.0 + 3 * f, 4.0, 10.5, 12.0], 1, 1, 1.0),  # a pedestrian moving right
    (2, lambda f: [40.0 - 2 * f, 20.0, 8.0, 16.25], 1, 1, 0.2),  # a mostly hidden one
    (3, lambda f: [5.0, 30.0, 6.0, 6.0], 0, 1, 1.0),  # conf 0: not ground truth
    (4, lambda f: [20.0, 25.0, 6.0, 14.0], 1, 7, 1.0),  # a static person (ignored)
    (5, lambda f: [50.0, 2.0, 12.0, 7.0], 1, 3, 1.0),  # a car
    (6, lambda f: [30.0, 36.0, 5.0, 10.0], 0, 8, 1.0),  # a distractor with conf 0 (ignored)
)


def write_mot_folder(root: str, lengths: Dict[str, int], size=(48, 64)) -> None:
    """A MOTChallenge split folder: per sequence of ``lengths`` (name: frames) seqinfo.ini,
    img1/000001.jpg ... and gt/gt.txt with :data:`MOT_ROWS` in every frame, sorted by id, then
    frame, as MOTChallenge's."""
    h, w = size
    for seq, n in lengths.items():
        os.makedirs(os.path.join(root, seq, "img1"))
        os.makedirs(os.path.join(root, seq, "gt"))
        with open(os.path.join(root, seq, "seqinfo.ini"), "w") as f:
            f.write(f"[Sequence]\nname={seq}\nimDir=img1\nframeRate=30\nseqLength={n}\n"
                    f"imWidth={w}\nimHeight={h}\nimExt=.jpg\n")  # fmt: skip
        for frame in range(1, n + 1):
            image = np.full((h, w, 3), 10 * frame, np.uint8)
            cv2.imwrite(os.path.join(root, seq, "img1", f"{frame:06d}.jpg"), image)
        with open(os.path.join(root, seq, "gt", "gt.txt"), "w") as f:
            for track_id, box, conf, cls, vis in MOT_ROWS:
                for frame in range(1, n + 1):
                    x, y, bw, bh = box(frame)
                    f.write(f"{frame},{track_id},{x:g},{y:g},{bw:g},{bh:g},{conf},{cls},{vis}\n")


# The parity fixtures of the authors' published networks (a copy of ../shared, as it is: its
# README gives the weight rule that official_state_dict follows)
OFFICIAL_FIXTURES = os.path.join(ROOT, "tests", "fixtures", "official_weights")
# splitmix64's increment and multipliers (the fixtures' README)
_SPLITMIX = (0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB)
# CenterNet2's buffers, filled with its config's values rather than by the rule
_CENTERNET2_PIXELS = {"pixel_mean": [103.53, 116.28, 123.675], "pixel_std": [1.0, 1.0, 1.0]}


def _splitmix_uniform(i: int, n: int) -> np.ndarray:
    """u[k] in [0, 1), k < n, of tensor number i (splitmix64 in wrapping uint64 arithmetic)."""
    x = np.arange(n, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(i) * np.uint64(_SPLITMIX[0])
        x ^= x >> np.uint64(30)
        x *= np.uint64(_SPLITMIX[1])
        x ^= x >> np.uint64(27)
        x *= np.uint64(_SPLITMIX[2])
        x ^= x >> np.uint64(31)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0**-53


def _fixture_tensor(i: int, key: str, shape: List[int]) -> np.ndarray:
    """Tensor number i of a fixture's state dict, by the README's rule."""
    n = int(np.prod(shape)) if shape else 1
    if key.endswith("num_batches_tracked"):
        return np.zeros(shape, np.int64)
    if key in _CENTERNET2_PIXELS:
        return np.asarray(_CENTERNET2_PIXELS[key], np.float32).reshape(shape)
    u = _splitmix_uniform(i, n)
    if key.endswith((".scale", "running_var")):
        v = 0.5 + u
    elif key.endswith("running_mean"):
        v = 0.2 * (u - 0.5)
    elif len(shape) == 1:
        v = 0.8 + 0.4 * u if key.endswith("weight") else 0.2 * (u - 0.5)
    else:
        v = (2 * u - 1) * np.sqrt(6 / (n / shape[0]))
        v *= 0.05 if "conv_offset_mask" in key else 1.0
        v *= 1.5 if key.endswith("cls_logits.weight") else 1.0
    return v.astype(np.float32).reshape(shape)


def official_fixture(name: str):
    """(state dict, arrays) of the parity fixture ``name``: the published network's state dict
    rebuilt by the fixtures' README rule, checked against its SHA-256 (``ValueError`` if it
    differs), and the npz's input and outputs as numpy arrays."""
    import hashlib

    import torch

    with open(os.path.join(OFFICIAL_FIXTURES, name + ".json")) as f:
        spec = json.load(f)
    digest, state_dict = hashlib.sha256(), {}
    for i, (key, shape) in enumerate(spec["state_dict"]):
        value = _fixture_tensor(i, key, shape)
        digest.update(key.encode("utf-8"))
        digest.update(value.astype(value.dtype.newbyteorder("<")).tobytes())
        state_dict[key] = torch.from_numpy(value)
    if digest.hexdigest() != spec["state_dict_sha256"]:
        raise ValueError(f"the rebuilt state dict of {name} does not match its SHA-256")
    with np.load(os.path.join(OFFICIAL_FIXTURES, name + ".npz")) as arrays:
        return state_dict, {k: arrays[k] for k in arrays.files}


def peak_rss_growth_mib(setup: str, statement: str) -> float:
    """How much a fresh Python's peak resident memory grows (MiB) while running ``statement``
    after ``setup`` (both code strings), on the CPU, one thread."""
    code = (
        "import resource, torch\n"
        "torch.set_num_threads(1)\n"
        f"{setup}\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        f"{statement}\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print((after - before) / 1024)\n"
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, env=env, check=True
    )
    return float(out.stdout.strip().splitlines()[-1])
