"""Reading image files of any common PIL mode as 3-channel uint8 arrays.

Detectron2's ``read_image`` converts with ``PIL.Image.convert``, which clips 16-bit grey values to
255 (a 16-bit image comes out almost white). :func:`read_image` here scales them instead, applies
the EXIF orientation as Detectron2 does, decodes the whole file (so a truncated file fails here, not
later) and names the file in its errors.
"""

import logging
from typing import Tuple

import numpy as np
from detectron2.data.detection_utils import convert_PIL_to_numpy
from detectron2.utils.file_io import PathManager
from detectron2.utils.logger import log_first_n
from PIL import Image, ImageOps

__all__ = ["UnreadableImageError", "oriented_size", "read_image", "to_uint8_rgb"]

logger = logging.getLogger(__name__)

# 16-bit full range 0..65535 onto 0..255: 65535 / 255 = 257, so 257 * v maps back to v exactly
UINT16_PER_UINT8 = 257
UINT16_MAX = 65535
# PIL modes of one 16- or 32-bit integer channel ("I;16", "I;16B", "I;16L", "I;16N", "I")
_INT_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
EXIF_ORIENTATION = 0x0112  # the EXIF tag; values 2..8 flip and / or rotate
# orientations that turn the image by 90 or 270 degrees (transpose, rotate 270, transverse,
# rotate 90): width and height swap
EXIF_SWAPS_SIDES = (5, 6, 7, 8)


class UnreadableImageError(OSError):
    """An image file that exists but PIL cannot open or decode (corrupt, truncated, not an
    image). Its message names the file."""


def to_uint8_rgb(image: Image.Image) -> Image.Image:
    """``image`` as an 8-bit "RGB" PIL image.

    - "I;16*" and "I" (16-bit grey; 16-bit PNGs open as "I;16"): values are read as full-range
      16-bit, clipped to 0..65535 and divided by 257 with rounding (65535 -> 255, 32896 -> 128),
      then copied to the three channels.
    - "RGBA", "LA", "PA" and "P" with transparency: the alpha channel is dropped; each pixel keeps
      its colour (no compositing on a background).
    - "L", "P", "1", "CMYK", "YCbCr", ...: PIL's ``convert("RGB")``.
    """
    if image.mode in _INT_MODES:
        values = np.asarray(image).astype(np.int64)
        values = np.clip(values, 0, UINT16_MAX)
        grey = (values + UINT16_PER_UINT8 // 2) // UINT16_PER_UINT8  # round(v / 257)
        image = Image.fromarray(grey.astype(np.uint8), "L")
    if image.mode == "RGB":
        return image
    return image.convert("RGB")


def _exif_transpose(image: Image.Image, file_name: str) -> Image.Image:
    """Rotate / flip ``image`` as its EXIF orientation tag says, as Detectron2's ``read_image``."""
    try:
        if image.getexif().get(EXIF_ORIENTATION, 1) == 1:  # no tag, or "as stored"
            return image
        return ImageOps.exif_transpose(image)
    except Exception as e:  # broken EXIF data: keep the pixels as stored
        log_first_n(
            logging.WARNING, f"{file_name}: EXIF orientation ignored ({e})", n=1, key="message"
        )
        return image


def oriented_size(image: Image.Image) -> Tuple[int, int]:
    """(width, height) of ``image`` after its EXIF orientation: the size :func:`read_image`
    returns (broken EXIF data is ignored there too). PIL decodes a PNG in full for this unless its
    header holds the EXIF data (the chunk may also follow the pixel data)."""
    width, height = image.size
    try:
        orientation = image.getexif().get(EXIF_ORIENTATION, 1)
    except Exception:  # broken EXIF data: read_image keeps the pixels as stored
        return width, height
    return (height, width) if orientation in EXIF_SWAPS_SIDES else (width, height)


def read_image(file_name: str, format: str = "RGB") -> np.ndarray:
    """Read an image file into an (H, W, C) uint8 array in ``format``.

    Every PIL mode becomes 8-bit RGB first (see :func:`to_uint8_rgb`: 16-bit grey is scaled, not
    clipped; alpha is dropped), after the EXIF orientation is applied.

    Args:
        file_name: a path PathManager can open.
        format: "RGB" or "BGR" (3 channels), or another format of Detectron2's
            ``convert_PIL_to_numpy`` ("L", "YUV-BT.601", ...), converted from that RGB image.
    Returns:
        (H, W, 3) uint8 for "RGB" and "BGR".
    Raises:
        FileNotFoundError: the file does not exist.
        UnreadableImageError: PIL cannot open or fully decode it (corrupt, truncated, not an
            image); the message names the file and PIL's reason.
    """
    if not PathManager.exists(file_name):
        raise FileNotFoundError(f"image file {file_name} not found")
    try:
        with PathManager.open(file_name, "rb") as f:
            image = Image.open(f)
            image.load()  # decode now: a truncated file raises here, while we know its name
    except (OSError, SyntaxError, ValueError) as e:  # PIL raises all three on broken files
        raise UnreadableImageError(
            f"cannot read image file {file_name} ({type(e).__name__}: {e})"
        ) from e
    image = to_uint8_rgb(_exif_transpose(image, file_name))
    if format in ("RGB", "BGR"):
        array = np.asarray(image)
        return np.ascontiguousarray(array[:, :, ::-1]) if format == "BGR" else array
    return convert_PIL_to_numpy(image, format)
