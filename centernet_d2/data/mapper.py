"""``CenterNetDatasetMapper``: Detectron2's ``DatasetMapper`` with CenterNet's augmentation, a
reader for every common image mode (:func:`.image_io.read_image`) and a choice of what happens to
training images that cannot be read or transformed (``DATALOADER.BAD_IMAGES``)."""

import copy
import logging
from typing import Optional, Set

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import DatasetMapper
from detectron2.data import detection_utils as utils
from detectron2.data import transforms as T

from .augmentation import build_centernet_augmentation
from .checks import check_bad_images_mode
from .image_io import UnreadableImageError, read_image
from .keypoints import keypoint_metadata

__all__ = ["CenterNetDatasetMapper", "MAX_BAD_IMAGES_IN_A_ROW"]

logger = logging.getLogger(__name__)

# "skip" mode: this many failed images in a row means the data (or the code) is broken, not a few
# files (the data loader would otherwise draw replacements forever)
MAX_BAD_IMAGES_IN_A_ROW = 100


class CenterNetDatasetMapper(DatasetMapper):
    """Detectron2's ``DatasetMapper`` for detection (boxes; no semantic segmentation or
    precomputed proposals), reading images with :func:`.image_io.read_image`: grey, palette,
    RGBA and 16-bit files all become 3-channel uint8 in ``image_format``.

    An image that fails: its file is missing or cannot be decoded, or its size is not the
    dict's ``width`` x ``height`` (Detectron2's ``SizeMismatchError``), or any other error while
    its image or annotations are transformed:

    - training, ``bad_images="skip"``: a warning names the file and the error (once per file and
      process) and the mapper returns None, so the data loader maps another random image instead;
      :data:`MAX_BAD_IMAGES_IN_A_ROW` failures in a row raise ``RuntimeError``;
    - training, ``bad_images="stop"``, and always at test time: the error is raised again, of the
      same type where it can be built from a message (``FileNotFoundError``,
      :class:`.image_io.UnreadableImageError`, ``SizeMismatchError``, ...; else
      ``RuntimeError``), its message naming the file and saying what to do.

    :func:`.checks.check_image_files` finds missing and truncated files and size mismatches before
    training starts; this covers the files that only fail when decoded in full or transformed.
    """

    @configurable
    def __init__(self, is_train: bool = True, *, bad_images: str = "stop", **kwargs):
        """
        Args:
            bad_images: "stop" or "skip" (``DATALOADER.BAD_IMAGES``); see the class docstring.
            kwargs: Detectron2's ``DatasetMapper`` arguments (``augmentations``,
                ``image_format``, ...).
        """
        super().__init__(is_train, **kwargs)
        self.bad_images = check_bad_images_mode(bad_images)
        self._bad_in_a_row = 0
        self._warned: Set[str] = set()  # files whose failure was logged (skip mode)

    @classmethod
    def from_config(cls, cfg, is_train: bool = True):
        if cfg.MODEL.KEYPOINT_ON:  # Detectron2 reads the training sets' keypoint flip map
            for name in cfg.DATASETS.TRAIN:
                keypoint_metadata(name)
        ret = super().from_config(cfg, is_train)
        ret["augmentations"] = build_centernet_augmentation(cfg, is_train)
        ret["bad_images"] = cfg.DATALOADER.BAD_IMAGES
        return ret

    def __call__(self, dataset_dict: dict) -> Optional[dict]:
        """Detectron2's ``DatasetMapper.__call__`` with our reader; None for a skipped image."""
        file_name = dataset_dict["file_name"]
        try:
            image = read_image(file_name, format=self.image_format)
        except (FileNotFoundError, UnreadableImageError) as e:
            return self._bad_image(file_name, e, str(e))  # the message names the file
        try:
            mapped = self._map(copy.deepcopy(dataset_dict), image)  # modifies the copy
        except Exception as e:  # any failure of one sample: skip mode trains on without it
            return self._bad_image(
                file_name, e, f"image {file_name} failed to load ({_describe(e)})"
            )
        self._bad_in_a_row = 0
        return mapped

    def _map(self, dataset_dict: dict, image: np.ndarray) -> dict:
        utils.check_image_size(dataset_dict, image)
        aug_input = T.AugInput(image)
        transforms = self.augmentations(aug_input)
        image = aug_input.image
        image_shape = image.shape[:2]  # h, w
        dataset_dict["image"] = torch.as_tensor(np.ascontiguousarray(image.transpose(2, 0, 1)))
        if not self.is_train:
            dataset_dict.pop("annotations", None)
            return dataset_dict
        if "annotations" in dataset_dict:
            self._transform_annotations(dataset_dict, transforms, image_shape)
        return dataset_dict

    def _bad_image(self, file_name: str, error: Exception, message: str) -> None:
        """Raise ``error`` again with ``message`` (which names the file) and advice, or, when
        training in skip mode, warn once per file and return None."""
        if not self.is_train:
            raise _with_message(
                error,
                f"{message}. Fix the image file or its annotation, or remove it from the test set "
                "(test images are never skipped: the evaluation needs every image)",
            ) from error
        if self.bad_images == "stop":
            raise _with_message(
                error,
                f"{message}. Fix the image file or its annotation, or remove it from the dataset, "
                "or set DATALOADER.BAD_IMAGES skip to train without the images that fail",
            ) from error
        self._bad_in_a_row += 1
        if self._bad_in_a_row >= MAX_BAD_IMAGES_IN_A_ROW:
            raise RuntimeError(
                f"{self._bad_in_a_row} training images in a row failed to load, the last "
                f"{file_name} ({_describe(error)}); check the dataset's image folder and "
                "annotations"
            ) from error
        if file_name not in self._warned:
            self._warned.add(file_name)
            logger.warning(
                f"DATALOADER.BAD_IMAGES is 'skip': {message}; another training image replaces it"
            )
        return None


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"


def _with_message(error: Exception, message: str) -> Exception:
    """An exception of ``error``'s type with ``message``, or a ``RuntimeError`` where that type
    cannot be built from a message alone."""
    try:
        return type(error)(message)
    except Exception:
        return RuntimeError(message)
