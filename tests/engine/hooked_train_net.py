"""``tools/train_net.py`` with test-only hooks, for the tests that run training in a subprocess:
``python -m tests.engine.hooked_train_net`` (from the repository root) takes train_net's command
line; the hooks are set by environment variables:

* ``CENTERNET_TEST_KILL_AT_ITER=k``: SIGKILL the training after iteration ``k``'s hooks ran
  (checkpointing included): the whole process group when the process leads it (start it with
  ``start_new_session=True``: its DataLoader workers die too), else the process alone.
* ``CENTERNET_TEST_SAVE_DIR=DIR``: after training, each rank saves its model and optimiser
  state_dicts, its parameters and the file names of the images it trained on, in order, to
  ``DIR/rank<r>.pth``.
"""

import os
import signal

import torch
from detectron2.engine import HookBase
from detectron2.utils import comm

from centernet_d2.engine import Trainer
from tests.common import load_tool

train_net = load_tool("train_net")


class _TestHook(HookBase):
    def __init__(self, kill_at, save_dir):
        self.kill_at = kill_at
        self.save_dir = save_dir
        self.seen = []

    def before_train(self):
        self.module().register_forward_pre_hook(self._record)

    def module(self):
        model = self.trainer._trainer.model
        return getattr(model, "module", model)  # DistributedDataParallel's module

    def _record(self, module, args):
        if module.training:
            self.seen.extend(os.path.basename(d["file_name"]) for d in args[0])

    def after_step(self):
        if self.trainer.iter != self.kill_at:
            return
        if os.getpgid(0) == os.getpid():
            os.killpg(0, signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    def after_train(self):
        if self.save_dir:
            state = {
                "model": self.module().state_dict(),
                "parameters": dict(self.module().named_parameters()),
                "optimizer": self.trainer._trainer.optimizer.state_dict(),
                "seen": self.seen,
            }
            torch.save(state, os.path.join(self.save_dir, f"rank{comm.get_rank()}.pth"))


_build_hooks = Trainer.build_hooks


def _build_hooks_with_test_hook(self):
    kill_at = int(os.environ.get("CENTERNET_TEST_KILL_AT_ITER", -1))
    return _build_hooks(self) + [_TestHook(kill_at, os.environ.get("CENTERNET_TEST_SAVE_DIR"))]


# at import, so that the processes that launch starts (which import this file) have it too
Trainer.build_hooks = _build_hooks_with_test_hook


def main(args):
    return train_net.main(args)


if __name__ == "__main__":
    train_net.launch_main(main, train_net.argument_parser().parse_args())
