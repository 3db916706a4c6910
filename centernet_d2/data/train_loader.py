"""A training data loader whose batch ``i`` depends only on the seed and ``i``, so that a training
resumed from a checkpoint continues exactly as if it had not stopped.

Detectron2's training loader is not resumable: its sampler restarts from the beginning of the
stream, the augmentation draws from each DataLoader worker's RNG (seeded per run), a mapper that
returns ``None`` is replaced from a per-worker pool, and with several workers a batch's samples
depend on the worker count. Here

* :class:`.sampler.ResumableTrainingSampler` gives this rank's ``(global position, index)``
  stream from any local position;
* :class:`SeededMapDataset` runs the mapper on each position with Python's ``random``, numpy's
  and torch's global RNGs seeded from ``(seed, global position)``, replaces a ``None`` by another
  index drawn from the same seed, and hands whole batches to DataLoader workers in turn;
* :func:`build_resumable_train_loader` puts them into Detectron2's
  ``build_detection_train_loader``, without aspect-ratio grouping: the grouping buffers samples
  across batches, so the samples consumed after ``i`` iterations would not be the first
  ``i * batch`` of the stream. CenterNet crops every training image to one size
  (``INPUT.CENTERNET.TRAIN_SIZE``), so grouping has nothing to group.
"""

import contextlib
import logging
import random
from typing import Callable, Iterator, List, Optional, Union

import numpy as np
import torch
from detectron2.config import configurable
from detectron2.data import (
    DatasetFromList,
    build_detection_train_loader,
    get_detection_dataset_dicts,
)
from detectron2.utils import comm
from detectron2.utils.logger import log_first_n
from detectron2.utils.serialize import PicklableWrapper
from torch.utils.data import Dataset, IterableDataset, get_worker_info

from .sampler import ResumableTrainingSampler

__all__ = ["SeededMapDataset", "build_resumable_train_loader", "sample_seed", "seeded_rngs"]

logger = logging.getLogger(__name__)

# a mapper that returns None this many times in a row for one stream position (each time for a
# newly drawn image) stops the training with an error instead of looping forever
MAX_MAP_ATTEMPTS = 100
_UINT32 = 2**32


def sample_seed(seed: int, position: int, attempt: int = 0) -> int:
    """A 64-bit seed for the sample at global stream ``position`` (its ``attempt``-th try after
    the mapper returned ``None``), well mixed by numpy's ``SeedSequence``."""
    words = np.random.SeedSequence([seed, position, attempt]).generate_state(2)
    return int(words[0]) | int(words[1]) << 32


@contextlib.contextmanager
def seeded_rngs(seed: int):
    """Seed Python's ``random``, numpy's global and torch's CPU RNGs with ``seed`` (numpy with its
    low 32 bits) for the ``with`` block, then restore their states: in the training process
    (``DATALOADER.NUM_WORKERS`` 0) loading leaves the model's RNGs alone. CUDA RNGs are
    untouched."""
    states = random.getstate(), np.random.get_state(), torch.default_generator.get_state()
    random.seed(seed)
    np.random.seed(seed % _UINT32)
    torch.default_generator.manual_seed(seed)
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.default_generator.set_state(states[2])


class SeededMapDataset(IterableDataset):
    """This rank's infinite stream of mapped training samples, one per position of ``sampler``:
    the sample at a global position is the same whatever the start, the DataLoader worker count
    or the rank count, as long as the seed, dataset and mapper are the same.

    * The mapper runs with the global RNGs seeded by :func:`sample_seed` ``(seed, position)``.
    * When it returns ``None`` (Detectron2's "skip this sample"), another index, drawn from the
      same seed, is mapped for that position (seed ``(seed, position, attempt)``), so the stream
      keeps one sample per position.
    * DataLoader worker ``w`` of ``W`` maps the batches ``w, w + W, ...`` (``batch_size``
      consecutive positions each), which the DataLoader returns in order, so batches do not depend
      on ``W``.
    """

    def __init__(
        self,
        dataset: Dataset,
        mapper: Callable[[dict], Optional[dict]],
        sampler: ResumableTrainingSampler,
        batch_size: int,
    ):
        """
        Args:
            dataset: a map-style dataset of dataset dicts; ``dataset[i]`` must return a new
                object each time (the mapper may change it), as ``DatasetFromList`` does.
            mapper: dataset dict -> model input, or ``None`` to use another image.
            sampler: this rank's index stream; its ``seed`` also seeds the augmentation.
            batch_size: images per batch on this rank.
        """
        if len(dataset) != sampler.size:
            raise ValueError(f"sampler is for {sampler.size} samples, dataset has {len(dataset)}")
        self.dataset = dataset
        self.mapper = PicklableWrapper(mapper)  # lambdas and closures survive worker start-up
        self.sampler = sampler
        self.batch_size = batch_size

    @property
    def seed(self) -> int:
        return self.sampler.seed

    @property
    def start_iter(self) -> int:
        """The iteration whose batch comes first."""
        return self.sampler.start // self.batch_size

    def set_start_iter(self, iteration: int) -> None:
        """Start the stream at iteration ``iteration``'s batch; takes effect for iterators
        created afterwards (a DataLoader copies the dataset into its workers when they start)."""
        self.sampler.start = iteration * self.batch_size

    def state_dict(self) -> dict:
        return {"seed": self.sampler.seed}

    def load_state_dict(self, state: dict) -> None:
        self.sampler.seed = int(state["seed"])

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        positions = self.sampler.positions()
        batch = 0
        while True:
            chunk = [next(positions) for _ in range(self.batch_size)]
            if batch % num_workers == worker:
                for position, index in chunk:
                    yield self.map_position(position, index)
            batch += 1

    def map_position(self, position: int, index: int) -> dict:
        """The mapped sample of global stream ``position``, whose sampler index is ``index``."""
        for attempt in range(MAX_MAP_ATTEMPTS):
            seed = sample_seed(self.sampler.seed, position, attempt)
            dataset_dict = self.dataset[index]
            with seeded_rngs(seed):
                data = self.mapper(dataset_dict)
            if data is not None:
                return data
            log_first_n(
                logging.WARNING,
                f"the mapper returned None for dataset index {index} "
                f"({dataset_dict.get('file_name', 'no file_name')}); another image is used",
                n=10,
            )
            index = random.Random(seed).randrange(len(self.dataset))
        raise RuntimeError(
            f"the mapper returned None for {MAX_MAP_ATTEMPTS} images in a row at stream position "
            f"{position}; check the training dataset and the mapper"
        )


def _resumable_loader_from_config(cfg, mapper, *, dataset=None):
    if cfg.DATALOADER.SAMPLER_TRAIN != "TrainingSampler":
        raise ValueError(
            "DATALOADER.SAMPLER_TRAIN must be 'TrainingSampler' for the resumable training loader, "
            f"got {cfg.DATALOADER.SAMPLER_TRAIN!r}; for another sampler override "
            "Trainer.build_train_loader with Detectron2's build_detection_train_loader (a resumed "
            "training then restarts the data stream)"
        )
    if dataset is None:
        dataset = get_detection_dataset_dicts(
            cfg.DATASETS.TRAIN, filter_empty=cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS
        )
    return {
        "dataset": dataset,
        "mapper": mapper,
        "total_batch_size": cfg.SOLVER.IMS_PER_BATCH,
        "seed": cfg.SEED if cfg.SEED >= 0 else None,
        "num_workers": cfg.DATALOADER.NUM_WORKERS,
    }


@configurable(from_config=_resumable_loader_from_config)
def build_resumable_train_loader(
    dataset: Union[List[dict], Dataset],
    *,
    mapper: Callable[[dict], Optional[dict]],
    total_batch_size: int,
    seed: Optional[int] = None,
    num_workers: int = 0,
    start_iter: int = 0,
) -> torch.utils.data.DataLoader:
    """Detectron2's ``build_detection_train_loader`` over a :class:`SeededMapDataset` (without
    aspect-ratio grouping, see the module docstring). From a cfg: ``DATASETS.TRAIN``,
    ``SOLVER.IMS_PER_BATCH``, ``SEED``, ``DATALOADER.NUM_WORKERS``.

    Args:
        dataset: dataset dicts (a list or a map-style dataset).
        mapper: dataset dict -> model input, or ``None`` to use another image.
        total_batch_size: images per iteration over all ranks.
        seed: the stream's seed, the same on every rank; ``None`` draws one shared by the ranks.
        num_workers: DataLoader worker processes.
        start_iter: the iteration whose batch comes first (see
            :meth:`SeededMapDataset.set_start_iter` to change it later).

    Returns:
        A DataLoader of lists of ``total_batch_size / world size`` mapped samples; its ``dataset``
        is the :class:`SeededMapDataset`.
    """
    world_size = comm.get_world_size()
    if total_batch_size <= 0 or total_batch_size % world_size:
        raise ValueError(
            f"SOLVER.IMS_PER_BATCH ({total_batch_size}) must be a positive multiple of the "
            f"number of processes ({world_size})"
        )
    if isinstance(dataset, list):
        dataset = DatasetFromList(dataset, copy=False)
    batch_size = total_batch_size // world_size
    sampler = ResumableTrainingSampler(
        len(dataset),
        seed=comm.shared_random_seed() if seed is None else seed,
        start=start_iter * batch_size,
    )
    stream = SeededMapDataset(dataset, mapper, sampler, batch_size)
    return build_detection_train_loader(
        stream,
        mapper=None,  # SeededMapDataset maps
        total_batch_size=total_batch_size,
        aspect_ratio_grouping=False,
        num_workers=num_workers,
    )
