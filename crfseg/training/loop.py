"""The training loop: :func:`train` and what it returns or raises.

:func:`train` validates its settings (:class:`TrainSettings`), prepares the
model on this process's device (auxiliary head, SyncBatchNorm, DDP), builds
the optimiser and poly schedule, restores a checkpoint when resuming, and
then runs :class:`_Loop` until ``max_steps``.
"""

from __future__ import annotations

import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset

from crfseg._validation import check_choice, check_int, check_number
from crfseg.datasets.transforms import normalize
from crfseg.training.adapters import (
    LossFunction,
    WithAux,
    default_loss,
    forward,
    normalization_of,
    segmentation_loss,
    unwrap,
)
from crfseg.training.checkpoint import TrainingState, load_training_state
from crfseg.training.distributed import DistributedContext, average, init_distributed
from crfseg.training.sampling import IndexedSamples, TrainOrder, batch_files

__all__ = ["train", "TrainResult", "TrainSettings", "NonFiniteLossError", "OPTIMIZERS"]

OPTIMIZERS = ("sgd", "adamw")
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


@dataclass(frozen=True)
class TrainSettings:
    """The validated numeric settings of one :func:`train` run (see its parameters).

    Build one with :meth:`validated`, which checks every value and names the
    argument in its error.
    """

    max_steps: int
    batch_size: int = 8
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 1e-4
    poly_power: float = 0.9
    aux_weight: float = 0.4
    ignore_index: int = 255
    grad_clip: float | None = None
    amp: bool = True
    num_workers: int = 0
    seed: int = 0
    checkpoint_every: int = 0
    sync_batchnorm: bool = False
    progress: bool = True

    @classmethod
    def validated(cls, **settings: Any) -> TrainSettings:
        """Check every setting; raise ValueError/TypeError naming the first bad one.

        Examples
        --------
        >>> TrainSettings.validated(max_steps=10, lr=0.1).lr
        0.1
        """
        s = {**{f: getattr(cls, f) for f in cls.__dataclass_fields__ if hasattr(cls, f)},
             **settings}
        check_choice("optimizer", s["optimizer"], OPTIMIZERS)
        grad_clip = s["grad_clip"]
        if grad_clip is not None:
            grad_clip = check_number("grad_clip", grad_clip, low=0, low_inclusive=False)
        return cls(
            max_steps=check_int("max_steps", s["max_steps"], low=1),
            batch_size=check_int("batch_size", s["batch_size"], low=1),
            optimizer=s["optimizer"],
            lr=check_number("lr", s["lr"], low=0, low_inclusive=False),
            momentum=check_number("momentum", s["momentum"], low=0, high=1),
            weight_decay=check_number("weight_decay", s["weight_decay"], low=0),
            poly_power=check_number("poly_power", s["poly_power"], low=0),
            aux_weight=check_number("aux_weight", s["aux_weight"], low=0),
            ignore_index=check_int("ignore_index", s["ignore_index"]),
            grad_clip=grad_clip,
            amp=bool(s["amp"]),
            num_workers=check_int("num_workers", s["num_workers"], low=0),
            seed=check_int("seed", s["seed"], low=0),
            checkpoint_every=check_int("checkpoint_every", s["checkpoint_every"], low=0),
            sync_batchnorm=bool(s["sync_batchnorm"]),
            progress=bool(s["progress"]),
        )


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


def _prepare_model(model: nn.Module, settings: TrainSettings,
                   ctx: DistributedContext) -> nn.Module:
    """Move the model to the device; expose an auxiliary head; wrap it for DDP."""
    model.to(ctx.device)
    if settings.aux_weight and callable(getattr(model, "forward_aux", None)) and getattr(
            model, "aux_head", None) is not None:
        model = WithAux(model)
    if ctx.distributed:
        if settings.sync_batchnorm and ctx.device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
    return model


def _optimizer(groups: list[dict[str, Any]], settings: TrainSettings
               ) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """The optimiser and its poly schedule ``(1 - step / max_steps) ** poly_power``."""
    if settings.optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(
            groups, lr=settings.lr, momentum=settings.momentum,
            weight_decay=settings.weight_decay)
    else:
        opt = torch.optim.AdamW(groups, lr=settings.lr, weight_decay=settings.weight_decay)
    max_steps, power = settings.max_steps, settings.poly_power
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: max(0.0, 1.0 - min(s, max_steps) / max_steps) ** power)
    return opt, schedule


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
    settings = TrainSettings.validated(
        max_steps=max_steps, batch_size=batch_size, optimizer=optimizer, lr=lr,
        momentum=momentum, weight_decay=weight_decay, poly_power=poly_power,
        aux_weight=aux_weight, ignore_index=ignore_index, grad_clip=grad_clip, amp=amp,
        num_workers=num_workers, seed=seed, checkpoint_every=checkpoint_every,
        sync_batchnorm=sync_batchnorm, progress=progress)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    resume_from = _resolve_resume(resume, folder)
    mean, std = normalization_of(model, normalization)

    ctx = init_distributed(device=device)
    if len(dataset) < settings.batch_size * ctx.world_size:
        raise ValueError(
            f"the dataset has {len(dataset)} samples, fewer than batch_size="
            f"{settings.batch_size} x {ctx.world_size} process(es); lower batch_size"
        )
    torch.manual_seed(settings.seed + ctx.rank)
    model = _prepare_model(model, settings, ctx)
    groups = _parameter_groups(parameters if parameters is not None else model.parameters())
    if not any(group["params"] for group in groups):
        raise ValueError("no parameter requires grad: nothing to train")
    opt, schedule = _optimizer(groups, settings)
    use_amp = settings.amp and ctx.device.type == "cuda"
    recorded = {"max_steps": settings.max_steps, "batch_size": settings.batch_size,
                "optimizer": settings.optimizer, "lr": settings.lr,
                "momentum": settings.momentum, "weight_decay": settings.weight_decay,
                "poly_power": settings.poly_power, "seed": settings.seed,
                "world_size": ctx.world_size, "mean": tuple(mean), "std": tuple(std)}
    state = TrainingState(model, opt, schedule, torch.amp.GradScaler("cuda", enabled=use_amp),
                          recorded)
    step = state.restore(load_training_state(resume_from, ctx.device)) if resume_from else 0
    loop = _Loop(state, dataset, settings, ctx, folder,
                 loss_fn if loss_fn is not None else default_loss(settings.ignore_index),
                 (mean, std), use_amp)
    return loop.run(step)


@dataclass
class _Loop:
    """One run of the training loop over a prepared model, optimiser and data."""

    state: TrainingState
    dataset: Dataset
    settings: TrainSettings
    ctx: DistributedContext
    folder: Path | None
    loss_fn: LossFunction
    normalization: tuple[Sequence[float], Sequence[float]]
    use_amp: bool

    def batches(self, step: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The batches from ``step`` on, epoch after epoch, resuming mid-epoch exactly."""
        s = self.settings
        order = TrainOrder(self.dataset, s.seed, self.ctx.rank, self.ctx.world_size)
        steps_per_epoch = len(order.order) // s.batch_size
        samples = IndexedSamples(self.dataset)
        while True:
            epoch, done = divmod(step, steps_per_epoch)
            order.start(epoch, skip=done * s.batch_size)
            # The loader's own generator keeps its worker-seed draw off torch's
            # global generator, whose state a checkpoint restores exactly.
            loader = DataLoader(samples, batch_size=s.batch_size, sampler=order, drop_last=True,
                                num_workers=s.num_workers,
                                pin_memory=self.ctx.device.type == "cuda",
                                generator=torch.Generator().manual_seed(s.seed + epoch))
            for batch in loader:
                yield batch
                step += 1

    def step(self, step: int, images: torch.Tensor, target: torch.Tensor,
             indices: torch.Tensor) -> tuple[float, float]:
        """One optimiser step; returns the loss (mean over processes) and the learning rate."""
        state, device = self.state, self.ctx.device
        images = images.to(device, non_blocking=True)
        target = target.to(device, non_blocking=True)
        inputs = normalize(images, *self.normalization)
        with torch.autocast(device_type=device.type, dtype=torch.float16, enabled=self.use_amp):
            loss = segmentation_loss(forward(state.model, inputs, images.float()), target,
                                     self.loss_fn, self.settings.aux_weight)
        mean_loss = average(loss.detach(), self.ctx)
        if not math.isfinite(mean_loss):
            self.stop_on_nonfinite(step, mean_loss, batch_files(self.dataset, indices))
        state.scaler.scale(loss).backward()
        if self.settings.grad_clip is not None:
            state.scaler.unscale_(state.optimizer)
            params = [p for group in state.optimizer.param_groups for p in group["params"]]
            torch.nn.utils.clip_grad_norm_(params, self.settings.grad_clip)
        state.scaler.step(state.optimizer)
        state.scaler.update()
        lr = state.optimizer.param_groups[0]["lr"]
        state.scheduler.step()
        state.optimizer.zero_grad(set_to_none=True)
        return mean_loss, lr

    def run(self, step: int) -> TrainResult:
        """Train from ``step`` to ``max_steps``; checkpoint on the way and at the end."""
        s, ctx = self.settings, self.ctx
        result = TrainResult(step=step, start_step=step)
        bar = progress_bar(s.progress and ctx.is_main, s.max_steps, step, "train", "step")
        self.state.model.train()
        started = time.perf_counter()
        smoothed = None
        batches = self.batches(step)
        while step < s.max_steps:
            images, target, indices = next(batches)
            tick = time.perf_counter()
            loss, lr = self.step(step, images, target, indices)
            step += 1
            result.history.append({"step": step, "loss": loss, "lr": lr})
            smoothed = loss if smoothed is None else 0.9 * smoothed + 0.1 * loss
            if bar is not None:
                rate = s.batch_size * ctx.world_size / max(time.perf_counter() - tick, 1e-9)
                bar.set_postfix(loss=f"{smoothed:.4f}", lr=f"{lr:.2e}", img_s=f"{rate:.1f}")
                bar.update(1)
            if self.folder is not None and s.checkpoint_every and step % s.checkpoint_every == 0:
                self.save(step, self.folder / "last.pt")
        batches.close()
        if bar is not None:
            bar.close()
        if ctx.distributed:
            # Each process updated its BatchNorm statistics with its own last batch;
            # give every process rank 0's model, the one the checkpoint holds.
            for tensor in unwrap(self.state.model).state_dict().values():
                dist.broadcast(tensor, src=0)
        result.seconds = time.perf_counter() - started
        result.step = step
        done_images = (step - result.start_step) * s.batch_size * ctx.world_size
        result.images_per_second = done_images / max(result.seconds, 1e-9)
        if self.folder is not None:
            result.checkpoint = self.save(step, self.folder / "last.pt")
        return result

    def save(self, step: int, path: Path) -> Path:
        """Rank 0 writes the checkpoint; every process waits for it."""
        if self.ctx.is_main:
            self.state.save(step, path)
        if self.ctx.distributed:
            dist.barrier()
        return path

    def stop_on_nonfinite(self, step: int, loss: float, files: list[str]) -> None:
        """Save the state before the failing step, then raise :class:`NonFiniteLossError`."""
        ctx, folder = self.ctx, self.folder
        failing = step + 1
        if folder is None:
            folder = Path(tempfile.mkdtemp(prefix="crfseg-nonfinite-")) if ctx.is_main \
                else Path()
            if ctx.distributed:
                shared = [str(folder)]
                dist.broadcast_object_list(shared, src=0)
                folder = Path(shared[0])
        path = self.save(step, folder / f"nonfinite-step-{failing}.pt")
        shown = ", ".join(files[:8]) + (" …" if len(files) > 8 else "")
        where = f" on rank {ctx.rank}" if ctx.distributed else ""
        raise NonFiniteLossError(
            f"the loss is {loss} at step {failing}{where}; batch: {shown}. The state before "
            f"this step was saved to {path}. Hint: lower the learning rate "
            f"(lr={self.settings.lr:g}), set grad_clip, check these files' labels, or train "
            "without AMP",
            failing, files, path,
        )


def progress_bar(show: bool, total: int, initial: int, desc: str, unit: str) -> Any:
    """A tqdm bar, or None when ``show`` is false (not rank 0, or progress off)."""
    if not show:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc=desc, unit=unit, dynamic_ncols=True)
