"""Crash and resume: a training killed with SIGKILL and resumed with ``--resume`` ends exactly
where an uninterrupted one does; two CPU processes end with the same parameters.

The trainings run ``tests/engine/hooked_train_net.py`` (``tools/train_net.py`` plus test-only
hooks) in subprocesses, one thread each: float results on the CPU are bit-for-bit repeatable with
a fixed thread count.
"""

import os
import subprocess
import sys
import tempfile
import unittest

import pytest
import torch

from centernet_d2.engine import Trainer
from centernet_d2.engine.defaults import prepare_datasets, setup_cfg
from tests import common
from tests.common import CONFIG, ROOT

# tiny: 64 px crops, 12 iterations, checkpoints after iterations 3, 7 and 11, one DataLoader
# worker (the augmentation runs in another process), AdamW with a warm-up and an LR step
TINY = common.TINY + [
    "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "12", "SOLVER.STEPS", "(6,)",
    "SOLVER.WARMUP_ITERS", "3", "SOLVER.CHECKPOINT_PERIOD", "4", "DATASETS.TEST", "()",
    "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)", "DATALOADER.NUM_WORKERS", "1", "SEED", "7",
]  # fmt: skip


def start_training(output_dir, opts=(), kill_at=None, save_dir=None, num_processes=1):
    """``Popen`` of a training in its own session (a SIGKILL of its process group at
    ``kill_at`` spares the test)."""
    cmd = [sys.executable, "-m", "tests.engine.hooked_train_net", "--config-file", CONFIG]
    if num_processes > 1:
        cmd += ["--num-gpus", str(num_processes), "--dist-url", "auto"]
    cmd += ["--resume", "OUTPUT_DIR", output_dir] + TINY + list(opts)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTERNET_TEST_")}
    env["OMP_NUM_THREADS"] = "1"
    if kill_at is not None:
        env["CENTERNET_TEST_KILL_AT_ITER"] = str(kill_at)
    if save_dir is not None:
        env["CENTERNET_TEST_SAVE_DIR"] = save_dir
    log = tempfile.TemporaryFile("w+")  # not a pipe: a full pipe would pause the training
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    proc.log = log
    return proc


def finish(proc, expected_returncode=0):
    """Wait for ``proc``; its output, after checking its return code (-9: SIGKILL)."""
    proc.wait(timeout=300)
    proc.log.seek(0)
    output = proc.log.read()
    proc.log.close()
    if proc.returncode != expected_returncode:
        raise AssertionError(f"return code {proc.returncode}:\n{output[-3000:]}")
    return output


def flatten(state, prefix=""):
    """{"a/b/0": leaf} for nested dicts and lists (state_dicts of optimisers, schedulers...)."""
    if isinstance(state, dict):
        items = state.items()
    elif isinstance(state, (list, tuple)):
        items = enumerate(state)
    else:
        return {prefix: state}
    return {k: v for key, value in items for k, v in flatten(value, f"{prefix}/{key}").items()}


@pytest.mark.slow
class TestKillAndResume(unittest.TestCase):
    """One training runs to the end; another is killed after iteration 5 (two iterations after the
    checkpoint of iteration 3), resumed, killed after iteration 7 (right after its checkpoint),
    and resumed to the end. Both end with the same model, optimiser and scheduler state."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.whole, cls.killed = (os.path.join(cls.tmp.name, d) for d in ("whole", "killed"))
        states = [os.path.join(cls.tmp.name, d) for d in ("whole_state", "killed_state")]
        for d in states:
            os.makedirs(d)
        whole = start_training(cls.whole, save_dir=states[0])  # alongside the others
        cls.logs = [
            finish(start_training(cls.killed, kill_at=5), -9),
            finish(start_training(cls.killed, kill_at=7), -9),
            finish(start_training(cls.killed, save_dir=states[1])),
        ]
        finish(whole)
        cls.final = [
            torch.load(os.path.join(d, "model_final.pth"), weights_only=True)
            for d in (cls.whole, cls.killed)
        ]
        cls.seen = [
            torch.load(os.path.join(d, "rank0.pth"), weights_only=True)["seen"] for d in states
        ]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_each_run_resumed_from_the_last_checkpoint(self):
        self.assertIn("Starting training from iteration 0", self.logs[0])
        self.assertIn("Starting training from iteration 4", self.logs[1])  # model_0000003.pth
        self.assertIn("Starting training from iteration 8", self.logs[2])  # model_0000007.pth

    def test_same_parameters_and_buffers(self):
        whole, killed = (f["model"] for f in self.final)
        self.assertEqual(whole.keys(), killed.keys())
        for name in whole:
            self.assertTrue(torch.equal(whole[name], killed[name]), name)
        # the check has teeth: the model changed during the last iterations
        earlier = torch.load(os.path.join(self.whole, "model_0000007.pth"), weights_only=True)
        self.assertFalse(all(torch.equal(whole[k], earlier["model"][k]) for k in whole))

    def test_same_iteration_optimizer_and_scheduler(self):
        whole, killed = (flatten(f["trainer"]) for f in self.final)
        self.assertIn("/_trainer/optimizer/state/0/exp_avg", whole)  # AdamW's state is saved
        self.assertIn("/hooks/LRScheduler/last_epoch", whole)
        self.assertEqual(whole["/iteration"], 11)
        self.assertEqual(whole.keys(), killed.keys())
        for key, value in whole.items():
            if torch.is_tensor(value):
                self.assertTrue(torch.equal(value, killed[key]), key)
            else:
                self.assertEqual(value, killed[key], key)

    def test_resumed_stream_continues_the_data(self):
        # the last run trained iterations 8 to 11: the uninterrupted run's last 4 batches of 2
        self.assertEqual(len(self.seen[0]), 24)
        self.assertEqual(self.seen[1], self.seen[0][16:])


@pytest.mark.slow
class TestTwoProcesses(unittest.TestCase):
    def test_ranks_end_with_the_same_parameters(self):
        with tempfile.TemporaryDirectory() as tmp:
            out, state = os.path.join(tmp, "out"), os.path.join(tmp, "state")
            os.makedirs(state)
            opts = ["SOLVER.IMS_PER_BATCH", "4", "SOLVER.MAX_ITER", "4"]
            finish(start_training(out, opts, save_dir=state, num_processes=2))
            ranks = [
                torch.load(os.path.join(state, f"rank{r}.pth"), weights_only=True) for r in (0, 1)
            ]
        # parameters: the same averaged gradients on both ranks. BatchNorm running statistics
        # are each rank's own (Detectron2 does not broadcast buffers); rank 0's are saved.
        params = [r["parameters"] for r in ranks]
        self.assertEqual(params[0].keys(), params[1].keys())
        for name in params[0]:
            self.assertTrue(torch.equal(params[0][name], params[1][name]), name)
        optimizers = [flatten(r["optimizer"]) for r in ranks]
        for key, value in optimizers[0].items():
            if torch.is_tensor(value):
                self.assertTrue(torch.equal(value, optimizers[1][key]), key)
        # the ranks share the stream: each trained on its own 2 images per iteration
        seen = [r["seen"] for r in ranks]
        self.assertEqual([len(s) for s in seen], [8, 8])
        self.assertFalse(set(seen[0]) & set(seen[1]))


class TestTrainerState(unittest.TestCase):
    def test_data_seed_and_optimizer_are_checkpointed(self):
        with tempfile.TemporaryDirectory() as out:
            opts = ["SEED", "-1", "DATALOADER.NUM_WORKERS", "0", "OUTPUT_DIR", out]
            cfg = setup_cfg(CONFIG, TINY + opts)
            prepare_datasets(cfg)
            saved, resumed = Trainer(cfg), Trainer(cfg)
        self.assertNotEqual(saved._data_stream().seed, resumed._data_stream().seed)  # random
        state = saved.state_dict()
        self.assertIn("optimizer", state["_trainer"])  # Detectron2 v0.6 leaves it out
        resumed.load_state_dict(state)
        self.assertEqual(resumed._data_stream().seed, saved._data_stream().seed)
