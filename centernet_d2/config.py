"""Default configuration of centernet-d2: :func:`add_centernet_config`."""

import logging
import os
import tempfile

import yaml
from detectron2.config import CfgNode as CN
from detectron2.config import get_cfg

__all__ = [
    "add_centernet_config",
    "add_centertrack_config",
    "check_training_keys",
    "IGNORED_TRAINING_KEYS",
    "merge_config_file",
    "MOVED_NODES",
]

logger = logging.getLogger(__name__)

# Config nodes that moved: (old parent, new parent, node). A config file that still has the old
# node (e.g. OUTPUT_DIR/config.yaml of a training run of before the move) is read as if it had
# the new one, with a warning; a command-line override of an old key names the new key.
MOVED_NODES = (("MODEL.CENTERNET", "MODEL", "DECONV"),)

# Detectron2 keys that CenterNet's training does not read, and the keys that do their job
IGNORED_TRAINING_KEYS = {
    "INPUT.MIN_SIZE_TRAIN": "INPUT.CENTERNET.TRAIN_SIZE and INPUT.CENTERNET.SCALE_RANGE",
    "INPUT.MAX_SIZE_TRAIN": "INPUT.CENTERNET.TRAIN_SIZE and INPUT.CENTERNET.SCALE_RANGE",
    "INPUT.MIN_SIZE_TRAIN_SAMPLING": "INPUT.CENTERNET.SCALE_RANGE",
    "INPUT.CROP.ENABLED": "INPUT.CENTERNET.TRAIN_SIZE (every image is cropped or padded to it)",
    "INPUT.CROP.TYPE": "INPUT.CENTERNET.TRAIN_SIZE (every image is cropped or padded to it)",
    "INPUT.CROP.SIZE": "INPUT.CENTERNET.TRAIN_SIZE (every image is cropped or padded to it)",
    "DATALOADER.ASPECT_RATIO_GROUPING": (
        "INPUT.CENTERNET.TRAIN_SIZE: every training image is cropped or padded to it, so there is "
        "nothing to group (and grouping would make the batches depend on earlier ones)"
    ),
}


def add_centernet_config(cfg: CN) -> CN:
    """Add every centernet-d2 key, with its default, to ``cfg`` (a ``get_cfg()``) in place.

    Call it before ``cfg.merge_from_file`` on a CenterNet YAML. Detectron2's global defaults are
    never touched. Returns ``cfg`` for chaining.
    """
    _C = cfg
    _C.MODEL.CENTERNET = CN()
    c = _C.MODEL.CENTERNET
    c.NUM_CLASSES = 80
    # Backbone features the head runs on; CenterNet uses a single stride-4 map, the multi-level
    # CenterNet (MODEL.META_ARCHITECTURE "MultiLevelCenterNet") several, finest first.
    c.IN_FEATURES = ["p2"]
    # Head: HEAD_NUM_CONVS 3x3 convs of HEAD_CHANNELS (ReLU) before each branch's 1x1 output conv.
    c.HEAD_CHANNELS = 64
    c.HEAD_NUM_CONVS = 1
    # Norm after each tower conv of the head: "" (none, as in the paper), "BN", "GN", "SyncBN".
    c.HEAD_NORM = ""
    # The head's 3x3 convs have a bias even when HEAD_NORM follows (CenterNet2's published head).
    c.HEAD_CONV_BIAS = False
    # Kernel of each branch's output conv: 1 (CenterNet), 3 (CenterNet2's head).
    c.HEAD_OUT_KERNEL_SIZE = 1
    # Initial heatmap probability: the output bias is -log((1 - p) / p) (focal-loss prior).
    c.PRIOR_PROB = 0.1
    # Heatmap focal loss (CornerNet eq. 1): (1 - p)^ALPHA at peaks, (1 - y)^BETA p^ALPHA elsewhere.
    c.FOCAL_ALPHA = 2.0
    c.FOCAL_BETA = 4.0
    # Loss weights: heatmap, size (in output-grid cells, L1) and sub-cell offset (L1).
    c.HEATMAP_WEIGHT = 1.0
    c.SIZE_WEIGHT = 0.1
    c.OFFSET_WEIGHT = 1.0
    # Gaussian targets: "cornernet" (round gaussian with the radius of the paper's code, which
    # the paper's numbers and published models were trained with), "cornernet_exact" (round
    # gaussian, the exact CornerNet radius from MIN_OVERLAP, about 3.4x smaller: radius 0 for
    # boxes under about 12 cells) or "ttf" (elliptical gaussian with sigma = TTF_ALPHA * box
    # side / 6, as in TTFNet).
    c.TARGET_KIND = "cornernet"
    # CornerNet radius: the largest corner shift that keeps IoU >= MIN_OVERLAP with the GT box.
    c.MIN_OVERLAP = 0.7
    c.TTF_ALPHA = 0.54
    # Box outputs of the head: "size_offset" (CenterNet: size + sub-cell offset at the peak, losses
    # loss_size / loss_offset) or "ltrb" (TTFNet: distances in cells from each cell centre
    # (x + 0.5, y + 0.5) to the four box sides, ReLU(x) * LTRB_SCALE, trained with a GIoU loss
    # "loss_box" of weight BOX_WEIGHT on every cell of a gaussian area of radii TTF_BETA times
    # half the box sides, each cell weighted by its gaussian / the object's sum * log(box area)).
    c.BOX_HEAD = "size_offset"
    c.BOX_WEIGHT = 5.0
    c.LTRB_SCALE = 4.0  # cells per unit of the ReLU output (TTFNet's 16 px at stride 4)
    c.TTF_BETA = 0.54
    # Multi-level CenterNet (MODEL.META_ARCHITECTURE "MultiLevelCenterNet", CenterNet2's one-stage
    # detector; needs TARGET_KIND "multilevel", BOX_HEAD "ltrb" and IN_FEATURES of several levels,
    # finest first, e.g. p3..p7): the head is
    # shared by the levels; an object is a positive on each level whose SIZE_RANGES entry
    # [low, high] holds its half diagonal sqrt(w^2 + h^2) / 2 (input pixels); heatmaps are
    # exp(-d^2 / max(2 delta^2 area, MIN_RADIUS^2)) with delta = (1 - MIN_OVERLAP) /
    # (1 + MIN_OVERLAP), d the distance to the box centre in pixels; ltrb GIoU regression on the
    # 3x3 cells around the centre. Inference: PRE_NMS_TOPK_TEST candidates per level, class-wise
    # NMS of IoU NMS_THRESH_TEST, TEST.DETECTIONS_PER_IMAGE kept. The last range has no upper
    # bound (YAML: .inf).
    c.SIZE_RANGES = [[0, 80], [64, 160], [128, 320], [256, 640], [512, float("inf")]]
    c.MIN_RADIUS = 4.0
    c.NMS_THRESH_TEST = 0.6
    c.PRE_NMS_TOPK_TEST = 1000
    # Balance of the heatmap focal loss: positives x FOCAL_BALANCE, negatives x (1 - it)
    # (RetinaNet's alpha, CenterNet2's HM_FOCAL_ALPHA 0.25); < 0: no balance (the paper's loss).
    c.FOCAL_BALANCE = -1.0
    # Keypoints (the paper's multi-pose head, on with Detectron2's MODEL.KEYPOINT_ON; single-level
    # CenterNet): NUM_KEYPOINTS keypoints J of the dataset's union layout (every class's named
    # keypoints in one list, centernet_d2.data.keypoint_layout; COCO person: 17), CLASS_KEYPOINTS
    # the keypoint indices of each class (empty: every class has all J; [] for a class without
    # any). Heads: offsets of the J keypoints from the object's centre cell (L1 at the centre,
    # visible keypoints only, KEYPOINT_WEIGHT), a J-channel keypoint heatmap (focal loss, the
    # gaussians of the object's paper radius, KEYPOINT_HEATMAP_WEIGHT) and its sub-cell offset (L1,
    # KEYPOINT_OFFSET_WEIGHT). Inference: each regressed keypoint moves to the nearest keypoint
    # heatmap peak of probability >= KEYPOINT_SNAP_THRESH inside the object's box, if any
    # (KEYPOINT_SNAP False: the regressed keypoints alone).
    c.NUM_KEYPOINTS = 0  # 0: the training dataset's (filled before training, as CLASS_NAMES)
    c.CLASS_KEYPOINTS = []
    c.KEYPOINT_WEIGHT = 1.0
    c.KEYPOINT_HEATMAP_WEIGHT = 1.0
    c.KEYPOINT_OFFSET_WEIGHT = 1.0
    c.KEYPOINT_SNAP = True
    c.KEYPOINT_SNAP_THRESH = 0.1
    # For flip test-time augmentation: keypoint j of a mirror image is keypoint
    # KEYPOINT_FLIP_INDICES[j] (Detectron2's create_keypoint_hflip_indices). Training fills it and
    # empty NUM_KEYPOINTS-dependent keys (CLASS_KEYPOINTS) from DATASETS.TRAIN's metadata, so that
    # OUTPUT_DIR/config.yaml carries them; empty at test time: no keypoint is swapped.
    c.KEYPOINT_FLIP_INDICES = []
    # Test-time augmentation (modeling.CenterNetWithTTA from TEST.AUG.FLIP, MIN_SIZES, MAX_SIZE,
    # as Detectron2's; an empty MIN_SIZES keeps the input's size; applied by --eval-only, after
    # training and by CenterNetPredictor when TEST.AUG.ENABLED): IoU of the class-wise NMS
    # merging the scales.
    c.TTA_NMS_THRESH = 0.5
    # Inference: detections scoring below this are dropped; top-K is TEST.DETECTIONS_PER_IMAGE.
    c.SCORE_THRESH_TEST = 0.05
    # Names of the NUM_CLASSES classes, in order. Empty: training fills them from DATASETS.TRAIN,
    # so that OUTPUT_DIR/config.yaml and the checkpoints name the classes for prediction, the
    # demo and export without the dataset being registered again.
    c.CLASS_NAMES = []
    # Channels-last memory format for weights and images: faster convolutions with oneDNN (CPU)
    # and tensor cores (GPU). Combine with SOLVER.AMP.ENABLED (bfloat16 autocast on CPU).
    c.CHANNELS_LAST = True

    # Training augmentation (centernet_d2.data.build_centernet_augmentation): a TRAIN_SIZE
    # (height, width) canvas scaled by a random factor in SCALE_RANGE, the image resized to fit it,
    # then randomly cropped / padded to TRAIN_SIZE; flips follow INPUT.RANDOM_FLIP; brightness,
    # contrast and saturation are scaled by random factors in [1 - COLOR_JITTER, 1 + COLOR_JITTER].
    _C.INPUT.CENTERNET = CN()
    _C.INPUT.CENTERNET.TRAIN_SIZE = (512, 512)
    _C.INPUT.CENTERNET.SCALE_RANGE = (0.6, 1.3)
    _C.INPUT.CENTERNET.COLOR_JITTER = 0.4
    # Test-time canvas (modeling.CenterNetWithTTA, :data:`~.modeling.tta.CANVASES`): "" is
    # Detectron2's (the resized image at the top left, padded with the mean colour to the
    # backbone's size divisibility); "square" CenterNet's default test input (the resized image
    # centred on a black square of its long side: 512 x 512 with MIN_SIZE_TEST = MAX_SIZE_TEST =
    # 512); "keep_res" CenterNet's --keep_res (the image centred on black, each side padded to
    # (side | 31) + 1; with INPUT.MIN_SIZE_TEST 0 for the unresized image). Detections are moved
    # back to the image; the evaluation, --eval-only and the predictor use it.
    _C.INPUT.CENTERNET.TEST_CANVAS = ""

    # Training images that are missing, cannot be read, are not of their annotated width x height
    # or fail in the augmentation (centernet_d2.data.checks and CenterNetDatasetMapper): "stop"
    # raises naming them (missing, truncated and wrongly sized files are found before the first
    # iteration), "skip" warns naming them and trains on the other images.
    _C.DATALOADER.BAD_IMAGES = "stop"
    # Training objects whose annotation has a "visibility" (MOTChallenge's, in the COCO-video
    # jsons of tools/convert_mot.py) below this are left out (CenterTrack: 0.25); evaluation
    # counts every object, as TrackEval.
    _C.DATALOADER.MIN_VISIBILITY = 0.0

    # Optimiser built by centernet_d2.engine.Trainer: "SGD" (Detectron2's), "ADAM" (the paper's) or
    # "ADAMW"; SOLVER.BASE_LR, WEIGHT_DECAY, MOMENTUM (SGD) and CLIP_GRADIENTS apply to each.
    _C.SOLVER.OPTIMIZER = "SGD"
    # LR factor of the layers that predict the offsets and mask of deformable convolutions
    # (``conv_offset_mask``): DCNv2 trains them at 0.1x the LR; at 1x, large early offsets can
    # move every sample off the feature map and leave the layer dead.
    _C.SOLVER.DEFORM_OFFSET_LR_FACTOR = 0.1
    # LR factor of the per-channel gains of CenterTrack's stem fusion with
    # MODEL.CENTERTRACK.FUSION_ZERO_INIT: gains that start at 0 grow at the optimizer's pace.
    _C.SOLVER.FUSION_GAIN_LR_FACTOR = 1.0

    # ResNet + deconvolution upsampler (the paper's ResNet variant): stride-2 transposed convs.
    _C.MODEL.DECONV = CN()
    _C.MODEL.DECONV.IN_FEATURE = "res5"
    _C.MODEL.DECONV.CHANNELS = [256, 128, 64]  # output channels of each stage
    _C.MODEL.DECONV.KERNEL_SIZE = 4  # of the transposed convs
    _C.MODEL.DECONV.NORM = "BN"  # "BN", "SyncBN", "FrozenBN", "GN" or "" (none)
    # Each stage's 3x3 conv is a modulated deformable conv (DCNv2, torchvision's deform_conv2d),
    # as in the paper's ResNet variant; False: a plain conv (the parameter names of older models).
    _C.MODEL.DECONV.DEFORMABLE = False
    # Its keys were MODEL.CENTERNET.DECONV.* before (MOVED_NODES).
    for key in ("", ".IN_FEATURE", ".CHANNELS", ".KERNEL_SIZE", ".NORM", ".DEFORMABLE"):
        _C.register_renamed_key(
            "MODEL.CENTERNET.DECONV" + key,
            "MODEL.DECONV" + key,
            message="the deconvolution backbone's keys sit next to MODEL.DLA and MODEL.MOBILENET",
        )

    # MobileNet (torchvision) + FPN backbones.
    _C.MODEL.MOBILENET = CN()
    # "mobilenet_v2", "mobilenet_v3_large" or "mobilenet_v3_small"
    _C.MODEL.MOBILENET.NAME = "mobilenet_v2"
    # Norm of the MobileNet's layers: "BN", "SyncBN", "FrozenBN" (GN does not divide its widths).
    _C.MODEL.MOBILENET.NORM = "BN"
    # Stages frozen for training (0: none; the stem counts as stage 1).
    _C.MODEL.MOBILENET.FREEZE_AT = 0

    # BiFPN (EfficientDet) over the ResNet, MobileNet or DLA-34 bottom-up (build_{resnet,
    # mobilenet,dla}_bifpn_backbone): IN_FEATURES of doubling strides, finest first (res2..res5,
    # m2..m5 or level2..level5);
    # NUM_LEVELS levels in all (the ones beyond the bottom-up's by 3x3 max pools of stride 2),
    # each of OUT_CHANNELS; NUM_REPEATS BiFPN layers; OUT_FEATURES the levels returned
    # ("p<log2 stride>"; empty: all), e.g. ["p2"] for the single-level head.
    _C.MODEL.BIFPN = CN()
    _C.MODEL.BIFPN.IN_FEATURES = ["res3", "res4", "res5"]
    _C.MODEL.BIFPN.OUT_CHANNELS = 64
    _C.MODEL.BIFPN.NUM_LEVELS = 5
    _C.MODEL.BIFPN.NUM_REPEATS = 3
    _C.MODEL.BIFPN.NORM = "BN"
    _C.MODEL.BIFPN.OUT_FEATURES = []

    # DLA-34 + DLA-up / IDA-up to stride 4 (the paper's DLA variant, build_dla34_backbone).
    _C.MODEL.DLA = CN()
    # Norm of every layer: "BN", "SyncBN", "FrozenBN" or "GN" (32 groups, 16 on 16 channels).
    _C.MODEL.DLA.NORM = "BN"
    # The 3x3 projection and aggregation convs of DLA-up / IDA-up are modulated deformable convs
    # (DCNv2), as in the paper; False: plain 3x3 convs.
    _C.MODEL.DLA.DEFORMABLE = True
    # Outputs: "p2" (stride 4, 64 channels, the upsampled map) and any bottom-up levels
    # "level0".."level5" (level i has stride 2**i).
    _C.MODEL.DLA.OUT_FEATURES = ["p2"]

    add_centertrack_config(cfg)
    return cfg


def add_centertrack_config(cfg: CN) -> CN:
    """The keys of tracking (CenterTrack, ``MODEL.META_ARCHITECTURE: "CenterTrack"``), with their
    defaults; called by :func:`add_centernet_config`. Returns ``cfg``."""
    _C = cfg
    # The tracking network (centernet_d2.modeling.CenterTrack): CenterNet with the previous frame
    # and a heatmap of the previous frame's objects as extra inputs and a "displacement" branch:
    # per object centre, the offset in cells to its centre in the previous frame.
    _C.MODEL.CENTERTRACK = CN()
    t = _C.MODEL.CENTERTRACK
    t.PREV_IMAGE = True  # the previous frame is an input (CenterTrack's default; --no_pre_img)
    t.PREV_HEATMAP = True  # the previous frame's objects are an input heatmap (--pre_hm)
    # Where they enter. "stem" (CenterTrack's): relu(FUSION_NORM(conv(.))) of each is added to
    # the output of the backbone's first layer (DLA's base_layer, ResNet's stem, MobileNet's
    # features[0]), at its resolution and channels, the conv of its kernel size (7 for DLA, as
    # CenterTrack's; 3 for MobileNet). "input": fused into the image before the
    # backbone, image + conv3x3(FUSION_NORM([image, prev image, prev heatmap])), the conv
    # zero-initialised (at first the detector itself); for backbones without such a layer.
    t.FUSION = "stem"
    # "stem": scale each of the two by a learnt per-channel gain that starts at 0, so that the
    # tracker starts as the detector it fine-tunes. False: CenterTrack's random start, which
    # disturbs a trained detector at first (docs/tracking.md).
    t.FUSION_ZERO_INIT = False
    # The norm of the fusion's layers: "BN", "SyncBN", "FrozenBN" or "" (none). With "input" it is
    # per input channel and gives the sparse [0, 1] heatmap the scale of the images.
    t.FUSION_NORM = "BN"
    # Weight of loss_displacement: L1 at the objects' centres, in cells (--tracking_weight).
    t.DISPLACEMENT_WEIGHT = 1.0
    # Amodal boxes (CenterTrack's --ltrb_amodal, its MOT models): a head branch regresses at each
    # centre the distances in cells from the centre cell to the sides of the box as annotated
    # (not clipped to the image), L1 loss of weight AMODAL_BOX_WEIGHT (--ltrb_amodal_weight); its
    # boxes replace the size / offset boxes at inference.
    t.AMODAL_BOX = False
    t.AMODAL_BOX_WEIGHT = 0.1

    # Training pairs (centernet_d2.data.CenterTrackDatasetMapper). A frame of a video is paired
    # with a frame of the same video at a frame distance below MAX_FRAME_DIST (earlier, later or
    # itself; CenterTrack's --max_frame_dist); both go through the same augmentation if
    # SAME_AUGMENTATION (CenterTrack's --same_aug), else the paired frame also gets the shift and
    # scale below. A still image (no video_id), or a frame paired with itself, is paired with a
    # copy of its augmented self shifted by up to 2 x SHIFT of the longer side (normal, standard
    # deviation SHIFT) and scaled by 1 +- up to SCALE (normal, standard deviation SCALE)
    # (CenterTrack's static-image training, --shift / --scale).
    _C.INPUT.CENTERTRACK = CN()
    p = _C.INPUT.CENTERTRACK
    p.MAX_FRAME_DIST = 3
    p.SAME_AUGMENTATION = True
    p.SHIFT = 0.05
    p.SCALE = 0.05
    # Disturbances of the previous-frame heatmap in training (CenterTrack's --hm_disturb,
    # --lost_disturb, --fp_disturb): each object's centre moves by a normal jitter of standard
    # deviation PREV_HEATMAP_JITTER x its width / height; it is left out with probability
    # PREV_HEATMAP_DROP; a kept one gets a false positive next to it (jitter 0.05 x its size) with
    # probability PREV_HEATMAP_FALSE_POSITIVE.
    p.PREV_HEATMAP_JITTER = 0.05
    p.PREV_HEATMAP_DROP = 0.4
    p.PREV_HEATMAP_FALSE_POSITIVE = 0.1

    # Online tracking at test time (centernet_d2.tracking: Tracker, CenterTrackWithTracker,
    # CenterTrackPredictor). Detections scoring above SCORE_THRESH are linked to the tracks of the
    # previous frame: "displacement" (CenterTrack) by the distance of the detection's centre plus
    # its predicted displacement to a track's centre, at most sqrt of either box's area, same
    # class, greedily in descending score; "iou" by box IoU >= MIN_IOU, same class, without the
    # displacement (the paper's ablation). An unlinked detection above NEW_TRACK_SCORE starts a
    # track; a track unmatched for more than MAX_AGE frames ends (0: in the first frame without
    # a match); until then it moves on at its last velocity and may be linked again. With
    # SECOND_STAGE (ByteTrack), detections scoring in (LOW_SCORE_THRESH, SCORE_THRESH] are then
    # linked to the previous frame's tracks left unlinked, by box IoU >= SECOND_STAGE_MIN_IOU
    # (the detection's box moved by its displacement); they never start a track (the model must output them: MODEL.CENTERNET.SCORE_THRESH_TEST at most
    # LOW_SCORE_THRESH). The next frame's input heatmap shows the tracks matched or started in
    # this frame that score at least PREV_HEATMAP_SCORE (CenterTrack's --track_thresh,
    # --new_thresh, --max_age - 1, --pre_thresh).
    # What the model gets wrong, written after every evaluation of a detection or keypoint set
    # into OUTPUT_DIR/inference/<dataset>/ (centernet_d2.evaluation.analysis): per-class
    # precision-recall curves, the confusion matrix and the error breakdown of the detections
    # scoring at least SCORE_THRESH (IoU_THRESH to match), the WORST_IMAGES images of the most
    # errors drawn; for video sets the per-video tracking table and identity switches over time.
    # ENABLED False: only the AP tables.
    _C.TEST.ANALYSIS = CN()
    _C.TEST.ANALYSIS.ENABLED = True
    _C.TEST.ANALYSIS.SCORE_THRESH = 0.3
    _C.TEST.ANALYSIS.IOU_THRESH = 0.5
    _C.TEST.ANALYSIS.WORST_IMAGES = 8

    _C.TEST.TRACKING = CN()
    k = _C.TEST.TRACKING
    k.MATCH_BY = "displacement"
    k.SCORE_THRESH = 0.3
    k.NEW_TRACK_SCORE = 0.3
    k.MAX_AGE = 0
    k.MIN_IOU = 0.3
    k.PREV_HEATMAP_SCORE = 0.3
    k.SECOND_STAGE = False
    k.LOW_SCORE_THRESH = 0.1
    k.SECOND_STAGE_MIN_IOU = 0.5
    return cfg


def _get(cfg: CN, key: str):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


def check_training_keys(cfg: CN) -> None:
    """Raise ``ValueError`` for a Detectron2 key that CenterNet's training would silently ignore
    (:data:`IGNORED_TRAINING_KEYS`) set to other than its default, naming the key to use."""
    defaults = get_cfg()
    for key, instead in IGNORED_TRAINING_KEYS.items():
        value, default = _get(cfg, key), _get(defaults, key)
        if value != default:
            raise ValueError(
                f"{key} is {value!r}, but CenterNet's training does not use it; set {instead} "
                f"instead, and leave {key} at its default {default!r}"
            )


def _node(tree: dict, key: str) -> dict:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree if isinstance(tree, dict) else None


def merge_config_file(cfg: CN, config_file: str) -> CN:
    """``cfg.merge_from_file(config_file)`` (its ``_BASE_`` files included), the nodes of
    :data:`MOVED_NODES` read at their new place with a warning naming the file."""
    loaded = CN.load_yaml_with_base(config_file, allow_unsafe=True)
    moved = []
    for old, new, name in MOVED_NODES:
        parent = _node(loaded, old)
        if parent is None or name not in parent:
            continue
        target = _node(loaded, new)
        if target is None:
            continue
        target.setdefault(name, {}).update(parent.pop(name))
        moved.append(f"{old}.{name} -> {new}.{name}")
    if not moved:
        cfg.merge_from_file(config_file)
        return cfg
    logger.warning(
        f"{config_file}: read the moved config keys {', '.join(moved)}; write the new keys to "
        "silence this warning"
    )
    # its _BASE_ files are in ``loaded`` already: merged from a file of their own
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump(loaded, f)
    try:
        cfg.merge_from_file(f.name)
    finally:
        os.unlink(f.name)
    return cfg
