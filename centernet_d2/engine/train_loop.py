"""``CPUAutocastTrainer``: Detectron2's ``SimpleTrainer`` step under CPU bfloat16 autocast.

Detectron2's ``AMPTrainer`` (v0.6) is CUDA-only. On CPUs with bfloat16 units (AVX512-BF16, AMX)
autocast runs convolutions in bfloat16, two to three times faster; bfloat16 keeps float32's
exponent range, so no gradient scaling is needed.
"""

import time

import torch
from detectron2.engine import SimpleTrainer

__all__ = ["CPUAutocastTrainer"]


class CPUAutocastTrainer(SimpleTrainer):
    """``SimpleTrainer`` whose forward pass runs under ``torch.autocast("cpu", dtype)``;
    backward and the optimiser step run outside it, as with Detectron2's ``AMPTrainer``."""

    def __init__(self, model, data_loader, optimizer, dtype: torch.dtype = torch.bfloat16):
        super().__init__(model, data_loader, optimizer)
        self.dtype = dtype

    def run_step(self):
        assert self.model.training, "[CPUAutocastTrainer] model was changed to eval mode!"
        start = time.perf_counter()
        data = next(self._data_loader_iter)
        data_time = time.perf_counter() - start
        with torch.autocast("cpu", dtype=self.dtype):
            loss_dict = self.model(data)
        loss_dict = {k: v.float() for k, v in loss_dict.items()}
        losses = sum(loss_dict.values())
        self.optimizer.zero_grad()
        losses.backward()
        if hasattr(self, "after_backward"):  # Detectron2 after v0.6 runs hooks here
            self.after_backward()
        self._write_metrics(loss_dict, data_time)
        self.optimizer.step()
