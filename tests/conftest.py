"""Shared fixtures: parametrise over CPU and, when present, CUDA."""

import numpy as np
import pytest
import torch

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device"))]


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    """A torch device: ``cpu`` always, ``cuda`` when a GPU is present."""
    return torch.device(request.param)


@pytest.fixture
def rng() -> np.random.Generator:
    """A seeded numpy generator, so every test is repeatable."""
    return np.random.default_rng(0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test.

    ``make test`` runs two workers on two cores, so intra-op threads only
    oversubscribe them (tiny convolutions ran up to 100x slower); the torchrun
    test's processes use one thread too, so their float sums agree with ours.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
