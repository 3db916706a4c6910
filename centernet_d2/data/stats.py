"""What a dataset holds, as CenterNet will see it: per class the images and objects, objects per
image, and the boxes smaller than the model's output stride.

CenterNet puts one heatmap peak per object on a grid of ``stride`` pixels; two objects of a class
whose centres fall into one cell cannot both be found, and a box whose shorter side is below the
stride is at most one cell across. Box sides are measured at the training scale: each image
fitted into ``INPUT.CENTERNET.TRAIN_SIZE`` (scale 1 of ``SCALE_RANGE``), as the model sees it.
"""

import logging
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import numpy as np
from detectron2.structures import BoxMode
from tabulate import tabulate

__all__ = [
    "SMALL_BOX_WARN_SHARE",
    "DatasetStatistics",
    "dataset_statistics",
    "format_statistics",
    "log_dataset_statistics",
]

logger = logging.getLogger(__name__)

SMALL_BOX_WARN_SHARE = 0.05  # warn when more boxes than this are smaller than the stride


@dataclass(frozen=True)
class DatasetStatistics:
    """Counts of one dataset. Shape shorthand: K classes, M objects (crowd boxes excluded)."""

    class_names: Tuple[str, ...]
    num_images: int
    images_per_class: np.ndarray  # (K,) images holding at least one object of the class
    objects_per_class: np.ndarray  # (K,)
    max_objects_per_image: int
    empty_images: int
    classes: np.ndarray  # (M,) class of each object
    sides: np.ndarray  # (M, 2) width, height of each box at the training scale, pixels
    stride: int

    @property
    def num_objects(self) -> int:
        return len(self.classes)

    @property
    def small(self) -> np.ndarray:
        """(M,) bool: the box's shorter side is below the stride at the training scale."""
        return self.sides.min(axis=1) < self.stride

    @property
    def small_share(self) -> float:
        return float(self.small.mean()) if self.num_objects else 0.0


def dataset_statistics(
    dataset_dicts: Sequence[dict],
    class_names: Sequence[str],
    stride: int,
    train_size: Optional[Tuple[int, int]] = None,
) -> DatasetStatistics:
    """Counts over Detectron2 dataset dicts (``category_id`` contiguous, 0..K-1).

    Args:
        stride: the model's output stride, input pixels.
        train_size: (height, width) each image is fitted into for training; None: box sides in
            the images' own pixels.
    """
    K = len(class_names)
    classes, sides, per_image = [], [], []
    images_per_class = np.zeros(K, dtype=np.int64)
    for d in dataset_dicts:
        annos = [a for a in d.get("annotations", []) if not a.get("iscrowd", 0)]
        per_image.append(len(annos))
        scale = 1.0
        if train_size is not None and d.get("height") and d.get("width"):
            scale = min(train_size[0] / d["height"], train_size[1] / d["width"])
        present = set()
        for a in annos:
            x0, y0, x1, y1 = BoxMode.convert(list(a["bbox"]), a["bbox_mode"], BoxMode.XYXY_ABS)
            classes.append(a["category_id"])
            sides.append(((x1 - x0) * scale, (y1 - y0) * scale))
            present.add(a["category_id"])
        for c in present:
            if 0 <= c < K:
                images_per_class[c] += 1
    classes_arr = np.asarray(classes, dtype=np.int64)
    return DatasetStatistics(
        class_names=tuple(class_names),
        num_images=len(per_image),
        images_per_class=images_per_class,
        objects_per_class=np.bincount(classes_arr[classes_arr < K], minlength=K)[:K],
        max_objects_per_image=max(per_image, default=0),
        empty_images=sum(n == 0 for n in per_image),
        classes=classes_arr,
        sides=np.asarray(sides, dtype=np.float64).reshape(-1, 2),
        stride=stride,
    )


def _percent(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.1f} %" if whole else "-"


def format_statistics(stats: DatasetStatistics) -> str:
    """One table: a row per class and a total row."""
    small = stats.small
    rows: List[list] = []
    for k, name in enumerate(stats.class_names):
        in_class = stats.classes == k
        n = int(stats.objects_per_class[k])
        images = int(stats.images_per_class[k])
        rows.append(
            [
                name,
                images,
                n,
                f"{n / images:.2f}" if images else "-",
                _percent(int(small[in_class].sum()), n),
            ]
        )
    total = stats.num_objects
    rows.append(
        [
            f"total ({stats.empty_images} images without objects)",
            stats.num_images,
            total,
            f"{total / max(stats.num_images, 1):.2f} (max {stats.max_objects_per_image})",
            _percent(int(small.sum()), total),
        ]
    )
    headers = ["class", "images", "objects", "objects / image", f"shorter side < {stats.stride} px"]
    return tabulate(rows, headers=headers, tablefmt="pipe", stralign="left")


def log_dataset_statistics(name: str, stats: DatasetStatistics) -> None:
    """Log the table of ``name``, and a warning when more than :data:`SMALL_BOX_WARN_SHARE` of
    its boxes are smaller than the stride."""
    logger.info(
        f"Dataset {name!r} (box sides at the training scale; stride {stats.stride} px):\n"
        + format_statistics(stats)
    )
    if stats.small_share > SMALL_BOX_WARN_SHARE:
        logger.warning(
            f"Dataset {name!r}: {100 * stats.small_share:.1f} % of the boxes have a shorter side "
            f"below the output stride ({stats.stride} px) at the training scale; CenterNet finds "
            "at most one object of a class per cell. Train at a larger INPUT.CENTERNET.TRAIN_SIZE "
            "or use a backbone with a finer output (MODEL.CENTERNET.IN_FEATURES p2)."
        )
