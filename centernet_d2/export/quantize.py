"""INT8 ONNX by onnxruntime's static quantization, calibrated on images.

Only the convolutions are quantized: their weights per output channel (int8), their inputs per
tensor (uint8) with ranges calibrated on the given images (MinMax). The other layers (norms,
activations, additions, upsampling) and the decoding (peaks, top-K, NMS) stay float: quantizing
them too cost the main job's model 4 to 5 AP on the shapes validation images for no speed. The result is a QDQ ONNX file that onnxruntime (and OpenVINO)
run with the same inputs and outputs as the float file.
"""

import logging
import os
import tempfile
from typing import Iterable, Iterator, Optional

import numpy as np

from ..deploy.runtime import MissingPackageError

__all__ = ["quantize_int8"]

logger = logging.getLogger(__name__)


def quantize_int8(
    onnx_path: str, output_path: str, calibration: Iterable[np.ndarray], input_name: str = "images"
) -> str:
    """Write the INT8 version of a float ONNX detector (one image input) to ``output_path``.

    Args:
        onnx_path: the float file (``tools/export_model.py --format onnx``).
        calibration: (1, 3, H, W) float32 inputs as the file takes them (training images
            prepared as for inference); a few dozen suffice.
    Returns:
        ``output_path``.
    """
    try:
        from onnxruntime.quantization import CalibrationDataReader
    except ImportError as e:
        raise MissingPackageError(
            f"INT8 quantization needs onnxruntime ({e}): pip install onnxruntime"
        ) from e

    class Reader(CalibrationDataReader):
        def __init__(self, inputs: Iterable[np.ndarray]):
            self.inputs: Iterator[np.ndarray] = iter(inputs)
            self.count = 0

        def get_next(self) -> Optional[dict]:
            x = next(self.inputs, None)
            if x is None:
                return None
            self.count += 1
            return {input_name: np.ascontiguousarray(x, dtype=np.float32)}

    reader = Reader(calibration)
    # onnxruntime's quantizer warns through the root logger (configuring it when it has no
    # handler) of details a user cannot act on: quiet, and the root logger left as it was
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    root.setLevel(logging.ERROR)
    try:
        _quantize(onnx_path, output_path, reader)
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    if reader.count == 0:
        os.remove(output_path)
        raise ValueError("INT8 calibration needs at least one image, got none")
    _copy_metadata(onnx_path, output_path)
    logger.info(f"wrote {output_path}, calibrated on {reader.count} image(s)")
    return output_path


def _quantize(onnx_path: str, output_path: str, reader) -> None:
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as work:
        prepared = os.path.join(work, "prepared.onnx")
        # shape inference and graph optimisation first, as onnxruntime recommends
        quant_pre_process(onnx_path, prepared, skip_symbolic_shape=True)
        quantize_static(
            prepared,
            output_path,
            reader,
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            op_types_to_quantize=["Conv"],
        )


def _copy_metadata(source: str, target: str) -> None:
    import onnx

    metadata = {p.key: p.value for p in onnx.load(source, load_external_data=False).metadata_props}
    proto = onnx.load(target)
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(proto, target)
