"""Packages Detectron2's v0.6 Python sources without the C++ extension (used by setup_env.py)."""

import os

from setuptools import find_packages, setup


def model_zoo_configs():
    root = os.path.join("detectron2", "model_zoo")
    return [
        os.path.relpath(os.path.join(d, f), root)
        for d, _, files in os.walk(os.path.join(root, "configs"))
        for f in files
        if f.endswith((".yaml", ".py"))
    ]


setup(
    name="detectron2",
    version="0.6",
    author="FAIR",
    url="https://github.com/facebookresearch/detectron2",
    description="Detectron2 v0.6 Python sources, installed without compiled ops by centernet-d2",
    packages=find_packages(include=("detectron2", "detectron2.*")),
    package_data={
        "detectron2": ["centernet_d2_recipe.txt"],  # written by setup_env.py
        "detectron2.model_zoo": model_zoo_configs(),
    },
    python_requires=">=3.7",
    install_requires=[
        "Pillow>=7.1",
        "matplotlib",
        "pycocotools>=2.0.2",
        # COCOEvaluator's fast evaluation without the compiled ops (see fast_eval_api.py)
        "faster-coco-eval>=1.6",
        "termcolor>=1.1",
        "yacs>=0.1.8",
        "tabulate",
        "cloudpickle",
        "tqdm>4.29.0",
        "tensorboard",
        "fvcore>=0.1.5,<0.1.6",
        "iopath>=0.1.7,<0.1.10",
        "omegaconf>=2.1",
        "hydra-core>=1.1",
        # detectron2.model_zoo imports pkg_resources, which setuptools 81 removed
        "setuptools<81",
    ],
)
