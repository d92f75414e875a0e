"""Which samples each process reads, in which order, with which augmentation seed.

Each sample's augmentation is drawn from a seed derived from
``(seed, epoch, index)``, so a run is repeatable whatever the number of data
workers or processes, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler, Sampler

__all__ = ["IndexedSamples", "TrainOrder", "EvaluationShard", "sample_seed", "batch_files"]


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """The augmentation seed of sample ``index`` in ``epoch`` of a run seeded ``seed``.

    Examples
    --------
    >>> sample_seed(0, 1, 2) == sample_seed(0, 1, 2) != sample_seed(0, 2, 2)
    True
    """
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0]
               % (2**63))


class IndexedSamples(Dataset):
    """Wrap a dataset so each item also carries its index and draws its
    augmentation from its own seed (keys are ``(index, seed)`` or an index)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[Any, Any, int]:
        index, seed = key if isinstance(key, tuple) else (key, None)
        if seed is None:
            image, target = self.dataset[index]
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                image, target = self.dataset[index]
        return image, target, index


class TrainOrder(Sampler):
    """This process's share of an epoch (``DistributedSampler``), each index
    paired with its augmentation seed; the first ``skip`` entries are dropped
    when a run resumes mid-epoch."""

    def __init__(self, dataset: Dataset, seed: int, rank: int, world_size: int) -> None:
        self.order = DistributedSampler(dataset, num_replicas=world_size, rank=rank,
                                        shuffle=True, seed=seed, drop_last=True)
        self.seed = seed
        self.epoch = 0
        self.skip = 0

    def start(self, epoch: int, skip: int = 0) -> None:
        """Begin ``epoch``, leaving out its first ``skip`` samples."""
        self.order.set_epoch(epoch)
        self.epoch = epoch
        self.skip = skip

    def __len__(self) -> int:
        return len(self.order) - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(self.order)[self.skip:]
        return iter([(i, sample_seed(self.seed, self.epoch, i)) for i in indices])


class EvaluationShard(Sampler):
    """Images ``rank, rank + world_size, …``: every image exactly once over all
    processes (``DistributedSampler`` would repeat some to even the shares out,
    which would count them twice in the metrics)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def batch_files(dataset: Dataset, indices: Iterable[int]) -> list[str]:
    """The image file of each sample (from the dataset's ``files(index)``), for messages."""
    name = getattr(dataset, "files", None)
    if callable(name):
        return [f for i in indices for f in name(int(i))[:1]]
    return [f"sample {int(i)}" for i in indices]
