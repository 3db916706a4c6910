"""The resumable training stream: sampler positions, per-sample seeding, worker independence."""

import itertools
import random
import unittest

import numpy as np
import torch
from detectron2.data.samplers import TrainingSampler

from centernet_d2.data.sampler import ResumableTrainingSampler
from centernet_d2.data.train_loader import build_resumable_train_loader, seeded_rngs

BAD_ID = 3  # the toy mapper returns None for this image


def toy_mapper(dataset_dict):
    """Draws from every global RNG, as augmentations do; None for image BAD_ID."""
    if dataset_dict["id"] == BAD_ID:
        return None
    draws = (random.random(), float(np.random.rand()), float(torch.rand(())))
    return {"id": dataset_dict["id"], "draws": draws}


TOY_DATASET = [{"id": i} for i in range(7)]


def batches(num_workers, start_iter, count, total_batch_size=2, seed=3):
    loader = build_resumable_train_loader(
        TOY_DATASET,
        mapper=toy_mapper,
        total_batch_size=total_batch_size,
        seed=seed,
        num_workers=num_workers,
        start_iter=start_iter,
    )
    return list(itertools.islice(loader, count))


class TestResumableTrainingSampler(unittest.TestCase):
    def test_same_stream_as_detectron2(self):
        ours = ResumableTrainingSampler(5, seed=11, rank=0, world_size=1)
        d2 = TrainingSampler(5, seed=11)  # one process here: rank 0 of 1
        self.assertEqual(list(itertools.islice(ours, 17)), list(itertools.islice(d2, 17)))

    def test_start_skips_local_positions_across_passes(self):
        full = list(itertools.islice(ResumableTrainingSampler(5, seed=2).positions(), 20))
        for start in (0, 3, 5, 7, 12):
            tail = ResumableTrainingSampler(5, seed=2, start=start).positions()
            self.assertEqual(list(itertools.islice(tail, 20 - start)), full[start:])

    def test_ranks_interleave_the_global_stream(self):
        stream = list(itertools.islice(ResumableTrainingSampler(5, seed=4).positions(), 12))
        rank0 = ResumableTrainingSampler(5, seed=4, rank=0, world_size=2, start=1).positions()
        rank1 = ResumableTrainingSampler(5, seed=4, rank=1, world_size=2, start=1).positions()
        # local position 1 of rank r is global position 2 + r
        self.assertEqual(list(itertools.islice(rank0, 5)), stream[2::2])
        self.assertEqual(list(itertools.islice(rank1, 5)), stream[3::2])

    def test_unshuffled(self):
        sampler = ResumableTrainingSampler(3, seed=0, shuffle=False, start=2)
        self.assertEqual(list(itertools.islice(sampler, 5)), [2, 0, 1, 2, 0])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "size"):
            ResumableTrainingSampler(0, seed=0)
        with self.assertRaisesRegex(ValueError, "seed"):
            ResumableTrainingSampler(3, seed=-1)
        with self.assertRaisesRegex(ValueError, "rank"):
            ResumableTrainingSampler(3, seed=0, rank=2, world_size=2)


class TestSeededStream(unittest.TestCase):
    def test_batches_do_not_depend_on_start_or_workers(self):
        reference = batches(num_workers=0, start_iter=0, count=8)
        self.assertEqual(batches(num_workers=2, start_iter=0, count=8), reference)
        self.assertEqual(batches(num_workers=1, start_iter=5, count=3), reference[5:])
        self.assertEqual(batches(num_workers=2, start_iter=3, count=5), reference[3:])

    def test_none_is_replaced_by_another_image(self):
        stream = [d for batch in batches(num_workers=0, start_iter=0, count=20) for d in batch]
        self.assertEqual(len(stream), 40)
        self.assertNotIn(BAD_ID, [d["id"] for d in stream])
        # each image appears once per pass over the 7 images, bar the replacements of BAD_ID
        self.assertEqual({d["id"] for d in stream}, set(range(7)) - {BAD_ID})

    def test_seed_changes_the_stream(self):
        self.assertNotEqual(batches(0, 0, 4, seed=4), batches(0, 0, 4, seed=5))

    def test_mapping_leaves_global_rngs_alone(self):
        loader = build_resumable_train_loader(
            TOY_DATASET, mapper=toy_mapper, total_batch_size=2, seed=0
        )
        it = iter(loader)  # a DataLoader iterator draws its base seed from torch's RNG
        torch.manual_seed(0)
        expected = torch.rand(3)
        torch.manual_seed(0)
        next(it)
        self.assertTrue(torch.equal(torch.rand(3), expected))

    def test_seeded_rngs(self):
        with seeded_rngs(5):
            first = (random.random(), np.random.rand(), torch.rand(()))
        with seeded_rngs(5):
            second = (random.random(), np.random.rand(), torch.rand(()))
        self.assertEqual(first, second)

    def test_batch_size_must_divide(self):
        with self.assertRaisesRegex(ValueError, "IMS_PER_BATCH"):
            batches(num_workers=0, start_iter=0, count=1, total_batch_size=0)
