"""Checks of a dataset's image files and boxes, run on the training set before training starts.

Both work on Detectron2's dataset dicts (``DatasetCatalog.get(name)``) and return a new list; the
input dicts are not modified.

- :func:`check_image_files`: every file exists, PIL can open it (header, plus the end marker of
  JPEG and PNG files, which catches truncated files cheaply) and its size after the EXIF
  orientation is the dict's ``width`` x ``height`` (else Detectron2 raises ``SizeMismatchError``
  when it loads the image, mid-training); "stop" raises listing the bad files, "skip" drops their
  images with one warning.
- :func:`check_annotations`: boxes of zero or negative size or entirely outside their image are
  dropped, boxes partly outside are clipped to it, one warning per kind; a non-finite coordinate
  raises.
"""

import logging
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Dict, List, Optional, Sequence, Tuple

import tqdm
from detectron2.structures import BoxMode
from detectron2.utils.file_io import PathManager
from PIL import Image

from .image_io import EXIF_ORIENTATION, EXIF_SWAPS_SIDES, oriented_size

__all__ = [
    "BAD_IMAGES_MODES",
    "check_bad_images_mode",
    "find_bad_image_files",
    "check_image_files",
    "check_annotations",
]

logger = logging.getLogger(__name__)

# DATALOADER.BAD_IMAGES: "stop" raises naming the files, "skip" trains without them
BAD_IMAGES_MODES = ("stop", "skip")
NUM_CHECK_THREADS = 8  # file checks are I/O bound
PROGRESS_MIN_FILES = 1000  # a progress bar only for datasets at least this large
NUM_LISTED = 10  # bad files / boxes named in an error or warning
# the last bytes of a complete file: JPEG's end-of-image marker (followed by at most a little
# padding in some cameras' files) and PNG's IEND chunk
JPEG_EOI, JPEG_TAIL_BYTES = b"\xff\xd9", 1024
PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"
# exceptions PIL raises on broken files
PIL_ERRORS = (OSError, SyntaxError, ValueError)

NOT_FOUND = "not found"
# (width, height) from a dataset dict; None where the dict has no such key
Size = Tuple[Optional[float], Optional[float]]


def check_bad_images_mode(bad_images: str) -> str:
    """``bad_images`` if it is one of :data:`BAD_IMAGES_MODES`, else ``ValueError`` naming the
    config key."""
    if bad_images not in BAD_IMAGES_MODES:
        raise ValueError(
            f"DATALOADER.BAD_IMAGES must be one of {BAD_IMAGES_MODES}, got {bad_images!r}"
        )
    return bad_images


def _has_end_marker(f, image_format: Optional[str]) -> bool:
    """Whether the open file ends as a complete JPEG / PNG does; True for other formats."""
    if image_format not in ("JPEG", "PNG"):
        return True
    f.seek(0, 2)
    size = f.tell()
    f.seek(max(0, size - JPEG_TAIL_BYTES))
    tail = f.read()
    return JPEG_EOI in tail if image_format == "JPEG" else tail.endswith(PNG_IEND)


def _decoded(f) -> Image.Image:
    f.seek(0)
    image = Image.open(f)
    image.load()
    return image


def _header_size(image: Image.Image) -> Optional[Tuple[int, int]]:
    """:func:`.image_io.oriented_size` of an image whose header only was read, or None where only
    decoding tells: a TIFF turned by its orientation tag (Pillow versions differ on whether its
    size is turned already). A PNG whose header has no EXIF data counts as not turned (PIL would
    decode the whole file to look for a later EXIF chunk)."""
    if image.format == "TIFF":
        turned = image.tag_v2.get(EXIF_ORIENTATION) in EXIF_SWAPS_SIDES
        return None if turned else image.size
    if image.format == "PNG" and "exif" not in image.info:
        return image.size
    return oriented_size(image)


def _size_problem(size: Tuple[int, int], expected: Optional[Size]) -> Optional[str]:
    """Why an image of ``size`` (width, height) does not fit its dict's ``expected``, or None."""
    if expected is None:
        return None
    width, height = expected
    if width is None or height is None:  # Detectron2's check_image_size needs both
        return "has only one of width and height in its annotation; give both or neither"
    if (width, height) == size:
        return None
    return (
        f"is {size[0]}x{size[1]} pixels (width x height, after its EXIF orientation) but its "
        f"annotation says {width}x{height}"
    )


def _image_file_problem(file_name: str, decode: bool, expected: Optional[Size]) -> Optional[str]:
    """Why ``file_name`` cannot be used as an image of ``expected`` (width, height), or None."""
    if not PathManager.exists(file_name):
        return NOT_FOUND
    try:
        with PathManager.open(file_name, "rb") as f:
            image = Image.open(f)  # reads the header only
            if decode or not _has_end_marker(f, image.format):
                # decode in full; files that only look truncated (padding after the end) pass
                size = oriented_size(_decoded(f))
            else:
                size = _header_size(image)
                if expected is not None and (size is None or _size_problem(size, expected)):
                    size = oriented_size(_decoded(f))  # decode to be sure, as read_image does
    except PIL_ERRORS as e:
        return f"cannot be read ({type(e).__name__}: {e})"
    return _size_problem(size, expected)


def _find_problems(
    keys: Sequence[Tuple[str, Optional[Size]]], decode: bool, num_threads: int
) -> Dict[Tuple[str, Optional[Size]], str]:
    """{(file name, expected size): problem} for the bad ones of ``keys`` (checked once each)."""
    unique = list(dict.fromkeys(keys))
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=num_threads) as pool:
        problems = list(
            tqdm.tqdm(
                pool.map(lambda key: _image_file_problem(key[0], decode, key[1]), unique),
                total=len(unique),
                desc="checking image files",
                unit="file",
                disable=len(unique) < PROGRESS_MIN_FILES,
            )
        )
    bad = {key: p for key, p in zip(unique, problems) if p is not None}
    logger.info(
        f"Checked {len(unique)} image files in {time.perf_counter() - start:.1f} s: "
        f"{len(bad)} missing, unreadable or not of their annotated size"
    )
    return bad


def find_bad_image_files(
    file_names: Sequence[str],
    *,
    sizes: Optional[Sequence[Optional[Size]]] = None,
    decode: bool = False,
    num_threads: int = NUM_CHECK_THREADS,
) -> Dict[str, str]:
    """The files that are missing, that PIL cannot open, or whose size is not the one given.

    Args:
        file_names: image paths (duplicates are checked once).
        sizes: for each file, the (width, height) its annotation gives (a dataset dict's
            ``width`` / ``height``), compared with the file's size after its EXIF orientation,
            as Detectron2's ``check_image_size`` does when it loads the image; None: not
            compared. By default no size is compared.
        decode: decode every file in full (slow; catches corruption inside the pixel data). By
            default only the header is read, plus the end of JPEG and PNG files: a file without its
            end marker (usually truncated), or a PNG whose header size differs (its EXIF
            orientation may follow the pixels), is decoded to confirm.
        num_threads: files checked in parallel.
    Returns:
        {file name: problem} for the bad files, in the order of ``file_names``.
    """
    if sizes is None:
        sizes = [None] * len(file_names)
    if len(sizes) != len(file_names):
        raise ValueError(f"{len(file_names)} file names but {len(sizes)} sizes")
    bad: Dict[str, str] = {}
    for (file_name, _), problem in _find_problems(
        list(zip(file_names, sizes)), decode, num_threads
    ).items():
        bad.setdefault(file_name, problem)
    return bad


def _listing(items: Sequence[str]) -> str:
    lines = [f"  {item}" for item in items[:NUM_LISTED]]
    if len(items) > NUM_LISTED:
        lines.append(f"  ... and {len(items) - NUM_LISTED} more")
    return "\n".join(lines)


def _expected_size(dataset_dict: dict) -> Optional[Size]:
    if "width" not in dataset_dict and "height" not in dataset_dict:
        return None
    return dataset_dict.get("width"), dataset_dict.get("height")


def check_image_files(
    dataset_dicts: Sequence[dict], bad_images: str = "stop", *, decode: bool = False
) -> List[dict]:
    """Check the ``file_name`` of every dataset dict with :func:`find_bad_image_files`, and that
    the file's size (after its EXIF orientation) is the dict's ``width`` x ``height`` if it has
    them: Detectron2 would raise ``SizeMismatchError`` when it loads the image, mid-training.

    Args:
        bad_images: what to do with missing or unreadable files and files of another size
            (``DATALOADER.BAD_IMAGES``): "stop" raises, "skip" drops their dicts with one warning
            that lists them.
        decode: see :func:`find_bad_image_files`.
    Returns:
        The dicts whose files are good (all of them in "stop" mode).
    Raises:
        FileNotFoundError: "stop" and every bad file is missing; ValueError: "stop" and some bad
            file exists but cannot be read or has another size. The message lists the first
            files, each with its problem (both sizes for a size mismatch), and the count.
    """
    check_bad_images_mode(bad_images)
    keys = [(d["file_name"], _expected_size(d)) for d in dataset_dicts]
    bad = _find_problems(keys, decode, NUM_CHECK_THREADS)
    if not bad:
        return list(dataset_dicts)
    listing = _listing([f"{f}: {p}" for (f, _), p in bad.items()])
    if bad_images == "stop":
        error = FileNotFoundError if set(bad.values()) == {NOT_FOUND} else ValueError
        raise error(
            f"{len(bad)} image files of the training set are missing, unreadable or not of their "
            f"annotated size:\n{listing}\n"
            "Fix or remove them (or their entries in the annotation file; for a size mismatch, "
            "correct the image's width and height there), or set DATALOADER.BAD_IMAGES skip to "
            "train without them."
        )
    kept = [d for d, key in zip(dataset_dicts, keys) if key not in bad]
    if not kept:
        raise FileNotFoundError(f"no image file of the training set can be used:\n{listing}")
    logger.warning(
        f"DATALOADER.BAD_IMAGES is 'skip': {len(dataset_dicts) - len(kept)} images whose files "
        f"are missing, unreadable or not of their annotated size are left out of training "
        f"({len(kept)} left):\n{listing}"
    )
    return kept


# kinds of bad boxes, as named in the warnings
ZERO_SIZE = "with zero width or height (dropped)"
NEGATIVE_SIZE = "with negative width or height (dropped)"
OUTSIDE = "entirely outside their image (dropped)"
CLIPPED = "partly outside their image (clipped to it)"
_ABS_MODES = (BoxMode.XYXY_ABS, BoxMode.XYWH_ABS)


def _checked_box(anno: dict, width: Optional[float], height: Optional[float], where: str):
    """(kind or None, the box to keep or None) for one annotation."""
    box = anno.get("bbox")
    try:
        values = [float(v) for v in box]
    except (TypeError, ValueError):
        values = []
    if len(values) != 4:
        raise ValueError(f"{where}: bbox must be 4 numbers, got {box!r}; fix the annotation")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"{where}: bbox {box} has a non-finite coordinate; fix or remove the annotation"
        )
    if "bbox_mode" not in anno:
        raise ValueError(f"{where}: no bbox_mode; Detectron2's dataset dicts need one")
    mode = anno["bbox_mode"]
    if mode not in _ABS_MODES:  # relative or rotated boxes: not ours to check
        return None, box
    x0, y0, x1, y1 = BoxMode.convert(values, mode, BoxMode.XYXY_ABS)
    if x1 < x0 or y1 < y0:
        return NEGATIVE_SIZE, None
    if x1 == x0 or y1 == y0:
        return ZERO_SIZE, None
    if width is None or height is None:
        return None, box
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        return OUTSIDE, None
    clipped = [min(max(x0, 0), width), min(max(y0, 0), height)]
    clipped += [min(max(x1, 0), width), min(max(y1, 0), height)]
    if clipped == [x0, y0, x1, y1]:
        return None, box
    return CLIPPED, BoxMode.convert(clipped, BoxMode.XYXY_ABS, mode)


def check_annotations(dataset_dicts: Sequence[dict]) -> List[dict]:
    """Drop or clip bad boxes in the ``annotations`` of dataset dicts.

    Boxes (``bbox`` in ``BoxMode.XYXY_ABS`` or ``XYWH_ABS``) of zero or negative width or height,
    or entirely outside the image (``width`` x ``height`` of the dict), are dropped with their
    annotation; boxes partly outside are clipped to the image. One warning per kind gives the count
    and the first files with the annotation indices. Images may be left with no annotations.

    Returns:
        New dicts (the input is not modified); dicts without a bad box are the same objects.
    Raises:
        ValueError: a box with a non-finite coordinate (NaN, inf) or not of 4 numbers, naming the
            file and the annotation index.
    """
    found: Dict[str, List[str]] = {ZERO_SIZE: [], NEGATIVE_SIZE: [], OUTSIDE: [], CLIPPED: []}
    out = []
    for d in dataset_dicts:
        annos = d.get("annotations") or []
        kept, changed = [], False
        for i, anno in enumerate(annos):
            where = f"{d.get('file_name', '?')} annotation {i}"
            kind, box = _checked_box(anno, d.get("width"), d.get("height"), where)
            if kind is not None:
                found[kind].append(where)
                changed = True
            if box is not None:
                kept.append(anno if kind is None else dict(anno, bbox=box))
        out.append(dict(d, annotations=kept) if changed else d)
    for kind, where in found.items():
        if where:
            logger.warning(f"{len(where)} boxes {kind}:\n{_listing(where)}")
    return out
