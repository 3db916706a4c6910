"""``ResumableTrainingSampler``: Detectron2's ``TrainingSampler`` stream that can start part way.

Naming convention: the *global stream* is the infinite sequence of dataset indices
``shuffle(range(size)) + shuffle(range(size)) + ...`` drawn from a seeded generator, exactly
Detectron2's ``TrainingSampler``. Rank ``r`` of ``world_size`` processes takes the global positions
``r, r + world_size, r + 2 * world_size, ...``; its *local position* ``q`` is global position
``q * world_size + r``. After ``i`` training iterations of ``SOLVER.IMS_PER_BATCH`` images, each
rank has consumed ``i * IMS_PER_BATCH / world_size`` local positions.
"""

import itertools
from typing import Iterator, Optional, Tuple

import torch
from detectron2.utils import comm
from torch.utils.data import Sampler

__all__ = ["ResumableTrainingSampler"]


class ResumableTrainingSampler(Sampler):
    """The infinite, seeded, shuffled index stream of Detectron2's ``TrainingSampler``, sharded
    over ranks the same way, that starts at local position ``start``: a training resumed after
    ``i`` iterations sets ``start = i * per-rank batch size`` and sees the indices the
    uninterrupted run would have seen.

    Like Detectron2's samplers it does not shard over DataLoader workers: it is cheap to iterate,
    so each worker iterates it and keeps its own share.
    """

    def __init__(
        self,
        size: int,
        *,
        seed: int,
        shuffle: bool = True,
        start: int = 0,
        rank: Optional[int] = None,
        world_size: Optional[int] = None,
    ):
        """
        Args:
            size: the number of samples in the dataset.
            seed: the shuffle seed, the same on every rank (>= 0).
            shuffle: shuffle each pass over the dataset (else 0, 1, ..., size - 1 repeated).
            start: the number of this rank's samples to skip (its local position to start at).
            rank, world_size: this process's rank and the number of processes; default from
                ``detectron2.utils.comm``.
        """
        if not isinstance(size, int) or size <= 0:
            raise ValueError(f"ResumableTrainingSampler needs a dataset size > 0, got {size!r}")
        if seed < 0:
            raise ValueError(f"ResumableTrainingSampler needs a seed >= 0, got {seed}")
        if start < 0:
            raise ValueError(f"ResumableTrainingSampler needs a start >= 0, got {start}")
        self.size = size
        self.seed = int(seed)
        self.shuffle = shuffle
        self.start = start
        self.rank = comm.get_rank() if rank is None else rank
        self.world_size = comm.get_world_size() if world_size is None else world_size
        if not 0 <= self.rank < self.world_size:
            raise ValueError(f"rank must be in [0, {self.world_size}), got {self.rank}")

    def __iter__(self) -> Iterator[int]:
        for _, index in self.positions():
            yield index

    def positions(self) -> Iterator[Tuple[int, int]]:
        """This rank's ``(global position, dataset index)`` pairs from local position
        ``start`` on, forever."""
        first = self.start * self.world_size + self.rank
        stream = self._global_indices(first)
        positions = itertools.count(first, self.world_size)
        return zip(positions, itertools.islice(stream, 0, None, self.world_size))

    def _global_indices(self, first: int) -> Iterator[int]:
        """The global stream from global position ``first`` on. Whole passes before ``first``
        are drawn (to advance the generator) but not turned into Python lists."""
        g = torch.Generator()
        g.manual_seed(self.seed)
        skipped_passes, offset = divmod(first, self.size)
        for _ in range(skipped_passes if self.shuffle else 0):
            torch.randperm(self.size, generator=g)
        while True:
            if self.shuffle:
                order = torch.randperm(self.size, generator=g)
            else:
                order = torch.arange(self.size)
            yield from order[offset:].tolist()
            offset = 0
