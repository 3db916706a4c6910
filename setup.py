#!/usr/bin/env python
"""centernet-d2: CenterNet ("Objects as Points") as a Detectron2 plugin.

Detectron2 itself is not on the package index; ``bash tools/setup_env.sh`` provides it (or keeps
yours). See README.md.
"""
from setuptools import find_packages, setup

setup(
    name="centernet-d2",
    version="0.1.0",
    description='CenterNet ("Objects as Points") as a Detectron2 plugin',
    long_description=open("README.md").read(),
    long_description_content_type="text/markdown",
    packages=find_packages(include=("centernet_d2", "centernet_d2.*")),
    python_requires=">=3.8",
    install_requires=[
        "torch>=1.13",  # scatter_reduce (targets), weights_only loading
        "torchvision>=0.14",
        "fvcore>=0.1.5",
        "pycocotools>=2.0.2",
        "opencv-python",
        "numpy",
        "matplotlib",
        "tqdm",
        # tracking metrics (centernet_d2.evaluation.mot): MOTA / IDF1 from motmetrics (its pip
        # name; the repository is py-motmetrics), HOTA from TrackEval (1.3 tested with numpy 2);
        # lapx provides `lap`, motmetrics' fastest assignment solver
        "motmetrics>=1.4",
        "trackeval>=1.3",
        "lapx",
        "scipy",
    ],
    extras_require={
        "test": ["pytest>=7", "onnx", "onnxruntime", "onnxscript", "openvino"],
        # tools/export_model.py: ONNX by the torch.export-based exporter, OpenVINO
        "export": ["onnx", "onnxruntime", "onnxscript", "openvino"],
    },
)
