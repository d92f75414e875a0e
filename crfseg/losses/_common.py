"""Input checks and the pieces every loss shares: masking, region sums, reductions.

The rules written here hold for every loss in :mod:`crfseg.losses`:

* pixels whose target equals ``ignore_index`` are masked out of every sum, so
  they contribute nothing to the value and receive exactly zero gradient;
* divisions whose denominator can be zero (a fully ignored batch, a class that
  is absent) go through :func:`safe_div`, so neither the value nor the gradient
  is ever NaN;
* a mean over an empty set (no valid pixel, no class to score) is 0.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from crfseg._validation import (
    check_choice,
    check_finite,
    check_floating_dtype,
    check_int,
    check_integer_dtype,
    check_ndim,
    check_number,
    is_tensor,
    shape_of,
)

REDUCTIONS = ("mean", "sum", "none")


def check_tensor(name: str, x: Any) -> None:
    """Require a ``torch.Tensor``."""
    if not is_tensor(x):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")


def check_reduction(reduction: Any) -> str:
    """Require one of ``"mean"``, ``"sum"``, ``"none"``."""
    check_choice("reduction", reduction, REDUCTIONS)
    return reduction


def check_fraction(name: str, value: Any) -> float:
    """Require a real number in ``[0, 1]``."""
    return check_number(name, value, low=0.0, high=1.0)


def check_positive(name: str, value: Any) -> float:
    """Require a real number ``> 0``."""
    return check_number(name, value, low=0.0, low_inclusive=False)


def check_nonnegative(name: str, value: Any) -> float:
    """Require a real number ``>= 0``."""
    return check_number(name, value, low=0.0)


def check_class_vector(name: str, values: Any, *, high: float | None = None) -> Tensor | None:
    """Validate per-class values (weights, alphas): 1-D, finite, ``>= 0`` (and ``<= high``).

    Returns a tensor on the device it came from (CPU for sequences and numpy
    arrays), or None when ``values`` is None.  The length is checked against
    the number of classes later, by :func:`match_classes`.
    """
    if values is None:
        return None
    if is_tensor(values):
        vector = values.detach()
    else:
        try:
            vector = torch.as_tensor(np.asarray(values, dtype=np.float64))
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must be a 1-D sequence, numpy array or tensor of numbers, "
                f"got {type(values).__name__}"
            ) from exc
    check_ndim(name, vector, 1, "a 1-D vector with one value per class")
    if not vector.is_floating_point():
        vector = vector.to(torch.float64)
    check_finite(name, vector)
    if vector.numel():
        low, top = float(vector.min()), float(vector.max())
        if low < 0:
            raise ValueError(f"{name} must be >= 0 for every class, got a minimum of {low}")
        if high is not None and top > high:
            raise ValueError(
                f"{name} must be <= {high} for every class, got a maximum of {top}"
            )
    return vector


def match_classes(
    name: str, vector: Tensor | None, num_classes: int, like: Tensor
) -> Tensor | None:
    """Check that a per-class vector has ``num_classes`` entries; move it to ``like``."""
    if vector is None:
        return None
    if vector.numel() != num_classes:
        raise ValueError(
            f"{name} must have one value per class: {num_classes} values for logits "
            f"with C={num_classes}, got {vector.numel()}"
        )
    return vector.to(device=like.device, dtype=like.dtype)


def check_logits_target(
    logits: Any, target: Any, ignore_index: Any
) -> tuple[Tensor, Tensor, Tensor]:
    """Validate ``logits (N, C, H, W)`` against ``target (N, H, W)``.

    Returns
    -------
    logits : (N, C, H, W) Tensor
        The logits; float16 and bfloat16 are promoted to float32 (the dtype
        autocast computes losses in).
    valid : (N, H, W) bool Tensor
        True where the target is not ``ignore_index``.
    labels : (N, H, W) int64 Tensor
        The target with ignored pixels set to class 0 (safe to index with;
        always used together with ``valid``).
    """
    check_tensor("logits", logits)
    check_ndim("logits", logits, 4, "a 4-D tensor (N, C, H, W)")
    check_floating_dtype("logits", logits)
    n, c, h, w = shape_of(logits)
    if c < 2:
        raise ValueError(
            f"logits must have at least 2 classes along dim 1, got C={c}; "
            "for a binary problem give two channels (background, foreground)"
        )
    check_tensor("target", target)
    check_integer_dtype("target", target)
    if shape_of(target) != (n, h, w):
        raise ValueError(
            f"target must have shape (N, H, W) = {(n, h, w)} to match logits of shape "
            f"{shape_of(logits)}, got {shape_of(target)}"
        )
    if target.device != logits.device:
        raise ValueError(
            f"target must be on the device of logits ({logits.device}), got {target.device}"
        )
    ignore_index = check_int("ignore_index", ignore_index)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    valid = target != ignore_index
    labels = torch.where(valid, target.long(), 0)
    # One host sync for both checks, and no full-size temporary: the sum of the logits is
    # not finite when any logit is not (at a tenth of the cost of isfinite), and the labels
    # are in range when their minimum and maximum are.  The exact counts are only taken to
    # word the error.
    low, high = labels.aminmax()
    logit_sum, low, high = torch.stack(
        [logits.detach().sum().double(), low.double(), high.double()]).tolist()
    if not math.isfinite(logit_sum):
        check_finite("logits", logits)
    if low < 0 or high >= c:
        check_label_range("target", target, valid, c, ignore_index)
    return logits, valid, labels


def check_label_range(
    name: str, target: Tensor, valid: Tensor, num_classes: int, ignore_index: int
) -> None:
    """Require every non-ignored label in ``[0, num_classes)``; one host sync."""
    bad = valid & ((target < 0) | (target >= num_classes))
    count = int(bad.sum())
    if count:
        example = int(target[bad][0])
        raise ValueError(
            f"{name} must hold class indices in [0, {num_classes}) or "
            f"ignore_index={ignore_index}; {count} pixel(s) are outside, e.g. {example}"
        )


def check_maps(name: str, maps: Any, shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Validate precomputed distance maps of a given shape; cast them to ``like``."""
    check_tensor(name, maps)
    check_floating_dtype(name, maps)
    if shape_of(maps) != shape:
        raise ValueError(
            f"{name} must have shape {shape} to match logits of shape {shape_of(like)}, "
            f"got {shape_of(maps)}"
        )
    if maps.device != like.device:
        raise ValueError(f"{name} must be on the device of logits ({like.device}), "
                         f"got {maps.device}")
    check_finite(name, maps)
    return maps.to(like.dtype)


def safe_div(num: Tensor, den: Tensor) -> Tensor:
    """``num / den`` with a zero denominator replaced by 1.

    Every caller divides a sum that is itself zero when its denominator is
    zero, so the result is 0 there; replacing the denominator (rather than
    masking the quotient) keeps the backward pass free of ``0 / 0``.
    """
    return num / torch.where(den != 0, den, torch.ones_like(den))


def safe_pow(base: Tensor, exponent: float) -> Tensor:
    """``base ** exponent`` for ``base >= 0``, with value and gradient 0 at ``base == 0``.

    For ``0 < exponent < 1`` the derivative is infinite at 0; a perfect
    prediction must still give a finite (zero) gradient.  From 1 on the plain
    power is already finite there.
    """
    if exponent >= 1:
        return base**exponent
    positive = base > 0
    safe = torch.where(positive, base, torch.ones_like(base))
    return torch.where(positive, safe**exponent, torch.zeros_like(base))


def masked_probs(logits: Tensor, valid: Tensor) -> Tensor:
    """Softmax over classes, zero at ignored pixels: ``(N, C, H, W)``."""
    return torch.softmax(logits, dim=1).masked_fill(~valid[:, None], 0.0)


def one_hot(labels: Tensor, valid: Tensor, like: Tensor) -> Tensor:
    """One-hot target ``(N, C, H, W)`` in the dtype of ``like``, zero at ignored pixels."""
    out = torch.zeros_like(like).scatter_(1, labels[:, None], 1.0)
    return out.masked_fill_(~valid[:, None], 0.0)


class _SoftmaxRegionSums(torch.autograd.Function):
    """Softmax of the logits and its region sums, with a fused backward pass.

    Returns ``tp (N, C)`` and ``sum_p (N, C)`` (``sum p**2`` with ``squared``)
    over the pixels of weight 1.  Autograd through softmax, gather, scatter and
    a matrix product would allocate four ``(N, C, H, W)`` tensors in backward;
    writing the gradient of the logits directly needs one.  With ``G`` the
    gradient with respect to ``p``, the softmax backward is
    ``p * (G - sum_c p_c G_c)``, and ``G`` is zero at pixels of weight 0.
    """

    @staticmethod
    def forward(ctx, logits, index, weight, squared):  # noqa: D102 (documented above)
        n, c = logits.shape[:2]
        probs = torch.softmax(logits, dim=1).reshape(n, c, -1)
        mass = probs * probs if squared else probs
        sum_p = torch.bmm(mass, weight[..., None])[..., 0]
        p_true = probs.gather(1, index[:, None])[:, 0]
        tp = probs.new_zeros(n, c).scatter_add_(1, index, p_true * weight)
        ctx.save_for_backward(probs, index, weight, p_true)
        ctx.squared = squared
        ctx.logits_shape = logits.shape
        return tp, sum_p

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_tp, grad_sum_p):  # noqa: D102
        probs, index, weight, p_true = ctx.saved_tensors
        # G[n, c, i] = w_i (a[n, c, i] + [c == t_i] grad_tp[n, c]), a = grad_sum_p (x 2p if squared)
        true_grad = grad_tp.gather(1, index) * weight  # (N, HW): G at the true class, minus a
        if ctx.squared:
            grad = probs * (2.0 * grad_sum_p[..., None]) * weight[:, None]
            dot = (grad * probs).sum(1)
        else:
            grad = grad_sum_p[..., None] * weight[:, None]
            dot = torch.bmm(grad_sum_p[:, None], probs)[:, 0] * weight
        dot = dot + p_true * true_grad  # sum_c p_c G_c
        grad.sub_(dot[:, None]).scatter_add_(1, index[:, None], true_grad[:, None])
        grad.mul_(probs)
        return grad.reshape(ctx.logits_shape), None, None, None


class _BinaryCrossEntropySum(torch.autograd.Function):
    """Per pixel ``-[beta log p_t + (1 - beta) sum_{c != t} log(1 - p_c)]`` on the softmax.

    ``1 - p`` is capped below at ``eps`` so that a saturated wrong class costs a
    large finite amount (its gradient is then 0); ``log p_t`` is taken from the
    logits, exact even when ``p_t`` underflows.  With ``r_c = p_c / (1 - p_c)``
    (0 where capped) and ``S = sum_{c != t} r_c``, the gradient of the logit
    ``k`` is ``-[p_k ((1 - beta) S - beta) - (1 - beta) r_k + [k == t] (beta +
    (1 - beta) r_t)]``, written into one ``(N, C, H, W)`` tensor in backward where
    autograd through the elementwise steps would allocate several.
    """

    @staticmethod
    def forward(ctx, logits, index, weight, beta):  # noqa: D102 (documented above)
        n, c = logits.shape[:2]
        flat = logits.reshape(n, c, -1)
        top = flat.amax(1, keepdim=True)
        probs = (flat - top).exp_()
        total = probs.sum(1, keepdim=True)
        probs.div_(total)
        log_p_true = (flat.gather(1, index[:, None]) - top - total.log())[:, 0]
        log_q = (1.0 - probs).clamp_(min=torch.finfo(probs.dtype).eps).log_()
        others = log_q.sum(1) - log_q.gather(1, index[:, None])[:, 0]
        ctx.save_for_backward(probs, index, weight)
        ctx.beta = beta
        ctx.logits_shape = logits.shape
        return -(beta * log_p_true + (1.0 - beta) * others) * weight

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):  # noqa: D102
        probs, index, weight = ctx.saved_tensors
        beta = ctx.beta
        eps = torch.finfo(probs.dtype).eps
        ratio = 1.0 - probs
        kept = ratio > eps
        ratio.clamp_(min=eps).reciprocal_().mul_(probs).mul_(kept)
        ratio_true = ratio.gather(1, index[:, None])[:, 0]
        others = ratio.sum(1) - ratio_true
        grad = ratio.mul_(beta - 1.0)
        grad.addcmul_(probs, ((1.0 - beta) * others - beta)[:, None])
        grad.scatter_add_(1, index[:, None], (beta + (1.0 - beta) * ratio_true)[:, None])
        grad.mul_((-grad_out * weight)[:, None])
        return grad.reshape(ctx.logits_shape), None, None, None


def binary_ce_sum(logits: Tensor, index: Tensor, weight: Tensor, beta: float) -> Tensor:
    """Per-class binary CE of the softmax summed over classes: ``(N, H*W)``, 0 where weight is 0.

    ``index`` and ``weight`` are the labels and the valid mask as ``(N, H*W)``.
    """
    return _BinaryCrossEntropySum.apply(logits, index, weight, beta)


def region_sums(
    logits: Tensor, labels: Tensor, valid: Tensor, per_image: bool, squared: bool = False
) -> tuple[Tensor, Tensor, Tensor]:
    """Soft true positives, predicted mass and target mass per class, over valid pixels.

    ``p`` is the softmax of ``logits (N, C, H, W)``; returns ``(tp, sum_p,
    sum_g)``, each ``(C,)`` (summed over the batch) or ``(N, C)`` with
    ``per_image``.  ``squared`` sums ``p**2`` instead of ``p`` (the V-Net
    denominator; ``g**2 == g``).  No one-hot tensor is built.
    """
    n, c = logits.shape[:2]
    weight = valid.reshape(n, -1).to(logits.dtype)
    index = labels.reshape(n, -1)
    tp, sum_p = _SoftmaxRegionSums.apply(logits, index, weight, squared)
    sum_g = weight.new_zeros(n, c).scatter_add_(1, index, weight)
    if per_image:
        return tp, sum_p, sum_g
    return tp.sum(0), sum_p.sum(0), sum_g.sum(0)


def scored_classes(sum_g: Tensor, denominator: Tensor, include_absent: bool) -> Tensor:
    """Which classes enter the mean: present in the target, or all with ``include_absent``.

    With ``include_absent`` a class still stays out when its denominator is 0
    (nothing predicted and nothing to find: a fully ignored image).
    """
    if include_absent:
        return denominator > 0
    return sum_g > 0


def reduce_pixels(loss: Tensor, weight: Tensor, reduction: str) -> Tensor:
    """Reduce a per-pixel loss ``(N, H, W)`` that is 0 at ignored pixels.

    ``"mean"`` divides by ``weight.sum()`` (the number of valid pixels, or the
    sum of the class weights of valid pixels); an empty batch gives 0.
    """
    if reduction == "none":
        return loss
    total = loss.sum()
    if reduction == "sum":
        return total
    return safe_div(total, weight.sum().to(total.dtype))


def reduce_classes(values: Tensor, include: Tensor, reduction: str) -> Tensor:
    """Reduce per-class losses ``(C,)`` or ``(N, C)`` over the classes in ``include``.

    ``"none"`` returns ``values`` with NaN where a class is left out;
    ``"sum"`` sums the included entries; ``"mean"`` averages over included
    classes, and with ``(N, C)`` then over the images that have at least one.
    """
    if reduction == "none":
        return values.masked_fill(~include, math.nan)
    kept = values.masked_fill(~include, 0.0)
    if reduction == "sum":
        return kept.sum()
    count = include.sum(-1)
    per_row = safe_div(kept.sum(-1), count.to(kept.dtype))
    if per_row.ndim == 0:
        return per_row
    return safe_div(per_row.sum(), (count > 0).sum().to(kept.dtype))
