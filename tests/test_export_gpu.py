"""The GPU paths of export (docs/export.md, "TensorRT and fp16"): skipped without CUDA (and
TensorRT). An exported ONNX file built into a TensorRT fp16 engine gives onnxruntime's detections;
a torch.export program of a CUDA model in fp16 gives the eager model's."""

import tempfile
import unittest

import torch
from detectron2.modeling import build_model

from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.export import ExportAdapter, ExportedModel, export_model, max_differences
from tests.common import CONFIG

try:
    import tensorrt
except ImportError:
    tensorrt = None

SIZE = 128
OPTS = ["INPUT.MIN_SIZE_TEST", str(SIZE), "INPUT.MAX_SIZE_TEST", str(SIZE)]


def model_on(device):
    torch.manual_seed(0)
    model = build_model(setup_cfg(CONFIG, OPTS + ["MODEL.DEVICE", device]))
    torch.nn.init.constant_(model.head.branches["size"][-1].bias, 8.0)
    return model.eval()


def images(device="cpu"):
    return torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(0)).to(device) * 255


@unittest.skipUnless(torch.cuda.is_available(), "needs a CUDA GPU")
class TestFp16(unittest.TestCase):
    def test_pt2_of_a_half_precision_model(self):
        model = model_on("cuda").half()
        x = images("cuda").half()
        with tempfile.TemporaryDirectory() as out:
            path, _ = export_model(model, x, out, "pt2")
            program = torch.export.load(path).module()
            with torch.no_grad():
                actual = [t.float().cpu().numpy() for t in program(x)]
                expected = [t.float().cpu().numpy() for t in ExportAdapter(model)(x)]
        diffs = max_differences(("boxes", "scores", "classes"), expected, actual, 0.05)
        self.assertEqual(diffs["classes"], 0)
        self.assertLessEqual(diffs["scores"], 1e-3)


@unittest.skipUnless(tensorrt is not None and torch.cuda.is_available(), "needs TensorRT and CUDA")
class TestTensorRT(unittest.TestCase):
    def test_fp16_engine_of_the_onnx_file(self):
        model = model_on("cpu")
        x = images()
        with tempfile.TemporaryDirectory() as out:
            path, _ = export_model(model, x, out, "onnx")
            expected = ExportedModel(path)(images=x.numpy())
            actual = run_tensorrt(path, x)
        names = ("boxes", "scores", "classes")
        diffs = max_differences(
            names, [expected[n] for n in names], [actual[n] for n in names], 0.1
        )
        self.assertEqual(diffs["classes"], 0)
        self.assertLessEqual(diffs["scores"], 1e-2)  # fp16


def run_tensorrt(onnx_path, x):
    """Build an fp16 engine of the ONNX file for the batch and size of ``x`` and run it."""
    trt = tensorrt
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)
    parser = trt.OnnxParser(network, logger)
    with open(onnx_path, "rb") as f:
        if not parser.parse(f.read()):
            raise RuntimeError([str(parser.get_error(i)) for i in range(parser.num_errors)])
    config = builder.create_builder_config()
    config.set_flag(trt.BuilderFlag.FP16)
    profile = builder.create_optimization_profile()
    profile.set_shape("images", tuple(x.shape), tuple(x.shape), tuple(x.shape))
    config.add_optimization_profile(profile)
    engine = trt.Runtime(logger).deserialize_cuda_engine(
        builder.build_serialized_network(network, config)
    )
    context = engine.create_execution_context()
    context.set_input_shape("images", tuple(x.shape))
    buffers = {"images": x.cuda().contiguous()}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.OUTPUT:
            dtype = torch.int64 if engine.get_tensor_dtype(name) == trt.int64 else torch.float32
            shape = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=dtype, device="cuda")
    for name, tensor in buffers.items():
        context.set_tensor_address(name, tensor.data_ptr())
    context.execute_async_v3(torch.cuda.current_stream().cuda_stream)
    torch.cuda.synchronize()
    return {n: t.cpu().numpy() for n, t in buffers.items() if n != "images"}


if __name__ == "__main__":
    unittest.main()
