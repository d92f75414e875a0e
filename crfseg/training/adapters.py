"""How the loops talk to a network: its input normalisation, logits, CRF parts and loss.

A network maps normalised images to logits ``(N, C, H, W)`` (or torchvision's
dict with ``"out"`` and ``"aux"``); one wrapped by ``crfseg.models.with_crf``
also takes the 0–255 RGB images, which stay unnormalised for the CRF.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crfseg.datasets.transforms import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "LossFunction",
    "WithAux",
    "crf_parts",
    "default_loss",
    "forward",
    "logits_of",
    "normalization_of",
    "resize_to",
    "segmentation_loss",
    "unwrap",
]

LossFunction = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class WithAux(nn.Module):
    """Present a crfseg model's auxiliary head (``forward_aux``) as the
    ``{"out", "aux"}`` dict the loss reads, so DDP sees one forward call."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"out": logits, "aux": auxiliary logits}``."""
        out, aux = self.model.forward_aux(x)
        return {"out": out, "aux": aux}


def unwrap(model: nn.Module) -> nn.Module:
    """The user's model inside DDP and the auxiliary-output adapter."""
    while isinstance(model, (nn.parallel.DistributedDataParallel, WithAux)):
        model = model.module if isinstance(model, nn.parallel.DistributedDataParallel) \
            else model.model
    return model


def crf_parts(model: nn.Module) -> tuple[nn.Module, nn.Module] | None:
    """``(cnn, crf)`` of a network wrapped by ``crfseg.models.with_crf``, else None."""
    core = unwrap(model)
    cnn, crf = getattr(core, "cnn", None), getattr(core, "crf", None)
    if isinstance(cnn, nn.Module) and isinstance(crf, nn.Module):
        return cnn, crf
    return None


def logits_of(output: Any) -> torch.Tensor:
    """The logits of a network's output: a tensor, or torchvision's dict's ``"out"``."""
    if isinstance(output, dict):
        output = output["out"]
    if not isinstance(output, torch.Tensor) or output.ndim != 4:
        shape = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output).__name__
        raise ValueError(f"the model must return logits (N, C, H, W) or a dict with 'out', "
                         f"got {shape}")
    return output


def resize_to(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """``logits`` resized bilinearly to ``size`` ``(H, W)`` (unchanged when it fits)."""
    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    return F.interpolate(logits, size=tuple(size), mode="bilinear", align_corners=False)


def normalization_of(model: nn.Module, normalization: dict[str, Sequence[float]] | None
                     ) -> tuple[Sequence[float], Sequence[float]]:
    """Mean and std: the argument, else the model's ``normalization``, else ImageNet's."""
    if normalization is None:
        parts = crf_parts(model)
        core = parts[0] if parts else unwrap(model)
        normalization = getattr(core, "normalization", None) or getattr(
            unwrap(model), "normalization", None)
    if normalization is None:
        return IMAGENET_MEAN, IMAGENET_STD
    if not isinstance(normalization, dict) or set(normalization) != {"mean", "std"}:
        raise ValueError(f"normalization must be a dict with keys 'mean' and 'std', "
                         f"got {normalization!r}")
    return normalization["mean"], normalization["std"]


def forward(model: nn.Module, inputs: torch.Tensor, images: torch.Tensor) -> Any:
    """Run the model; a CRF-wrapped one also gets the 0–255 RGB images."""
    if crf_parts(model) is not None:
        return model(inputs, images)
    return model(inputs)


def segmentation_loss(output: Any, target: torch.Tensor, loss_fn: LossFunction,
                      aux_weight: float) -> torch.Tensor:
    """Loss of the main output (plus ``aux_weight`` times an auxiliary head's, if any).

    Non-finite logits give a NaN loss here rather than an error inside
    ``loss_fn``, so training stops through the one non-finite-loss path.
    """
    logits = logits_of(output)
    if not bool(torch.isfinite(logits).all()):
        return logits.new_tensor(float("nan"), dtype=torch.float32)
    loss = loss_fn(resize_to(logits, target.shape[-2:]).float(), target)
    if isinstance(output, dict) and output.get("aux") is not None and aux_weight:
        loss = loss + aux_weight * loss_fn(resize_to(output["aux"], target.shape[-2:]).float(),
                                           target)
    return loss


def default_loss(ignore_index: int) -> LossFunction:
    """Cross-entropy leaving out ``ignore_index``."""
    from crfseg.losses import cross_entropy

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return cross_entropy(logits, target, ignore_index=ignore_index)

    return loss_fn
