"""A user's mistake on the command line of every tool: one ``error:`` line naming the thing and
the fix, exit status 2, no traceback; ``--debug`` shows the traceback; a normal run prints no
warning."""

import concurrent.futures
import contextlib
import io
import os
import tempfile
import unittest

import cv2
import numpy as np
import pytest
import torch

from centernet_d2.utils.cli import run_tool
from tests.common import CONFIG, load_tool, run_tool_in_process, run_tool_process

TOOLS = {name: load_tool(name) for name in ("train_net", "demo", "export_model", "benchmark")}
TOOLS["convert"] = load_tool("convert_torchvision_weights")
TOOLS["inspect"] = load_tool("inspect_dataset")
PARSERS = {
    "train_net": TOOLS["train_net"].argument_parser,
    "demo": TOOLS["demo"].get_parser,
    "export_model": TOOLS["export_model"].get_parser,
    "benchmark": TOOLS["benchmark"].get_parser,
    "convert": TOOLS["convert"].get_parser,
    "inspect": TOOLS["inspect"].get_parser,
}


def run_in_process(tool, argv):
    """(exit status, stderr) of ``run_tool(main, args)`` (the tools' ``__main__`` path)."""
    return run_tool_in_process(TOOLS[tool], argv, PARSERS[tool])


def error_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("error:")]


class TestUserMistakes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = cls.tmp.name
        cls.image = os.path.join(cls.out, "image.jpg")
        cv2.imwrite(cls.image, np.full((64, 80, 3), 128, np.uint8))
        cls.not_torch = os.path.join(cls.out, "notes.pth")
        with open(cls.not_torch, "w") as f:
            f.write("not a checkpoint")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def assertUserError(self, tool, argv, *expected):
        status, stderr = run_in_process(tool, argv)
        self.assertEqual(status, 2, stderr[-2000:])
        self.assertEqual(len(error_lines(stderr)), 1, stderr[-2000:])
        self.assertNotIn("Traceback", stderr)
        for text in expected:
            self.assertIn(text, stderr)
        return stderr

    def test_train_net(self):
        out = ["OUTPUT_DIR", self.out]
        cases = [  # (argv, texts the error names)
            (["--config-file", "nope.yaml"], ["nope.yaml not found"]),
            (["MODEL.CENTERNET.NUM_CLASS", "3"], ["unknown config key MODEL.CENTERNET.NUM_CLASS; "
                                                  "did you mean MODEL.CENTERNET.NUM_CLASSES?"]),
            (["SOLVER.MAX_ITER", "many"],
             ["SOLVER.MAX_ITER must be of int like its default 1000, got 'many'"]),
            (["--eval-only", "MODEL.WEIGHTS", "/nope/model.pth"],
             ["checkpoint /nope/model.pth not found; set MODEL.WEIGHTS"]),
            (["--eval-only", "MODEL.WEIGHTS", self.not_torch],
             [f"cannot read checkpoint {self.not_torch}"]),
            (["--coco-dataset", "x", "nothere.json", "."],
             ["--coco-dataset x: COCO annotation file nothere.json not found"]),
            (["--voc-dataset", "v", "/nope/VOC", "trainval"],
             ["--voc-dataset v: VOC folder /nope/VOC not found"]),
            (["MODEL.CENTERNET.NUM_CLASSES", "3"],
             ["NUM_CLASSES is 3 but dataset 'shapes_train' has 5 categories",
              "Set MODEL.CENTERNET.NUM_CLASSES 5"]),
            (["INPUT.MIN_SIZE_TRAIN", "(640,)"],
             ["INPUT.MIN_SIZE_TRAIN is (640,), but CenterNet's training does not use it; set "
              "INPUT.CENTERNET.TRAIN_SIZE"]),
            (["DATALOADER.ASPECT_RATIO_GROUPING", "False"],
             ["DATALOADER.ASPECT_RATIO_GROUPING is False"]),
            (["DATASETS.TRAIN", "('shapes_trian',)"],
             ["did you mean 'shapes_train'?", "--coco-dataset, --voc-dataset or --yolo-dataset"]),
            (["SOLVER.MAX_ITER", "3", "--voc-classes", "a,b"],
             ["--voc-classes comes after the KEY VALUE config overrides",
              "put the options (--...) before the overrides"]),
        ]  # fmt: skip
        for argv, expected in cases:
            with self.subTest(argv=argv):
                if argv[0] != "--config-file":
                    argv = ["--config-file", CONFIG] + argv
                self.assertUserError("train_net", argv + out, *expected)

    def test_demo(self):
        demo = ["--config-file", CONFIG, "--output", self.out]
        self.assertUserError("demo", demo + ["--input", "/nope/*.jpg"], "--input /nope/*.jpg")
        self.assertUserError(
            "demo",
            demo + ["--input", self.image, "--opts", "MODEL.WEIGHTS", "/nope.pth"],
            "checkpoint /nope.pth not found",
        )
        self.assertUserError(
            "demo", demo + ["--video-input", "/nope.mp4"], "--video-input /nope.mp4"
        )

    def test_export_convert_benchmark_inspect(self):
        self.assertUserError(
            "export_model",
            ["--config-file", CONFIG, "--format", "torchscript", "--output", self.out,
             "MODEL.WEIGHTS", "/nope.pth"],
            "checkpoint /nope.pth not found",
        )  # fmt: skip
        self.assertUserError(
            "export_model",
            ["--config-file", CONFIG, "--format", "torchscript", "--output", self.out,
             "--sample-image", "/nope.jpg"],
            "/nope.jpg",
        )  # fmt: skip
        self.assertUserError(
            "convert", ["/nope/resnet18.pth", f"{self.out}/r.pkl"], "/nope/resnet18.pth not found"
        )
        self.assertUserError(
            "convert", [self.not_torch, f"{self.out}/r.pkl"], "cannot read torchvision weights"
        )
        self.assertUserError("benchmark", ["--config-file", "nope.yaml"], "nope.yaml not found")
        self.assertUserError(
            "inspect",
            ["--config-file", CONFIG, "--output", self.out, "--dataset", "nope"],
            "--dataset names dataset 'nope', which is not registered",
        )

    @pytest.mark.slow
    def test_processes_exit_2_and_debug_shows_the_traceback(self):
        # in new processes (mostly imports): the exit status and a quiet import of the main
        # tools; every tool's messages are checked in this process above
        tools = ("train_net", "demo", "export_model")
        runs = []
        for tool in tools:
            argv = ["--config-file", "nope.yaml"]
            argv += {"demo": ["--input", "x.jpg", "--output", self.out],
                     "export_model": ["--format", "onnx", "--output", self.out]}.get(tool, [])  # fmt: skip
            runs.append((tool, *argv))
        runs.append(("train_net", "--config-file", "nope.yaml", "--debug"))
        # the processes, mostly imports, two at a time
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            procs = list(pool.map(lambda run: run_tool_process(*run), runs))
        for tool, proc in zip(tools, procs):
            self.assertEqual(proc.returncode, 2, (tool, proc.stderr[-2000:]))
            self.assertEqual(error_lines(proc.stderr), ["error: config file nope.yaml not found"])
            self.assertNotIn("Traceback", proc.stderr)
            self.assertNotIn("Warning", proc.stderr, tool)  # the import is quiet
        proc = procs[-1]
        self.assertNotEqual(proc.returncode, 0)
        self.assertIn("Traceback", proc.stderr)
        self.assertIn("FileNotFoundError: config file nope.yaml not found", proc.stderr)

    def test_a_bug_still_raises(self):
        def buggy(args):
            raise ZeroDivisionError("a bug")

        with self.assertRaises(ZeroDivisionError):
            run_tool(buggy, PARSERS["demo"]().parse_args(["--config-file", "x", "--output", "y"]))

    def test_a_value_error_from_a_library_is_a_bug(self):
        # the types of user errors, raised inside numpy or torch (not by this project for a
        # user's input): a traceback, not an "error:" line that would hide the bug
        args = PARSERS["demo"]().parse_args(["--config-file", "x", "--output", "y"])
        for bug, kind in (
            (lambda a: np.reshape(np.zeros(3), (2, 2)), ValueError),
            (
                lambda a: torch.load(os.path.join(self.out, "notes.pth"), weights_only=True),
                Exception,
            ),
        ):
            with self.subTest(kind=kind.__name__):
                err = io.StringIO()
                with contextlib.redirect_stderr(err), self.assertRaises(kind):
                    run_tool(bug, args)
                self.assertNotIn("error:", err.getvalue())

    def test_the_projects_own_input_errors_are_one_line(self):
        from centernet_d2.engine.defaults import setup_cfg

        args = PARSERS["demo"]().parse_args(["--config-file", "x", "--output", "y"])
        err = io.StringIO()
        with contextlib.redirect_stderr(err), self.assertRaises(SystemExit) as exit_:
            run_tool(lambda a: setup_cfg(CONFIG, ["MODEL.CENTERNET.NUM_CLASSES", "three"]), args)
        self.assertEqual(exit_.exception.code, 2)
        self.assertEqual(len(error_lines(err.getvalue())), 1)
        self.assertIn("MODEL.CENTERNET.NUM_CLASSES", err.getvalue())


class TestNormalRunIsQuiet(unittest.TestCase):
    def test_demo_prints_no_warning(self):
        with tempfile.TemporaryDirectory() as out:
            image = os.path.join(out, "a.jpg")
            cv2.imwrite(image, np.full((64, 64, 3), 100, np.uint8))
            proc = run_tool_process(
                "demo", "--config-file", CONFIG, "--input", image, "--output", out,
                "--opts", "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64",
            )  # fmt: skip
            self.assertEqual(proc.returncode, 0, proc.stderr[-2000:])
            self.assertTrue(os.path.isfile(os.path.join(out, "a.jpg")))
        noise = [line for line in (proc.stdout + proc.stderr).splitlines() if "arning" in line]
        self.assertEqual(noise, [])


if __name__ == "__main__":
    unittest.main()
