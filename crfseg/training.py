"""The training and evaluation loops every example uses.

:func:`train` runs SGD or AdamW with poly learning-rate decay, mixed precision
on CUDA, gradient clipping, periodic checkpoints with exact resume, a progress
bar, and stops on a non-finite loss after saving a checkpoint.  :func:`evaluate`
scores the CNN alone, the CNN followed by DenseCRF post-processing, and (for a
network wrapped with a CRFasRNN layer) the end-to-end model, side by side.

Both run unchanged under ``torchrun``: :func:`init_distributed` joins the
process group torchrun describes in the environment, training wraps the model
in ``DistributedDataParallel`` with a ``DistributedSampler``, and evaluation
splits the images between processes and sums the confusion matrices with
``SegmentationMetrics.sync``.

Samples come from crfseg datasets as ``(image, target)`` with the image in
0–255 units; the CNN's input normalisation runs here, on the device, so the
unnormalised RGB stays available for the CRF.

Randomness: each sample's augmentation is drawn from a seed derived from
``(seed, epoch, index)``, so a run is repeatable whatever the number of data
workers or processes, and a resumed run continues exactly where it stopped.
"""

from __future__ import annotations

import io
import math
import os
import random
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from crfseg._validation import check_choice, check_int, check_number
from crfseg.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD, normalize
from crfseg.metrics import SegmentationMetrics

__all__ = [
    "train",
    "evaluate",
    "TrainResult",
    "EvaluationReport",
    "NonFiniteLossError",
    "DistributedContext",
    "init_distributed",
    "seed_everything",
    "load_training_state",
    "OPTIMIZERS",
    "VARIANTS",
]

OPTIMIZERS = ("sgd", "adamw")

#: Keys of :attr:`EvaluationReport.metrics` and the column titles of its table.
VARIANTS = {"cnn": "CNN", "cnn+densecrf": "CNN + DenseCRF", "end_to_end": "CNN + CRFasRNN"}

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PathLike = str | os.PathLike


class NonFiniteLossError(FloatingPointError):
    """Training met a NaN or infinite loss; the message names the step, batch files and a hint.

    Attributes
    ----------
    step : int
        The step (1-based) whose loss was not finite.
    files : list of str
        The files of that step's batch (in this process).
    checkpoint : pathlib.Path
        Where the model and optimiser state before that step were saved.
    """

    def __init__(self, message: str, step: int, files: list[str], checkpoint: Path) -> None:
        super().__init__(message)
        self.step = step
        self.files = files
        self.checkpoint = checkpoint


# ---------------------------------------------------------------- seeding, distributed

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


# ---------------------------------------------------------------- data plumbing

def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1, np.uint64)[0]
               % (2**63))


class _Samples(Dataset):
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


class _TrainOrder(Sampler):
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
        self.order.set_epoch(epoch)
        self.epoch = epoch
        self.skip = skip

    def __len__(self) -> int:
        return len(self.order) - self.skip

    def __iter__(self) -> Iterator[tuple[int, int]]:
        indices = list(self.order)[self.skip:]
        return iter([(i, _sample_seed(self.seed, self.epoch, i)) for i in indices])


class _Shard(Sampler):
    """Images ``rank, rank + world_size, …``: every image exactly once over all
    processes (``DistributedSampler`` would repeat some to even the shares out,
    which would count them twice in the metrics)."""

    def __init__(self, length: int, rank: int, world_size: int) -> None:
        self.indices = list(range(rank, length, world_size))

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)


def _files(dataset: Dataset, indices: Iterable[int]) -> list[str]:
    name = getattr(dataset, "files", None)
    if callable(name):
        return [f for i in indices for f in name(int(i))[:1]]
    return [f"sample {int(i)}" for i in indices]


# ---------------------------------------------------------------- model plumbing

class _WithAux(nn.Module):
    """Present a crfseg model's auxiliary head (``forward_aux``) as the
    ``{"out", "aux"}`` dict the loss reads, so DDP sees one forward call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        out, aux = self.model.forward_aux(x)
        return {"out": out, "aux": aux}


def _unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DDP and the auxiliary-output adapter."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, _WithAux)):
        model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) \
            else model.model
    return model


def _crf_parts(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(cnn, crf)`` of a network wrapped by ``crfseg.models.with_crf``, else None."""
    core = _unwrap(model)
    cnn, crf = getattr(core, "cnn", None), getattr(core, "crf", None)
    if isinstance(cnn, nn.Module) and isinstance(crf, nn.Module):
        return cnn, crf
    return None


def _logits(output: Any) -> torch.Tensor:
    """The logits of a network's output: a tensor, or torchvision's dict's ``"out"``."""
    if isinstance(output, dict):
        output = output["out"]
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model must return logits (N, C, H, W) or a dict with 'out', "
                         f"got {shape}")
    return output


def _resize_to(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def _normalization(model: nn.Module, normalization: dict[str, Sequence[float]] | None
                   ) -> tuple[Sequence[float], Sequence[float]]:
    """Mean and std: the argument, else the model's ``normalization``, else ImageNet's."""
    if normalization is None:
        parts = _crf_parts(model)
        core = parts[0] if parts else _unwrap(model)
        normalization = getattr(core, "normalization", None) or getattr(
            _unwrap(model), "normalization", None)
    if normalization is None:
        return IMAGENET_MEAN, IMAGENET_STD
    if not isinstance(normalization, dict) or set(normalization) != {"mean", "std"}:
        raise ValueError(f"normalization must be a dict with keys 'mean' and 'std', "
                         f"got {normalization!r}")
    return normalization["mean"], normalization["std"]


def _forward(model: nn.Module, inputs: torch.Tensor, images: torch.Tensor) -> Any:
    """Run the model; a CRF-wrapped one also gets the 0–255 RGB images."""
    if _crf_parts(model) is not None:
        return model(inputs, images)
    return model(inputs)


def _loss(output: Any, target: torch.Tensor, loss_fn: LossFunction,
          aux_weight: float) -> torch.Tensor:
    """Loss of the main output (plus ``aux_weight`` times an auxiliary head's, if any).

    Non-finite logits give a NaN loss here rather than an error inside
    ``loss_fn``, so training stops through the one non-finite-loss path.
    """
    logits = _logits(output)
    if not bool(torch.isfinite(logits).all()):
        return logits.new_tensor(float("nan"), dtype=torch.float32)
    loss = loss_fn(_resize_to(logits, target.shape[-2:]).float(), target)
    if isinstance(output, dict) and output.get("aux") is not None and aux_weight:
        loss = loss + aux_weight * loss_fn(_resize_to(output["aux"], target.shape[-2:]).float(),
                                           target)
    return loss


def _default_loss(ignore_index: int) -> LossFunction:
    from crfseg.losses import cross_entropy

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target, ignore_index=ignore_index)

    return loss_fn


# ---------------------------------------------------------------- checkpoints

def _atomic_save(state: dict[str, Any], path: Path) -> Path:
    """Serialise in memory, then write atomically: an interrupted run never
    leaves a truncated checkpoint behind."""
    from crfseg.io import write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return write_bytes(path, buffer.getvalue())


def load_training_state(path: PathLike, map_location: str | torch.device = "cpu"
                        ) -> dict[str, Any]:
    """Read a checkpoint written by :func:`train`.

    Parameters
    ----------
    path : str or path-like
        A ``last.pt`` (or ``step-<N>.pt``, ``nonfinite-step-<N>.pt``) file.
    map_location : str or torch.device, default "cpu"
        Where tensors are loaded.

    Returns
    -------
    dict
        ``step``, ``model`` (a state dict), ``optimizer``, ``scheduler``,
        ``scaler`` and ``settings`` (the training arguments).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it is not a checkpoint written by :func:`train`.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"training checkpoint not found: {p}")
    try:
        state = torch.load(p, map_location=map_location, weights_only=False)
    except Exception as exc:
        raise ValueError(f"could not read training checkpoint {p}: {exc}") from None
    if not isinstance(state, dict) or state.get("format") != "crfseg-training":
        raise ValueError(f"{p} is not a crfseg training checkpoint (no 'format': "
                         "'crfseg-training' entry)")
    return state


@dataclass
class _Trainer:
    """The objects one training run updates, saved and restored together."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    settings: dict[str, Any]

    def state(self, step: int) -> dict[str, Any]:
        return {
            "format": "crfseg-training",
            "step": step,
            "model": _unwrap(self.model).state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "settings": self.settings,
            "rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        }

    def restore(self, state: dict[str, Any]) -> int:
        _unwrap(self.model).load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"].cpu())
        if state.get("cuda_rng") is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda_rng"]])
        return int(state["step"])


# ---------------------------------------------------------------- training

@dataclass
class TrainResult:
    """What :func:`train` did.

    Attributes
    ----------
    step : int
        The last step done (``max_steps`` after a complete run).
    start_step : int
        The step the run started from (0, or the resumed checkpoint's).
    history : list of dict
        ``{"step", "loss", "lr"}`` of every step of this run (loss averaged
        over processes, learning rate of the first parameter group).
    checkpoint : pathlib.Path or None
        The final ``last.pt``, when ``checkpoint_dir`` was given.
    seconds : float
        Wall time of the loop.
    images_per_second : float
        Training throughput over all processes.
    """

    step: int
    start_step: int
    history: list[dict[str, float]] = field(default_factory=list)
    checkpoint: Path | None = None
    seconds: float = 0.0
    images_per_second: float = 0.0


def _check_train_arguments(model: Any, dataset: Any, loss_fn: Any, parameters: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
        raise TypeError(f"dataset must be a torch Dataset, got {type(dataset).__name__}")
    if loss_fn is not None and not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable, got {type(loss_fn).__name__}")
    if parameters is not None and not isinstance(parameters, Iterable):
        raise TypeError(f"parameters must be an iterable of tensors, got "
                        f"{type(parameters).__name__}")


def _parameter_groups(parameters: Iterable[Any]) -> list[dict[str, Any]]:
    """Optimiser groups of the parameters that require grad: plain parameters
    form one group; dicts (``{"params": ..., "lr": ...}``) keep their options."""
    items = list(parameters)
    if items and all(isinstance(item, dict) for item in items):
        groups = []
        for i, group in enumerate(items):
            if "params" not in group:
                raise ValueError(f"parameters[{i}] is a group without a 'params' entry")
            groups.append({**group, "params": [p for p in group["params"] if p.requires_grad]})
        return [g for g in groups if g["params"]]
    if any(isinstance(item, dict) for item in items):
        raise TypeError("parameters must be all tensors or all groups (dicts), not a mixture")
    return [{"params": [p for p in items if p.requires_grad]}]


def _resolve_resume(resume: bool | PathLike, checkpoint_dir: Path | None) -> Path | None:
    if resume is False or resume is None:
        return None
    if resume is True:
        if checkpoint_dir is None:
            raise ValueError("resume=True needs checkpoint_dir (where last.pt is looked for)")
        last = checkpoint_dir / "last.pt"
        return last if last.is_file() else None
    if not isinstance(resume, (str, os.PathLike)):
        raise TypeError(f"resume must be a bool or a checkpoint path, got {type(resume).__name__}")
    path = Path(resume)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint to resume from not found: {path}")
    return path


def train(
    model: nn.Module,
    dataset: Dataset,
    *,
    max_steps: int,
    batch_size: int = 8,
    optimizer: str = "sgd",
    lr: float = 0.01,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    poly_power: float = 0.9,
    loss_fn: LossFunction | None = None,
    aux_weight: float = 0.4,
    ignore_index: int = 255,
    grad_clip: float | None = None,
    amp: bool = True,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    seed: int = 0,
    checkpoint_dir: PathLike | None = None,
    checkpoint_every: int = 0,
    resume: bool | PathLike = False,
    normalization: dict[str, Sequence[float]] | None = None,
    parameters: Iterable[torch.nn.Parameter] | None = None,
    sync_batchnorm: bool = False,
    progress: bool = True,
) -> TrainResult:
    """Train a segmentation network for ``max_steps`` optimiser steps.

    Each step takes a batch of ``batch_size`` samples per process, normalises
    the 0–255 images on the device, computes the loss (with autocast in
    float16 and a gradient scaler on CUDA when ``amp``), clips the gradient
    norm when ``grad_clip`` is set, and steps the optimiser and the poly
    schedule ``lr · (1 − step / max_steps) ** poly_power``.  Under ``torchrun``
    the model is wrapped in ``DistributedDataParallel`` and each process reads
    its share of every epoch through a ``DistributedSampler``.

    Parameters
    ----------
    model : nn.Module
        Maps normalised images ``(N, 3, H, W)`` to logits ``(N, C, H, W)``
        (or a dict with ``"out"`` and optionally ``"aux"``); a network wrapped
        by ``crfseg.models.with_crf`` also gets the 0–255 images.  Logits of
        another size are resized bilinearly to the labels'.
    dataset : Dataset
        Yields ``(image (3, H, W) 0–255, target (H, W) int64)`` of one size
        (use a random crop).
    max_steps : int
        Length of the schedule (a resumed run continues up to it).
    batch_size : int, default 8
        Samples per process and step.
    optimizer : {"sgd", "adamw"}, default "sgd"
        SGD with ``momentum``, or AdamW.
    lr, momentum, weight_decay, poly_power : float
        Optimiser and schedule settings (0.01, 0.9, 1e-4, 0.9).
    loss_fn : callable, optional
        ``loss_fn(logits, target) -> scalar``; default
        :func:`crfseg.losses.cross_entropy` with ``ignore_index``.
    aux_weight : float, default 0.4
        Weight of an auxiliary head's loss: a ``"aux"`` entry of the output,
        or the ``forward_aux`` output of a model-zoo network built with
        ``aux=True``.
    ignore_index : int, default 255
        Label left out of the default loss.
    grad_clip : float, optional
        Largest total gradient norm.
    amp : bool, default True
        Mixed precision (float16 autocast and a gradient scaler) on CUDA;
        ignored on CPU.
    device : str or torch.device, optional
        Default ``cuda:<LOCAL_RANK>`` when available, else ``cpu``.
    num_workers : int, default 0
        Data-loading processes.
    seed : int, default 0
        Seeds the data order, every sample's augmentation and torch's
        generator (offset by the rank).
    checkpoint_dir : str or path-like, optional
        Where ``last.pt`` is written every ``checkpoint_every`` steps and at the end.
    checkpoint_every : int, default 0
        Steps between checkpoints (0: only at the end).
    resume : bool or path, default False
        ``True`` continues from ``checkpoint_dir/last.pt`` when it exists; a
        path continues from that checkpoint.
    normalization : dict, optional
        ``{"mean": (3,), "std": (3,)}`` in 0–1 units; default the model's
        ``normalization`` attribute, else ImageNet's.
    parameters : iterable of Parameter or of dict, optional
        What the optimiser updates; default every parameter that requires
        grad.  Dicts are torch optimiser groups (``{"params": [...], "lr":
        0.1}``), e.g. a higher learning rate for a CRF layer; the poly
        schedule scales every group.
    sync_batchnorm : bool, default False
        Convert BatchNorm layers to SyncBatchNorm when running on several GPUs.
    progress : bool, default True
        Show a progress bar (loss, learning rate, images per second) on rank 0.

    Returns
    -------
    TrainResult

    Raises
    ------
    NonFiniteLossError
        When a loss is NaN or infinite: the model and optimiser state before
        that step are saved first (to ``checkpoint_dir``, else a new temporary
        folder), and the message gives the step, the batch's files and a hint.
    ValueError, TypeError
        For bad arguments, before any work.

    References
    ----------
    L.-C. Chen et al., "DeepLab: Semantic Image Segmentation with Deep
    Convolutional Nets, Atrous Convolution, and Fully Connected CRFs", TPAMI
    2018 (poly schedule).

    Examples
    --------
    >>> from crfseg.datasets import SyntheticShapes
    >>> from crfseg.datasets.transforms import train_transforms
    >>> data = SyntheticShapes(8, size=24, num_classes=3, transforms=train_transforms(16))
    >>> net = torch.nn.Conv2d(3, 3, 3, padding=1)
    >>> result = train(net, data, max_steps=2, batch_size=4, progress=False)
    >>> result.step, len(result.history)
    (2, 2)
    """
    _check_train_arguments(model, dataset, loss_fn, parameters)
    max_steps = check_int("max_steps", max_steps, low=1)
    batch_size = check_int("batch_size", batch_size, low=1)
    check_choice("optimizer", optimizer, OPTIMIZERS)
    lr = check_number("lr", lr, low=0, low_inclusive=False)
    momentum = check_number("momentum", momentum, low=0, high=1)
    weight_decay = check_number("weight_decay", weight_decay, low=0)
    poly_power = check_number("poly_power", poly_power, low=0)
    aux_weight = check_number("aux_weight", aux_weight, low=0)
    ignore_index = check_int("ignore_index", ignore_index)
    if grad_clip is not None:
        grad_clip = check_number("grad_clip", grad_clip, low=0, low_inclusive=False)
    num_workers = check_int("num_workers", num_workers, low=0)
    seed = check_int("seed", seed, low=0)
    checkpoint_every = check_int("checkpoint_every", checkpoint_every, low=0)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resume_from = _resolve_resume(resume, folder)
    mean, std = _normalization(model, normalization)

    ctx = init_distributed(device=device)
    if len(dataset) < batch_size * ctx.world_size:
        raise ValueError(
            f"the dataset has {len(dataset)} samples, fewer than batch_size={batch_size} x "
            f"{ctx.world_size} process(es); lower batch_size"
        )
    torch.manual_seed(seed + ctx.rank)
    use_amp = bool(amp) and ctx.device.type == "cuda"
    model.to(ctx.device)
    if aux_weight and callable(getattr(model, "forward_aux", None)) and getattr(
            model, "aux_head", None) is not None:
        model = _WithAux(model)
    if ctx.distributed:
        if sync_batchnorm and ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    groups = _parameter_groups(parameters if parameters is not None else model.parameters())
    params = [p for group in groups for p in group["params"]]
    if not params:
        raise ValueError("no parameter requires grad: nothing to train")
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(groups, lr=lr, momentum=momentum,
                                                     weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=lr, weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(0.0, 1.0 - min(s, max_steps) / max_steps) ** poly_power)
    settings = {"max_steps": max_steps, "batch_size": batch_size, "optimizer": optimizer,
                "lr": lr, "momentum": momentum, "weight_decay": weight_decay,
                "poly_power": poly_power, "seed": seed, "world_size": ctx.world_size,
                "mean": tuple(mean), "std": tuple(std)}
    trainer = _Trainer(model, opt, schedule, torch.amp.GradScaler("cuda", enabled=use_amp),
                       settings)
    step = trainer.restore(load_training_state(resume_from, ctx.device)) if resume_from else 0
    start_step = step
    loss_fn = loss_fn if loss_fn is not None else _default_loss(ignore_index)

    order = _TrainOrder(dataset, seed, ctx.rank, ctx.world_size)
    steps_per_epoch = len(order.order) // batch_size
    samples = _Samples(dataset)
    result = TrainResult(step=step, start_step=start_step)
    bar = _progress_bar(progress and ctx.is_main, max_steps, step)
    model.train()
    started = time.perf_counter()
    smoothed = None
    while step < max_steps:
        epoch, done = divmod(step, steps_per_epoch)
        order.start(epoch, skip=done * batch_size)
        # The loader's own generator keeps its worker-seed draw off torch's
        # global generator, whose state a checkpoint restores exactly.
        loader = DataLoader(samples, batch_size=batch_size, sampler=order, drop_last=True,
                            num_workers=num_workers, pin_memory=ctx.device.type == "cuda",
                            generator=torch.Generator().manual_seed(seed + epoch))
        for images, target, indices in loader:
            tick = time.perf_counter()
            images = images.to(ctx.device, non_blocking=True)
            target = target.to(ctx.device, non_blocking=True)
            inputs = normalize(images, mean, std)
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16,
                                enabled=use_amp):
                loss = _loss(_forward(model, inputs, images.float()), target, loss_fn,
                             aux_weight)
            mean_loss = _average(loss.detach(), ctx)
            if not math.isfinite(mean_loss):
                _stop_on_nonfinite(trainer, step, mean_loss, _files(dataset, indices),
                                   folder, ctx, lr)
            trainer.scaler.scale(loss).backward()
            if grad_clip is not None:
                trainer.scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            trainer.scaler.step(opt)
            trainer.scaler.update()
            current_lr = opt.param_groups[0]["lr"]
            schedule.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            result.history.append({"step": step, "loss": mean_loss, "lr": current_lr})
            smoothed = mean_loss if smoothed is None else 0.9 * smoothed + 0.1 * mean_loss
            if bar is not None:
                rate = batch_size * ctx.world_size / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{current_lr:.2e}",
                                img_s=f"{rate:.1f}")
                bar.update(1)
            if folder is not None and checkpoint_every and step % checkpoint_every == 0:
                _save_on_main(trainer, step, folder / "last.pt", ctx)
            if step >= max_steps:
                break
    if bar is not None:
        bar.close()
    if ctx.distributed:
        # Each process updated its BatchNorm statistics with its own last batch;
        # give every process rank 0's model, the one the checkpoint holds.
        for tensor in _unwrap(model).state_dict().values():
            dist.broadcast(tensor, src=0)
    result.seconds = time.perf_counter() - started
    result.step = step
    done_images = (step - start_step) * batch_size * ctx.world_size
    result.images_per_second = done_images / max(result.seconds, 1e-9)
    if folder is not None:
        result.checkpoint = _save_on_main(trainer, step, folder / "last.pt", ctx)
    return result


def _progress_bar(show: bool, total: int, initial: int) -> Any:
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", dynamic_ncols=True)


def _average(value: torch.Tensor, ctx: DistributedContext) -> float:
    """The mean of a scalar over processes (NaN anywhere makes it NaN everywhere)."""
    if ctx.distributed:
        value = value.float().clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= ctx.world_size
    return float(value)


def _save_on_main(trainer: _Trainer, step: int, path: Path, ctx: DistributedContext) -> Path:
    if ctx.is_main:
        _atomic_save(trainer.state(step), path)
    if ctx.distributed:
        dist.barrier()
    return path


def _stop_on_nonfinite(trainer: _Trainer, step: int, loss: float, files: list[str],
                       folder: Path | None, ctx: DistributedContext, lr: float) -> None:
    failing = step + 1
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="crfseg-nonfinite-")) if ctx.is_main else Path()
        if ctx.distributed:
            shared = [str(folder)]
            dist.broadcast_object_list(shared, src=0)
            folder = Path(shared[0])
    path = _save_on_main(trainer, step, folder / f"nonfinite-step-{failing}.pt", ctx)
    shown = ", ".join(files[:8]) + (" …" if len(files) > 8 else "")
    where = f" on rank {ctx.rank}" if ctx.distributed else ""
    raise NonFiniteLossError(
        f"the loss is {loss} at step {failing}{where}; batch: {shown}. The state before this "
        f"step was saved to {path}. Hint: lower the learning rate (lr={lr:g}), set grad_clip, "
        "check these files' labels, or train without AMP",
        failing, files, path,
    )


# ---------------------------------------------------------------- evaluation

@dataclass
class EvaluationReport:
    """Scores of the evaluated variants, side by side.

    Attributes
    ----------
    metrics : dict of str to SegmentationMetrics
        Keys among :data:`VARIANTS`: ``"cnn"`` always, ``"cnn+densecrf"`` when a
        DenseCRF was given, ``"end_to_end"`` for a CRF-wrapped network (given
        as ``model`` or as ``end_to_end``).
    class_names : list of str
    num_images : int
        Images scored (over all processes).
    seconds : dict of str to float
        Wall time spent in each variant's inference (this process).
    """

    metrics: dict[str, SegmentationMetrics]
    class_names: list[str]
    num_images: int = 0
    seconds: dict[str, float] = field(default_factory=dict)

    def mean_iou(self) -> dict[str, float]:
        """mIoU of each variant (0–1)."""
        return {k: float(m.compute()["mean_iou"]) for k, m in self.metrics.items()}

    def to_dict(self) -> dict[str, Any]:
        """Plain data for JSON: per variant the means, the per-class IoU (NaN for absent)
        and the confusion matrix (rows: ground truth, columns: prediction)."""
        out: dict[str, Any] = {"num_images": self.num_images, "variants": {}}
        for key, metrics in self.metrics.items():
            scores = metrics.compute()
            out["variants"][key] = {
                "title": VARIANTS[key],
                "mean_iou": scores["mean_iou"],
                "pixel_accuracy": scores["pixel_accuracy"],
                "mean_pixel_accuracy": scores["mean_pixel_accuracy"],
                "mean_dice": scores["mean_dice"],
                "iou": dict(zip(self.class_names, scores["iou"].tolist(), strict=True)),
                "confusion_matrix": scores["confusion_matrix"].tolist(),
                "seconds": self.seconds.get(key, 0.0),
            }
        return out

    def table(self) -> str:
        """Per-class IoU and the means (percent), one column per variant."""
        keys = list(self.metrics)
        scores = {k: self.metrics[k].compute() for k in keys}
        width = max(12, *(len(n) for n in self.class_names))
        columns = [max(16, len(VARIANTS[k])) for k in keys]

        def pct(value: float) -> str:
            return "-" if math.isnan(value) else f"{100 * value:.2f}"

        def row(name: str, values: list[str]) -> str:
            cells = "  ".join(f"{v:>{w}}" for v, w in zip(values, columns, strict=True))
            return f"{name:<{width}}  {cells}"

        lines = [row("IoU (%)", [VARIANTS[k] for k in keys])]
        for i, name in enumerate(self.class_names):
            lines.append(row(name, [pct(scores[k]["iou"][i]) for k in keys]))
        lines.append(row("mIoU", [pct(scores[k]["mean_iou"]) for k in keys]))
        lines.append(row("pixel accuracy", [pct(scores[k]["pixel_accuracy"]) for k in keys]))
        return "\n".join(lines)

    __str__ = table


def _refine_batch(crf: Any, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """DenseCRF labels of a batch: ``(N, H, W)`` int64 on the logits' device."""
    rgb = images.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    scores = logits.float().cpu().numpy()
    labels = [np.asarray(crf.predict(scores[i], rgb[i], input_type="logits"))
              for i in range(len(scores))]
    return torch.as_tensor(np.stack(labels), dtype=torch.int64, device=logits.device)


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    *,
    crf: Any = None,
    end_to_end: nn.Module | None = None,
    num_classes: int | None = None,
    class_names: Sequence[str] | None = None,
    ignore_index: int | None = None,
    batch_size: int = 1,
    device: str | torch.device | None = None,
    num_workers: int = 0,
    normalization: dict[str, Sequence[float]] | None = None,
    amp: bool = False,
    progress: bool = True,
) -> EvaluationReport:
    """Score a network on a dataset: CNN alone, + DenseCRF, and end to end.

    Parameters
    ----------
    model : nn.Module
        A network returning logits, or one wrapped by
        ``crfseg.models.with_crf`` (then the CNN inside it is scored alone and
        the whole model as ``"end_to_end"``).
    dataset : Dataset
        Yields ``(image (3, H, W) 0–255, target (H, W) int64)``.
    crf : crfseg.crf.DenseCRF, optional
        Post-processing scored as ``"cnn+densecrf"`` (on the CNN's logits and
        the unnormalised image).
    end_to_end : nn.Module, optional
        A network wrapped by ``crfseg.models.with_crf`` (typically ``model``
        fine-tuned end to end with a CRFasRNN layer), scored as
        ``"end_to_end"`` beside ``model``, which is then scored as it is (the
        comparison of the CRF-as-RNN paper: the CNN trained alone, with
        post-processing, and trained end to end).
    num_classes : int, optional
        Default ``dataset.num_classes``.
    class_names : sequence of str, optional
        Default ``dataset.classes``.
    ignore_index : int, optional
        Default ``dataset.ignore_index``, else 255.
    batch_size : int, default 1
        Images per forward pass (images of one batch must share a size).
    device : str or torch.device, optional
        Default ``cuda:<LOCAL_RANK>`` when available, else ``cpu``.
    num_workers : int, default 0
        Data-loading processes.
    normalization : dict, optional
        ``{"mean", "std"}``; default the model's, else ImageNet's.
    amp : bool, default False
        float16 autocast for the CNN on CUDA.
    progress : bool, default True
        Show a progress bar on rank 0.

    Returns
    -------
    EvaluationReport
        Under ``torchrun`` every process holds the scores of all images.

    Raises
    ------
    ValueError, TypeError
        For bad arguments, before any work; ValueError also when a label lies
        outside ``[0, num_classes)`` and is not ``ignore_index``.

    References
    ----------
    S. Zheng et al., "Conditional Random Fields as Recurrent Neural
    Networks", ICCV 2015 (the three variants compared).

    Examples
    --------
    >>> from crfseg.datasets import SyntheticShapes
    >>> data = SyntheticShapes(2, size=16, num_classes=3)
    >>> report = evaluate(torch.nn.Conv2d(3, 3, 1), data, progress=False)
    >>> list(report.metrics), report.num_images
    (['cnn'], 2)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if end_to_end is not None and _crf_parts(end_to_end) is None:
        raise TypeError(f"end_to_end must be a network wrapped by crfseg.models.with_crf "
                        f"(with .cnn and .crf), got {type(end_to_end).__name__}")
    if crf is not None and not callable(getattr(crf, "predict", None)):
        raise TypeError(f"crf must be a crfseg.crf.DenseCRF (with a predict method), got "
                        f"{type(crf).__name__}")
    if num_classes is None:
        num_classes = getattr(dataset, "num_classes", None)
        if num_classes is None:
            raise ValueError("num_classes is required when the dataset has no num_classes "
                             "attribute")
    num_classes = check_int("num_classes", num_classes, low=1)
    if class_names is None:
        class_names = getattr(dataset, "classes", None)
    if ignore_index is None:
        ignore_index = getattr(dataset, "ignore_index", 255)
    ignore_index = check_int("ignore_index", ignore_index)
    batch_size = check_int("batch_size", batch_size, low=1)
    num_workers = check_int("num_workers", num_workers, low=0)
    mean, std = _normalization(model, normalization)

    ctx = init_distributed(device=device)
    parts = _crf_parts(model) if end_to_end is None else None
    keys = ["cnn"] + (["cnn+densecrf"] if crf is not None else []) + (
        ["end_to_end"] if parts is not None or end_to_end is not None else [])
    metrics = {k: SegmentationMetrics(num_classes, ignore_index, class_names) for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    loader = DataLoader(_Samples(dataset), batch_size=batch_size,
                        sampler=_Shard(len(dataset), ctx.rank, ctx.world_size),
                        num_workers=num_workers, pin_memory=ctx.device.type == "cuda")
    networks = [model] if end_to_end is None else [model, end_to_end]
    was_training = [net.training for net in networks]
    for net in networks:
        net.to(ctx.device).eval()
    bar = _progress_bar(progress and ctx.is_main, len(loader), 0)
    count = 0
    use_amp = bool(amp) and ctx.device.type == "cuda"
    with torch.no_grad():
        for images, target, indices in loader:
            images = images.to(ctx.device, non_blocking=True).float()
            target = target.to(ctx.device, non_blocking=True)
            inputs = normalize(images, mean, std)
            tick = time.perf_counter()
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16,
                                enabled=use_amp):
                cnn = parts[0] if parts is not None else model
                logits = _resize_to(_logits(cnn(inputs)), target.shape[-2:]).float()
            if not bool(torch.isfinite(logits).all()):
                raise ValueError(
                    f"the model's logits are not finite (NaN or inf) for "
                    f"{', '.join(_files(dataset, indices))}; its weights may have diverged "
                    "(check the checkpoint's training loss)")
            metrics["cnn"].update(logits.argmax(1), target)
            seconds["cnn"] += time.perf_counter() - tick
            if crf is not None:
                tick = time.perf_counter()
                metrics["cnn+densecrf"].update(_refine_batch(crf, logits, images), target)
                seconds["cnn+densecrf"] += time.perf_counter() - tick
            if "end_to_end" in metrics:
                tick = time.perf_counter()
                refined = _logits(parts[1](logits, images) if parts is not None
                                  else end_to_end(inputs, images))
                metrics["end_to_end"].update(refined.argmax(1), target)
                seconds["end_to_end"] += time.perf_counter() - tick
            count += len(images)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    for net, mode in zip(networks, was_training, strict=True):
        net.train(mode)
    for m in metrics.values():
        m.sync()
    count = int(round(_average(torch.tensor(float(count), device=ctx.device), ctx)
                      * ctx.world_size))
    return EvaluationReport(metrics, list(metrics["cnn"].class_names), count, seconds)
