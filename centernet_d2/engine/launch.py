"""Multi-process launch that works on GPUs (NCCL) and on CPU-only machines (gloo).

Detectron2 v0.6's ``launch`` asserts that CUDA is available; this one picks the backend from the
machine, so ``--num-gpus N`` starts N worker processes either way.
"""

import logging
from datetime import timedelta

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from detectron2.engine.launch import _find_free_port
from detectron2.utils import comm

__all__ = ["launch", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = timedelta(minutes=30)
logger = logging.getLogger(__name__)


def launch(
    main_func,
    num_gpus_per_machine: int,
    num_machines: int = 1,
    machine_rank: int = 0,
    dist_url: str = None,
    args=(),
    timeout: timedelta = DEFAULT_TIMEOUT,
):
    """Run ``main_func(*args)`` in ``num_gpus_per_machine`` processes on each of ``num_machines``
    machines (in this process when there is one in total).

    Workers use NCCL and one GPU each when CUDA has enough devices, else gloo on the CPU.

    Args:
        dist_url: rendezvous URL such as "tcp://127.0.0.1:8686"; "auto" picks a free local port
            (one machine only).
    """
    world_size = num_machines * num_gpus_per_machine
    if world_size <= 1:
        return main_func(*args)
    if dist_url == "auto":
        if num_machines != 1:
            raise ValueError('dist_url "auto" works on one machine only; give tcp://HOST:PORT')
        dist_url = f"tcp://127.0.0.1:{_find_free_port()}"
    mp.start_processes(
        _distributed_worker,
        nprocs=num_gpus_per_machine,
        args=(main_func, world_size, num_gpus_per_machine, machine_rank, dist_url, args, timeout),
        daemon=False,
        start_method="spawn",
    )


def _distributed_worker(
    local_rank, main_func, world_size, num_per_machine, machine_rank, dist_url, args, timeout
):
    use_cuda = torch.cuda.is_available() and torch.cuda.device_count() >= num_per_machine
    backend = "NCCL" if use_cuda else "GLOO"
    global_rank = machine_rank * num_per_machine + local_rank
    try:
        dist.init_process_group(
            backend=backend,
            init_method=dist_url,
            world_size=world_size,
            rank=global_rank,
            timeout=timeout,
        )
    except Exception:
        logger.error(f"Process group URL: {dist_url}")
        raise
    if hasattr(comm, "create_local_process_group"):  # Detectron2 after v0.6
        comm.create_local_process_group(num_per_machine)
    else:
        for i in range(world_size // num_per_machine):
            ranks = list(range(i * num_per_machine, (i + 1) * num_per_machine))
            group = dist.new_group(ranks)
            if i == machine_rank:
                comm._LOCAL_PROCESS_GROUP = group
    if use_cuda:
        torch.cuda.set_device(local_rank)
    comm.synchronize()
    main_func(*args)
