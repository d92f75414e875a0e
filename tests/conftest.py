"""Shared fixtures: parametrise over CPU and, when present, CUDA."""

import os

import numpy as np
import pytest
import torch

if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs two workers on two cores: one thread each avoids oversubscription,
    # which otherwise makes torch-heavy tests several times slower.
    torch.set_num_threads(1)

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
