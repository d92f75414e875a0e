"""Seeding and the process group: where this process stands among ``torchrun``'s."""

from __future__ import annotations

import logging
import os
import random
import sys
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist

from crfseg._validation import check_choice, check_int

__all__ = ["DistributedContext", "init_distributed", "finish_distributed", "seed_everything",
           "average"]


def seed_everything(seed: int, *, deterministic: bool = False) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) generators.

    Parameters
    ----------
    seed : int
        Non-negative seed.
    deterministic : bool, default False
        Also ask torch for deterministic algorithms (slower on CUDA; kernels
        without a deterministic version then raise).

    Examples
    --------
    >>> seed_everything(0); a = torch.rand(2)
    >>> seed_everything(0); bool(torch.equal(a, torch.rand(2)))
    True
    """
    seed = check_int("seed", seed, low=0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        torch.use_deterministic_algorithms(True)
        torch.backends.cudnn.benchmark = False
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


@dataclass(frozen=True)
class DistributedContext:
    """Where this process stands: its rank among ``world_size`` processes and its device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on the process that writes checkpoints and shows progress (rank 0)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def init_distributed(backend: str | None = None,
                     device: str | torch.device | None = None) -> DistributedContext:
    """Join the process group that ``torchrun`` describes, or describe a single process.

    ``torchrun`` (``python -m torch.distributed.run``) sets ``RANK``,
    ``WORLD_SIZE``, ``LOCAL_RANK`` and the rendezvous variables; with
    ``WORLD_SIZE`` > 1 this initialises the default process group (once).
    Without them it returns a one-process context.

    Parameters
    ----------
    backend : {"nccl", "gloo"}, optional
        Default: ``nccl`` when CUDA is available, else ``gloo``.
    device : str or torch.device, optional
        Default: ``cuda:<LOCAL_RANK>`` when CUDA is available, else ``cpu``.

    Returns
    -------
    DistributedContext

    Examples
    --------
    >>> init_distributed(device="cpu").world_size  # not under torchrun
    1
    """
    if backend is not None:
        check_choice("backend", backend, ("nccl", "gloo"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if dist.is_available() and dist.is_initialized():
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1:
        if backend is None:
            backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
        return DistributedContext(dist.get_rank(), dist.get_world_size(), local_rank, device)
    return DistributedContext(0, 1, local_rank, device)


def average(value: torch.Tensor, ctx: DistributedContext) -> float:
    """The mean of a scalar over processes (NaN anywhere makes it NaN everywhere).

    Examples
    --------
    >>> average(torch.tensor(2.5), init_distributed(device="cpu"))
    2.5
    """
    if ctx.distributed:
        value = value.float().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= ctx.world_size
    return float(value)


def finish_distributed(code: int = 0) -> int:
    """Leave the process group; a process of a distributed run then ends at once with ``code``.

    Call it last, with the exit status.  Without a process group it returns
    ``code`` and does nothing else.  With one, it waits for every process (a
    barrier, on success only: a failed process must not wait for the others,
    which may be stuck in a collective it left, so that torchrun sees it end
    and stops them), destroys the group, flushes the standard streams and the
    logging handlers, and ends the process with :func:`os._exit`: Gloo's
    worker threads release the tensors of the last collectives after the
    collectives return, and when the interpreter is already finalising then,
    the release cannot take the GIL and aborts the process ("terminate called
    without an active exception", SIGABRT: one two-process run in about twenty
    on a loaded 2-core machine).  Ending before finalisation leaves nothing
    to release.

    Parameters
    ----------
    code : int, default 0
        Exit status, 0–255.

    Returns
    -------
    int
        ``code``, when there is no process group (otherwise it does not return).

    Examples
    --------
    >>> finish_distributed(0)  # not under torchrun
    0
    """
    code = check_int("code", code, low=0, high=255)
    if not (dist.is_available() and dist.is_initialized()):
        return code
    if code == 0:
        dist.barrier()
    dist.destroy_process_group()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    logging.shutdown()
    os._exit(code)
