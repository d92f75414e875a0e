"""Evaluation: the CNN alone, the CNN + DenseCRF post-processing and the end-to-end model.

Under ``torchrun`` the images are split between processes and the confusion
matrices summed with ``SegmentationMetrics.sync``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from crfseg._validation import check_int
from crfseg.datasets.transforms import normalize
from crfseg.metrics import SegmentationMetrics
from crfseg.training.adapters import crf_parts, logits_of, normalization_of, resize_to
from crfseg.training.distributed import average, init_distributed
from crfseg.training.loop import progress_bar
from crfseg.training.sampling import EvaluationShard, IndexedSamples, batch_files

__all__ = ["evaluate", "EvaluationReport", "VARIANTS", "refine_batch"]

#: Keys of :attr:`EvaluationReport.metrics` and the column titles of its table.
VARIANTS = {"cnn": "CNN", "cnn+densecrf": "CNN + DenseCRF", "end_to_end": "CNN + CRFasRNN"}


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


def refine_batch(crf: Any, logits: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
    """DenseCRF labels of a batch: ``(N, H, W)`` int64 on the logits' device.

    A DenseCRF with the torch backend refines the whole batch in one call,
    on its own device or else the logits' (the model's); the pydensecrf
    backend runs on the CPU, one image at a time.

    Parameters
    ----------
    crf : crfseg.crf.DenseCRF
    logits : (N, C, H, W) float Tensor
    images : (N, 3, H, W) float Tensor
        The unnormalised RGB images in 0–255 units.

    Returns
    -------
    labels : (N, H, W) int64 Tensor
        On the logits' device.

    Examples
    --------
    >>> from crfseg.crf import DenseCRF
    >>> crf = DenseCRF(n_iter=1, backend="torch", device="cpu")
    >>> refine_batch(crf, torch.randn(2, 3, 8, 8), torch.rand(2, 3, 8, 8) * 255).shape
    torch.Size([2, 8, 8])
    """
    if getattr(crf, "backend", None) == "torch":
        labels = crf.predict(logits, images, input_type="logits")
        return labels.to(device=logits.device, dtype=torch.int64)
    rgb = images.permute(0, 2, 3, 1).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    scores = logits.float().cpu().numpy()
    labels = [np.asarray(crf.predict(scores[i], rgb[i], input_type="logits"))
              for i in range(len(scores))]
    return torch.as_tensor(np.stack(labels), dtype=torch.int64, device=logits.device)


def _check_networks(model: Any, crf: Any, end_to_end: Any) -> None:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if end_to_end is not None and crf_parts(end_to_end) is None:
        raise TypeError(f"end_to_end must be a network wrapped by crfseg.models.with_crf "
                        f"(with .cnn and .crf), got {type(end_to_end).__name__}")
    if crf is not None and not callable(getattr(crf, "predict", None)):
        raise TypeError(f"crf must be a crfseg.crf.DenseCRF (with a predict method), got "
                        f"{type(crf).__name__}")


def _dataset_labels(dataset: Any, num_classes: int | None,
                    ignore_index: int | None) -> tuple[int, int]:
    """``num_classes`` and ``ignore_index``: the arguments, else the dataset's."""
    if num_classes is None:
        num_classes = getattr(dataset, "num_classes", None)
        if num_classes is None:
            raise ValueError("num_classes is required when the dataset has no num_classes "
                             "attribute")
    num_classes = check_int("num_classes", num_classes, low=1)
    if ignore_index is None:
        ignore_index = getattr(dataset, "ignore_index", 255)
    return num_classes, check_int("ignore_index", ignore_index)


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
        the unnormalised image).  With ``backend="torch"`` each batch is
        refined in one call on the model's device (or the CRF's ``device``);
        the pydensecrf backend refines image by image on the CPU.
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
    _check_networks(model, crf, end_to_end)
    num_classes, ignore_index = _dataset_labels(dataset, num_classes, ignore_index)
    if class_names is None:
        class_names = getattr(dataset, "classes", None)
    batch_size = check_int("batch_size", batch_size, low=1)
    num_workers = check_int("num_workers", num_workers, low=0)
    mean, std = normalization_of(model, normalization)

    ctx = init_distributed(device=device)
    parts = crf_parts(model) if end_to_end is None else None
    keys = ["cnn"] + (["cnn+densecrf"] if crf is not None else []) + (
        ["end_to_end"] if parts is not None or end_to_end is not None else [])
    metrics = {k: SegmentationMetrics(num_classes, ignore_index, class_names) for k in keys}
    seconds = dict.fromkeys(keys, 0.0)
    loader = DataLoader(IndexedSamples(dataset), batch_size=batch_size,
                        sampler=EvaluationShard(len(dataset), ctx.rank, ctx.world_size),
                        num_workers=num_workers, pin_memory=ctx.device.type == "cuda")
    networks = [model] if end_to_end is None else [model, end_to_end]
    was_training = [net.training for net in networks]
    for net in networks:
        net.to(ctx.device).eval()
    cnn = parts[0] if parts is not None else model
    bar = progress_bar(progress and ctx.is_main, len(loader), 0, "evaluate", "batch")
    count = 0
    use_amp = bool(amp) and ctx.device.type == "cuda"

    def timed(key: str, labels: Any, target: torch.Tensor, tick: float) -> None:
        metrics[key].update(labels, target)
        seconds[key] += time.perf_counter() - tick

    with torch.no_grad():
        for images, target, indices in loader:
            images = images.to(ctx.device, non_blocking=True).float()
            target = target.to(ctx.device, non_blocking=True)
            inputs = normalize(images, mean, std)
            tick = time.perf_counter()
            with torch.autocast(device_type=ctx.device.type, dtype=torch.float16,
                                enabled=use_amp):
                logits = resize_to(logits_of(cnn(inputs)), target.shape[-2:]).float()
            if not bool(torch.isfinite(logits).all()):
                raise ValueError(
                    f"the model's logits are not finite (NaN or inf) for "
                    f"{', '.join(batch_files(dataset, indices))}; its weights may have "
                    "diverged (check the checkpoint's training loss)")
            timed("cnn", logits.argmax(1), target, tick)
            if crf is not None:
                tick = time.perf_counter()
                timed("cnn+densecrf", refine_batch(crf, logits, images), target, tick)
            if "end_to_end" in metrics:
                tick = time.perf_counter()
                refined = logits_of(parts[1](logits, images) if parts is not None
                                    else end_to_end(inputs, images))
                timed("end_to_end", refined.argmax(1), target, tick)
            count += len(images)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    for net, mode in zip(networks, was_training, strict=True):
        net.train(mode)
    for m in metrics.values():
        m.sync()
    count = int(round(average(torch.tensor(float(count), device=ctx.device), ctx)
                      * ctx.world_size))
    return EvaluationReport(metrics, list(metrics["cnn"].class_names), count, seconds)
