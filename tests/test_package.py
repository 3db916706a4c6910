"""The install made by tools/setup_env.sh, and the package's import contract."""

import json
import os
import subprocess
import sys
import time
import unittest

import detectron2
import pytest

from tests.common import ROOT

STAMP = os.path.join(sys.prefix, ".centernet_d2_setup.json")


class TestImport(unittest.TestCase):
    def test_registers_everything(self):
        from detectron2.modeling import BACKBONE_REGISTRY, META_ARCH_REGISTRY

        import centernet_d2  # noqa: F401

        self.assertIn("CenterNet", META_ARCH_REGISTRY)
        for name in [
            "build_resnet_deconv_backbone",
            "build_resnet_fpn_p2_backbone",
            "build_mobilenet_fpn_p2_backbone",
        ]:
            self.assertIn(name, BACKBONE_REGISTRY)

    def test_without_detectron2_names_the_setup_command(self):
        # the package imports (its deploy part runs exported models without Detectron2); what
        # needs Detectron2 names the set-up command
        code = (
            "import sys; sys.modules['detectron2'] = None; import centernet_d2, "
            "centernet_d2.deploy; print('deploy ok', flush=True); centernet_d2.add_centernet_config"
        )
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        self.assertNotEqual(proc.returncode, 0)
        self.assertEqual(proc.stdout.strip(), "deploy ok")
        self.assertIn("ImportError", proc.stderr)
        self.assertIn("bash tools/setup_env.sh", proc.stderr)


def _is_pure_python_detectron2():
    try:
        from detectron2 import _C
    except ImportError:
        return False
    return hasattr(_C, "FULL_BUILD_HINT")


@unittest.skipUnless(os.path.exists(STAMP), "environment not made by tools/setup_env.sh")
@pytest.mark.slow
class TestSetup(unittest.TestCase):
    def test_second_setup_is_quick_and_offline(self):
        env = dict(os.environ, PIP_NO_INDEX="1")  # a download attempt would fail
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, os.path.join(ROOT, "tools", "setup_env.py")],
            capture_output=True,
            text=True,
            env=env,
        )
        elapsed = time.perf_counter() - start
        self.assertEqual(proc.returncode, 0, proc.stdout + proc.stderr)
        self.assertIn("up to date", proc.stdout)
        self.assertLess(elapsed, 30)
        self.assertEqual(json.load(open(STAMP))["repo"], os.path.realpath(ROOT))

    @unittest.skipUnless(_is_pure_python_detectron2(), "Detectron2 is the user's own build")
    def test_detectron2_is_an_installed_package(self):
        proc = subprocess.run(
            [sys.executable, "-m", "pip", "show", "detectron2"], capture_output=True, text=True
        )
        self.assertEqual(proc.returncode, 0)
        self.assertIn("Name: detectron2", proc.stdout)
        self.assertIn("Version: 0.6", proc.stdout)
        self.assertIn(sys.prefix, detectron2.__file__)
