"""An exported model file run by its runtime, with the metadata stored in it.

Needs neither Detectron2 nor the training code: numpy, and the runtime of the file (onnxruntime
or OpenVINO for ".onnx", OpenVINO for ".xml", PyTorch for ".pt2" and ".ts").
"""

import json
import os
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

__all__ = ["ExportedModel", "METADATA_KEY", "MissingPackageError", "RUNTIMES", "openvino_model"]

METADATA_KEY = (
    "centernet_d2"  # ONNX metadata / OpenVINO rt_info key; ".json" extra file in .pt2/.ts
)
# Runtimes by file ending, the first one the default.
RUNTIMES = {
    ".onnx": ("onnxruntime", "openvino"),
    ".xml": ("openvino",),
    ".pt2": ("torch",),
    ".ts": ("torch",),
}
_INSTALL = {
    "onnxruntime": "pip install onnxruntime",
    "openvino": "pip install openvino",
    "torch": "the set-up's PyTorch (bash tools/setup_env.sh)",
}


class MissingPackageError(ImportError):
    """A package that export or a runtime needs is not installed; the message says how to
    install it (one ``error:`` line on the command line)."""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message, or its type's name."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _import(runtime: str):
    module = {"onnxruntime": "onnxruntime", "openvino": "openvino", "torch": "torch"}[runtime]
    try:
        return __import__(module)
    except ImportError as e:
        raise MissingPackageError(
            f"running this file needs {runtime} ({e}): {_INSTALL[runtime]}"
        ) from e


class ExportedModel:
    """A file written by ``tools/export_model.py`` (or :mod:`centernet_d2.export`), ready to run:
    ``model(images=x)`` -> {output name: numpy array}.

    Attributes:
        path, runtime; metadata: the JSON stored in the file (input names and size, input
        format, score threshold, class names, ...; see docs/export.md); input_names,
        output_names: from the metadata.
    """

    def __init__(self, path: str, runtime: Optional[str] = None, threads: int = 0):
        """
        Args:
            path: a ".onnx", ".xml" (OpenVINO IR), ".pt2" (torch.export) or ".ts" file.
            runtime: "onnxruntime" or "openvino" for ".onnx" (default: onnxruntime); the others
                have one runtime.
            threads: intra-op threads of onnxruntime / OpenVINO / PyTorch; 0: the runtime's
                default (all cores).
        """
        ending = os.path.splitext(path)[1]
        if ending not in RUNTIMES:
            raise ValueError(
                f"{path}: not an exported model; the file endings are {list(RUNTIMES)}"
            )
        if not os.path.isfile(path):
            raise FileNotFoundError(f"exported model {path} not found")
        runtime = runtime or RUNTIMES[ending][0]
        if runtime not in RUNTIMES[ending]:
            raise ValueError(f"{path}: {runtime!r} cannot run it; use one of {RUNTIMES[ending]}")
        self.path, self.runtime, self.threads = path, runtime, int(threads)
        self._run = getattr(self, f"_load_{runtime}")(path)
        self.input_names: List[str] = list(self.metadata.get("inputs", ["images"]))
        self.output_names: List[str] = list(self.metadata["outputs"])

    def __call__(self, **inputs: np.ndarray) -> Dict[str, np.ndarray]:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"{self.path}: missing inputs {missing}; it takes {self.input_names}")
        arrays = [np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names]
        return dict(zip(self.output_names, self._run(arrays)))

    def _load_onnxruntime(self, path: str):
        ort = _import("onnxruntime")
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.metadata = _json(session.get_modelmeta().custom_metadata_map.get(METADATA_KEY), path)
        names = [i.name for i in session.get_inputs()]
        return lambda arrays: session.run(None, dict(zip(names, arrays)))

    def _load_openvino(self, path: str):
        ov = _import("openvino")
        core = ov.Core()
        model = openvino_model(core, path)
        if model.has_rt_info([METADATA_KEY]):
            text = model.get_rt_info([METADATA_KEY]).astype(str)
        else:  # an ONNX file: its metadata through onnx
            import onnx

            proto = onnx.load(path, load_external_data=False)
            text = {p.key: p.value for p in proto.metadata_props}.get(METADATA_KEY)
        self.metadata = _json(text, path)
        # float32 as the other runtimes (OpenVINO's default on CPUs with bfloat16 units is
        # bfloat16, which moves scores by ~1e-3 and reorders near ties)
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if self.threads:
            config["INFERENCE_NUM_THREADS"] = self.threads
        compiled = core.compile_model(model, "CPU", config)
        request = compiled.create_infer_request()

        def run(arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
            results = request.infer(arrays)
            return [np.asarray(results[out]) for out in compiled.outputs]

        return run

    def _load_torch(self, path: str):
        torch = _import("torch")
        if self.threads:
            torch.set_num_threads(self.threads)
        extra = {METADATA_KEY + ".json": ""}
        if path.endswith(".pt2"):
            module = torch.export.load(path, extra_files=extra).module()
        else:
            import warnings

            with warnings.catch_warnings():  # the deprecation of TorchScript: see docs/export.md
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(path, _extra_files=extra)
        self.metadata = _json(extra[METADATA_KEY + ".json"], path)

        def run(arrays: Sequence[np.ndarray]) -> List[np.ndarray]:
            with torch.no_grad():
                return [t.numpy() for t in module(*(torch.from_numpy(a) for a in arrays))]

        return run


def openvino_model(core, path: str):
    """``core.read_model(path)``; a model OpenVINO cannot read for its deformable convolutions
    (ONNX DeformConv, which OpenVINO's ONNX reader lacks) gets an error saying so."""
    try:
        return core.read_model(path)
    except Exception as e:
        if "DeformConv" not in str(e):
            raise
        raise ValueError(
            f"{path}: OpenVINO cannot read ONNX DeformConv, the deformable convolutions of this "
            "model (MODEL.DECONV.DEFORMABLE or DLA-34's); run the ONNX file with onnxruntime or "
            "export --format pt2"
        ) from None


def _json(text: Optional[Any], path: str) -> Dict[str, Any]:
    if not text:
        raise ValueError(
            f"{path}: no {METADATA_KEY!r} metadata; export it with tools/export_model.py"
        )
    if isinstance(text, bytes):
        text = text.decode()
    return json.loads(text)
