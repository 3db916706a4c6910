#!/usr/bin/env python
"""Idempotent set-up of centernet-d2 into the running Python (normally the repository's .venv).

Run through ``tools/setup_env.sh``, which picks the Python. Steps, each skipped when already done:

1. PyTorch and torchvision, when ``import torch`` fails (``TORCH_SPEC`` overrides the versions).
2. Detectron2, when ``import detectron2`` fails. An importable Detectron2 (your own build) is used
   as is and never touched. Otherwise the Detectron2 v0.6 sources published on the package index as
   ``pb1-detectron2==0.6`` are downloaded once, checked against a pinned SHA-256, made importable
   without their C++ extension (see ``packaging/detectron2_wheel/_C.py``; COCO evaluation's fast
   path runs on faster-coco-eval, see ``packaging/detectron2_wheel/fast_eval_api.py``), built into a ``detectron2``
   wheel, cached in ``$CENTERNET_D2_CACHE`` (default ``~/.cache/centernet_d2``) and installed from
   there.
3. This package in editable mode, with its test extra; then ``setuptools<81``, which Detectron2's
   model zoo needs for ``pkg_resources`` and which other installs may have upgraded.

A stamp in the environment records a completed set-up of these sources, so running again costs
only an import check.
"""

import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
PURE_DIR = ROOT / "packaging" / "detectron2_wheel"
SDIST_NAME = "pb1-detectron2-0.6.tar.gz"
SDIST_SHA256 = "5d2e9e51e523ec72f6a31cca04b0a515492e9514b773a3d134cedc0677170b29"
WHEEL_NAME = "detectron2-0.6-py3-none-any.whl"
DEFAULT_TORCH_SPEC = "torch==2.14.1 torchvision==0.29.1"
STAMP = Path(sys.prefix) / ".centernet_d2_setup.json"
# written into the pure-Python Detectron2 package: the recipe it was built with
RECIPE_FILE = "centernet_d2_recipe.txt"


def log(msg):
    print(f"[setup] {msg}", flush=True)


def run(*args, **kwargs):
    log(" ".join(str(a) for a in args))
    subprocess.run([str(a) for a in args], check=True, **kwargs)


def pip(*args):
    run(sys.executable, "-m", "pip", "--disable-pip-version-check", *args)


def importable(module):
    """Whether ``module`` imports in a fresh interpreter (this one may have stale caches)."""
    code = f"import {module}"
    return subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def sources_digest():
    """Hash of everything that decides what set-up installs."""
    h = hashlib.sha256()
    for p in sorted([ROOT / "setup.py", HERE] + list(PURE_DIR.glob("*.py"))):
        h.update(p.read_bytes())
    return h.hexdigest()


def cache_dir():
    default = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "centernet_d2"
    d = Path(os.environ.get("CENTERNET_D2_CACHE", default))
    d.mkdir(parents=True, exist_ok=True)
    return d


def pip_version():
    import pip as _pip

    return tuple(int(x) for x in re.findall(r"\d+", _pip.__version__)[:2])


def download_sdist(cache):
    sdist = cache / SDIST_NAME
    if not sdist.exists():
        if pip_version() > (26, 0):  # pip 26.1+ refuses this sdist's metadata
            pip("install", "pip>=23,<=26.0")
        with tempfile.TemporaryDirectory() as tmp:
            # --no-build-isolation: its metadata step imports torch, installed by then
            pip("download", "--no-deps", "--no-build-isolation", "-d", tmp, "pb1-detectron2==0.6")
            shutil.move(str(Path(tmp) / SDIST_NAME), sdist)
    digest = sha256(sdist)
    if digest != SDIST_SHA256:
        bad = sdist.with_suffix(".rejected")
        sdist.rename(bad)
        raise SystemExit(
            f"[setup] {sdist}: SHA-256 {digest} differs from the pinned {SDIST_SHA256}; "
            f"moved it to {bad}. Run set-up again to download it afresh."
        )
    log(f"{sdist}: SHA-256 matches the pinned hash")
    return sdist


def patch_sources(src, recipe):
    """Make Detectron2 v0.6's Python sources work without _C and with current Pillow/numpy."""
    pkg = src / "detectron2"
    shutil.copy(PURE_DIR / "_C.py", pkg / "_C.py")
    (pkg / RECIPE_FILE).write_text(recipe)
    # Pillow 10 removed Image.LINEAR, an alias of BILINEAR.
    # COCOEvaluator's fast path runs on faster-coco-eval's C++ COCOeval instead of _C's.
    shutil.copy(PURE_DIR / "fast_eval_api.py", pkg / "evaluation" / "fast_eval_api.py")
    transform = pkg / "data" / "transforms" / "transform.py"
    transform.write_text(transform.read_text().replace("Image.LINEAR", "Image.BILINEAR"))
    # v0.6 imports caffe2 (gone from PyTorch) in detectron2.export; later Detectron2 makes it
    # optional, which keeps TracingAdapter and the TorchScript helpers importable.
    export = pkg / "export" / "__init__.py"
    export.write_text(
        export.read_text().replace(
            "from .api import *\n",
            "try:  # caffe2 is optional\n"
            "    from caffe2.proto import caffe2_pb2 as _tmp  # noqa: F401\n"
            "except ImportError:\n"
            "    pass\n"
            "else:\n"
            "    from .api import *  # noqa: F401,F403\n",
        )
    )
    # numpy 1.24 removed the aliases np.int / np.float / np.bool / np.str / np.object of builtins.
    alias = re.compile(r"\bnp\.(int|float|bool|str|object)\b(?!_)")
    for py in pkg.rglob("*.py"):
        text = py.read_text()
        new = alias.sub(r"\1", text)
        if new != text:
            py.write_text(new)


def wheel_recipe_digest():
    """Hash of what decides the Detectron2 wheel's contents."""
    h = hashlib.sha256(SDIST_SHA256.encode())
    for p in sorted(PURE_DIR.glob("*.py")) + [HERE]:
        h.update(p.read_bytes())
    return h.hexdigest()


def build_wheel(cache):
    wheel = cache / WHEEL_NAME
    marker = cache / (WHEEL_NAME + ".built-from")
    recipe = wheel_recipe_digest()
    if wheel.exists() and marker.exists() and marker.read_text() == recipe:
        log(f"using the cached {wheel}")
        return wheel
    sdist = download_sdist(cache)
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(sdist) as tar:
            tar.extractall(tmp, filter="data")
        src = Path(tmp) / "pb1-detectron2-0.6"
        build = Path(tmp) / "build"
        shutil.copytree(src / "detectron2", build / "detectron2")
        shutil.copy(src / "LICENSE", build / "LICENSE")
        shutil.copy(PURE_DIR / "setup.py", build / "setup.py")
        patch_sources(build, recipe)
        pip("wheel", "--no-deps", "--no-build-isolation", "-w", tmp, build)
        shutil.move(str(Path(tmp) / WHEEL_NAME), wheel)
    marker.write_text(recipe)
    return wheel


def installed_recipe():
    """The recipe of an installed pure-Python Detectron2 of ours, None for any other Detectron2."""
    code = (
        "import detectron2, os; p = os.path.join(os.path.dirname(detectron2.__file__), "
        f"{RECIPE_FILE!r}); print(open(p).read() if os.path.exists(p) else '')"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    return out.strip() or None


def provide_detectron2():
    if importable("detectron2"):
        recipe = installed_recipe()
        if recipe is None or recipe == wheel_recipe_digest():
            import detectron2

            where = detectron2.__file__
            log(f"using the importable Detectron2 {detectron2.__version__} at {where}")
            return
        log("the pure-Python Detectron2 installed by an older set-up is replaced")
        wheel = build_wheel(cache_dir())
        pip("install", "--force-reinstall", "--no-deps", wheel)
        pip("install", wheel)  # dependencies the new recipe added
        return
    pip("install", build_wheel(cache_dir()))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="redo every step's check")
    args = parser.parse_args()
    start = time.perf_counter()
    digest = sources_digest()
    if not args.force and STAMP.exists():
        stamp = json.loads(STAMP.read_text())
        if stamp.get("digest") != digest:
            log("the set-up sources changed since the last set-up: checking every step")
        elif not importable("centernet_d2"):
            log("centernet_d2 does not import: checking every step")
        else:
            log(f"{sys.prefix} is up to date ({time.perf_counter() - start:.1f} s)")
            return
    if not importable("torch") or not importable("torchvision"):
        pip("install", *os.environ.get("TORCH_SPEC", DEFAULT_TORCH_SPEC).split())
    provide_detectron2()
    pip("install", "-q", "--no-build-isolation", "-e", f"{ROOT}[test]")
    pip("install", "-q", "setuptools<81")
    if not importable("centernet_d2"):
        raise SystemExit("[setup] centernet_d2 does not import after set-up; see the errors above")
    STAMP.write_text(json.dumps({"digest": digest, "repo": str(ROOT)}))
    log(f"{sys.prefix} is set up ({time.perf_counter() - start:.1f} s)")


if __name__ == "__main__":
    main()
