"""Fit DenseCRF parameters to labelled data: :func:`tune_dense_crf` and :class:`DenseCRFParams`.

The defaults of :class:`~crfseg.crf.DenseCRF` are the values tuned for PASCAL
VOC; on other data (street scenes, a weaker CNN) they can make things worse.
``tune_dense_crf`` searches the kernels' standard deviations and weights, the
number of mean-field iterations and a scale on the unary (a temperature of the
CNN's scores) for the best mean IoU on a validation set, and never recommends
parameters that score below the CNN alone.  With ``per_class=True`` a second
stage then fits one factor per class on each kernel's Potts weight (a
label-dependent compatibility, as Krähenbühl and Koltun learn theirs), so that
the smoothing can be strong for the classes it helps and weak or absent for
those it hurts.  With ``class_bias=True`` a first stage fits one offset per
class on the log-probabilities (:func:`fit_class_bias`), which recalibrates
the class priors of a CNN before any smoothing, and the CRF is then searched
on the biased scores.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

from crfseg._validation import (
    check_array,
    check_bool,
    check_choice,
    check_int,
    check_integer_dtype,
    check_number,
    is_tensor,
    shape_of,
    to_numpy,
)
from crfseg.crf.dense import INPUT_TYPES, DenseCRF, scores_to_unary
from crfseg.metrics import confusion_matrix, iou, mean_iou

__all__ = ["DenseCRFParams", "TuneResult", "tune_dense_crf", "fit_class_bias", "SEARCH_SPACE",
           "N_ITER_CHOICES", "CLASS_FACTORS", "CLASS_BIASES"]

#: Log-uniform search ranges ``(low, high)`` of the continuous parameters.
SEARCH_SPACE: dict[str, tuple[float, float]] = {
    "gaussian_sxy": (1.0, 10.0),
    "gaussian_compat": (0.3, 10.0),
    "bilateral_sxy": (5.0, 120.0),
    "bilateral_srgb": (2.0, 30.0),
    "bilateral_compat": (0.3, 15.0),
    "unary_scale": (0.5, 4.0),
}
#: The numbers of mean-field iterations the search tries.
N_ITER_CHOICES = (1, 2, 3, 5, 10)
#: The factors on one class's Potts weight that the per-class stage tries.
CLASS_FACTORS = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
#: The offsets on one class's log-probability that the class-bias fit tries.
CLASS_BIASES = (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0)
#: The kernels whose Potts weights the per-class stage fits, in the order it fits them.
KERNELS = ("bilateral", "gaussian")
CRF_KINDS = ("dense", "none")


@dataclass(frozen=True)
class DenseCRFParams:
    """DenseCRF settings plus a unary scale, as :func:`tune_dense_crf` finds them.

    Parameters
    ----------
    crf : {"dense", "none"}, default "dense"
        ``"none"``: no CRF helps; :meth:`refine` returns the scores' own
        probabilities.
    n_iter, gaussian_sxy, gaussian_compat, bilateral_sxy, bilateral_srgb, bilateral_compat
        As in :class:`~crfseg.crf.DenseCRF` (defaults: 5, 3, 3, 80, 13, 10).
    unary_scale : float, default 1
        The unary ``-log p`` is multiplied by it before inference (a scale of
        ``s`` on logits is a softmax temperature of ``1/s``).
    gaussian_class_factors, bilateral_class_factors : (C,) sequence of float, optional
        One factor ``>= 0`` per class on the kernel's Potts weight: class
        ``l``'s weight is ``gaussian_compat * gaussian_class_factors[l]``
        (likewise bilateral); 0 leaves the class to the unary alone.  None:
        every class has the scalar weight.
    class_bias : (C,) sequence of float, optional
        One offset per class added to the log-probabilities before anything
        else: the unary becomes ``unary_scale · (-log p - class_bias)``, so
        that with no CRF the label is ``argmax(log p + class_bias)``.  It
        recalibrates the class priors of a CNN trained on other class
        frequencies, or by a loss that is not the metric (``crfseg tune
        --class-bias`` fits it for the best mean IoU).  None: no offset.

    The per-class vectors, when given, all have ``C`` entries, and
    :meth:`refine` requires scores with ``C`` classes.

    Examples
    --------
    >>> params = DenseCRFParams(bilateral_sxy=20, bilateral_srgb=3, bilateral_compat=3)
    >>> rng = np.random.default_rng(0)
    >>> probs = params.refine(rng.normal(size=(3, 8, 9)).astype(np.float32),
    ...                       rng.integers(0, 256, (8, 9, 3), dtype=np.uint8))
    >>> probs.shape
    (3, 8, 9)
    """

    crf: str = "dense"
    n_iter: int = 5
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 80.0
    bilateral_srgb: float = 13.0
    bilateral_compat: float = 10.0
    unary_scale: float = 1.0
    gaussian_class_factors: tuple[float, ...] | None = None
    bilateral_class_factors: tuple[float, ...] | None = None
    class_bias: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        check_choice("crf", self.crf, CRF_KINDS)
        object.__setattr__(self, "n_iter", check_int("n_iter", self.n_iter, low=0))
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb", "unary_scale"):
            value = check_number(name, getattr(self, name), low=0, low_inclusive=False)
            object.__setattr__(self, name, float(value))
        for name in ("gaussian_compat", "bilateral_compat"):
            object.__setattr__(self, name, float(check_number(name, getattr(self, name), low=0)))
        from crfseg.io import CRF_PARAMS_CLASS_KEYS, _check_class_factors, _check_same_classes

        vectors = {}
        for name in CRF_PARAMS_CLASS_KEYS:
            if getattr(self, name) is not None:
                vectors[name] = _check_class_factors(name, getattr(self, name),
                                                     signed=name == "class_bias")
                object.__setattr__(self, name, vectors[name])
        _check_same_classes(vectors)

    @property
    def num_classes(self) -> int | None:
        """``C`` of the per-class factors and bias (None when there are none)."""
        from crfseg.io import CRF_PARAMS_CLASS_KEYS

        for name in CRF_PARAMS_CLASS_KEYS:
            if getattr(self, name) is not None:
                return len(getattr(self, name))
        return None

    def _unbias(self, unary: Any, axis: int) -> Any:
        """``unary - class_bias`` along the class ``axis`` (``unary`` itself without a bias)."""
        if self.class_bias is None:
            return unary
        shape = (-1,) + (1,) * (unary.ndim - axis - 1)
        if is_tensor(unary):
            bias = torch.tensor(self.class_bias, dtype=unary.dtype, device=unary.device)
        else:
            bias = np.asarray(self.class_bias, dtype=unary.dtype)
        return unary - bias.reshape(shape)

    def compat(self, kernel: str) -> float | np.ndarray:
        """A kernel's Potts weight: a number, or ``(C,)`` with its per-class factors applied.

        Parameters
        ----------
        kernel : {"gaussian", "bilateral"}

        Returns
        -------
        float or (C,) float64 ndarray
            What :class:`~crfseg.crf.DenseCRF` takes as ``<kernel>_compat``.
        """
        check_choice("kernel", kernel, KERNELS)
        weight = getattr(self, f"{kernel}_compat")
        factors = getattr(self, f"{kernel}_class_factors")
        return weight if factors is None else weight * np.asarray(factors, dtype=np.float64)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseCRFParams:
        """Parameters from a dict with the fields' names (unknown keys are rejected)."""
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict, got {type(data).__name__}")
        fields = set(cls.__dataclass_fields__)
        unknown = sorted(set(data) - fields)
        if unknown:
            raise ValueError(f"unknown DenseCRF parameters {unknown}; expected some of "
                             f"{sorted(fields)}")
        return cls(**data)

    @classmethod
    def read(cls, path: Any, num_classes: int | None = None) -> DenseCRFParams:
        """Read a parameter file written by :meth:`write` (``crfseg tune -o``).

        ``num_classes``, when given, is the ``C`` its per-class factors must have.
        """
        from crfseg import io

        return cls.from_dict(io.read_crf_params(path, num_classes=num_classes))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain, JSON-ready dict (per-class factors as lists or None)."""
        return {key: list(value) if isinstance(value, tuple) else value
                for key, value in asdict(self).items()}

    def write(self, path: Any) -> Any:
        """Write the parameters to a JSON file through :func:`crfseg.io.write_crf_params`."""
        from crfseg import io

        return io.write_crf_params(path, self.to_dict())

    def dense_crf(self, backend: str = "torch", device: str | torch.device | None = None
                  ) -> DenseCRF | None:
        """The :class:`~crfseg.crf.DenseCRF` of these settings (None when ``crf="none"``)."""
        if self.crf == "none":
            return None
        return DenseCRF(n_iter=self.n_iter, gaussian_sxy=self.gaussian_sxy,
                        gaussian_compat=self.compat("gaussian"),
                        bilateral_sxy=self.bilateral_sxy, bilateral_srgb=self.bilateral_srgb,
                        bilateral_compat=self.compat("bilateral"), backend=backend,
                        device=device)

    def refine(self, scores: Any, image: Any, input_type: str = "auto", *,
               backend: str = "torch", device: str | torch.device | None = None,
               crf: DenseCRF | None = None) -> Any:
        """Refined probabilities of one image ``(C, H, W)`` or a batch ``(N, C, H, W)``.

        Parameters
        ----------
        scores : (C, H, W) or (N, C, H, W) float ndarray or Tensor
            Class scores of the kind ``input_type``.
        image : ndarray or Tensor
            The image(s), as for :meth:`DenseCRF.refine`.
        input_type : {"auto", "logits", "probs", "unary"}, default "auto"
        backend, device
            Of the :class:`~crfseg.crf.DenseCRF` built (ignored when ``crf`` is given).
        crf : DenseCRF, optional
            A CRF built once by :meth:`dense_crf`, reused across calls.

        Returns
        -------
        probs : the kind :meth:`DenseCRF.refine` returns
            With ``crf="none"``: ``softmax(-unary_scale · (unary - class_bias))``
            of the scores.

        Raises
        ------
        ValueError
            The parameters hold per-class factors or a bias for another number
            of classes than the scores'.
        """
        check_array("scores", scores)
        check_choice("input_type", input_type, INPUT_TYPES)
        axis = 1 if len(shape_of(scores)) == 4 else 0
        classes = shape_of(scores)[axis] if shape_of(scores) else None
        if self.num_classes not in (None, classes) and (self.crf == "dense"
                                                        or self.class_bias is not None):
            raise ValueError(f"the parameters hold per-class values for {self.num_classes} "
                             f"classes but the scores have C={classes}")
        unary = self._unbias(scores_to_unary(scores, input_type, axis=axis), axis)
        unary = unary * self.unary_scale
        if self.crf == "none":
            if is_tensor(unary):
                return torch.softmax(-unary, dim=axis)
            shifted = -unary - (-unary).max(axis=axis, keepdims=True)
            probs = np.exp(shifted)
            return (probs / probs.sum(axis=axis, keepdims=True)).astype(np.float32)
        crf = crf if crf is not None else self.dense_crf(backend, device)
        return crf.refine(unary, image, input_type="unary")


@dataclass
class TuneResult:
    """What :func:`tune_dense_crf` found.

    Attributes
    ----------
    params : DenseCRFParams
        The best parameters; ``crf="none"`` when no trial beat the scores alone.
    trials : list of dict
        One row per trial: ``trial``, the parameters, ``per_class`` (None in
        the scalar search; in the per-class stage the factor tried, e.g.
        ``"b[3]x0.5"``: class 3's bilateral weight times 0.5), ``miou`` and
        ``seconds``.
    miou_no_crf, miou_defaults, miou_best : float
        Mean IoU of the argmax of the scores, of DenseCRF's defaults (on the
        biased scores when a class bias was fitted) and of ``params`` (with
        ``crf="none"``: of the scores, biased when a bias was fitted).
    iou_no_crf, iou_best : (C,) ndarray
        Per-class IoU of the scores alone and of ``params``.
    miou_scalar : float, optional
        Best mean IoU of the scalar search, before the per-class stage (None
        when that stage did not run).
    miou_bias : float, optional
        Mean IoU of the argmax of the scores with the fitted class bias, no
        CRF (None when no bias was fitted).
    """

    params: DenseCRFParams
    trials: list[dict[str, Any]]
    miou_no_crf: float
    miou_defaults: float
    miou_best: float
    iou_no_crf: np.ndarray
    iou_best: np.ndarray
    miou_scalar: float | None = None
    miou_bias: float | None = None

    def table(self, top: int | None = None) -> str:
        """The trials as a text table, best first (``top`` rows at most), then the summary."""
        columns = ["trial", "n_iter", "gaussian_sxy", "gaussian_compat", "bilateral_sxy",
                   "bilateral_srgb", "bilateral_compat", "unary_scale", "miou", "seconds"]
        header = ["#", "iter", "g_sxy", "g_w", "b_sxy", "b_srgb", "b_w", "scale", "mIoU", "s"]
        if any(row.get("per_class") for row in self.trials):
            columns.append("per_class")
            header.append("class")
        rows = sorted(self.trials, key=lambda r: -r["miou"])[:top]
        lines = ["  ".join(f"{h:>7}" for h in header)]
        for row in rows:
            cells = []
            for key in columns:
                value = row.get(key)
                if key == "miou":
                    cells.append(f"{100 * value:7.2f}")
                elif key == "per_class":
                    cells.append(f"{value or '':>7}")
                elif isinstance(value, int):
                    cells.append(f"{value:7d}")
                else:
                    cells.append(f"{value:7.3g}")
            lines.append("  ".join(cells))
        lines += [
            f"mIoU no CRF    {100 * self.miou_no_crf:6.2f}",
        ]
        if self.miou_bias is not None:
            lines.append(f"mIoU bias      {100 * self.miou_bias:6.2f}  (class bias, no CRF)")
        lines.append(f"mIoU defaults  {100 * self.miou_defaults:6.2f}")
        if self.miou_scalar is not None:
            lines.append(f"mIoU scalar    {100 * self.miou_scalar:6.2f}  (before the per-class "
                         f"factors)")
        lines.append(
            f"mIoU best      {100 * self.miou_best:6.2f}"
            + ("  (no CRF: no trial beat the scores alone)" if self.params.crf == "none" else ""))
        if self.params.class_bias is not None:
            lines.append("class bias     " + " ".join(f"{b:g}" for b in self.params.class_bias))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: parameters, trials and scores."""
        return {"params": self.params.to_dict(), "trials": self.trials,
                "miou_no_crf": self.miou_no_crf, "miou_defaults": self.miou_defaults,
                "miou_scalar": self.miou_scalar, "miou_bias": self.miou_bias,
                "miou_best": self.miou_best,
                "iou_no_crf": self.iou_no_crf.tolist(), "iou_best": self.iou_best.tolist()}


def _as_list(name: str, value: Any) -> list[Any]:
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif (isinstance(value, np.ndarray) or is_tensor(value)) and value.ndim >= 1:
        items = [value[i] for i in range(value.shape[0])]
    else:
        raise TypeError(f"{name} must be a list of arrays or a batched array, got "
                        f"{type(value).__name__}")
    if not items:
        raise ValueError(f"{name} is empty: at least one image is needed")
    return items


def _prepare(scores: Any, images: Any, labels: Any, num_classes: int | None, input_type: str,
             ignore_index: int) -> list[tuple[torch.Tensor, np.ndarray | None, np.ndarray]]:
    """Check the inputs and return ``(unary (C, H, W) float32, image, labels)`` per image.

    ``images`` None: no images (each sample's image is None).
    """
    score_list = _as_list("scores", scores)
    image_list = [None] * len(score_list) if images is None else _as_list("images", images)
    label_list = _as_list("labels", labels)
    if not len(score_list) == len(image_list) == len(label_list):
        raise ValueError(f"scores, images and labels must hold as many items, got "
                         f"{len(score_list)}, {len(image_list)} and {len(label_list)}")
    samples = []
    for i, (score, image, label) in enumerate(zip(score_list, image_list, label_list)):
        check_array(f"scores[{i}]", score)
        shape = shape_of(score)
        if len(shape) != 3:
            raise ValueError(f"scores[{i}] must be (C, H, W), got shape {shape}")
        if num_classes is None:
            num_classes = shape[0]
        if shape[0] != num_classes:
            raise ValueError(f"scores[{i}] has {shape[0]} classes, expected "
                             f"num_classes={num_classes}")
        lab = to_numpy(label)
        check_integer_dtype(f"labels[{i}]", lab)
        if lab.shape != tuple(shape[1:]):
            raise ValueError(f"labels[{i}] has shape {lab.shape}, expected the scores' "
                             f"(H, W) = {tuple(shape[1:])}")
        img = None if image is None else to_numpy(image)
        if img is not None and (img.ndim != 3 or img.shape[:2] != tuple(shape[1:])
                                or img.shape[2] != 3):
            raise ValueError(f"images[{i}] has shape {img.shape}, expected (H, W, 3) with "
                             f"(H, W) = {tuple(shape[1:])}")
        bad = ((lab < 0) | (lab >= num_classes)) & (lab != ignore_index)
        if bad.any():
            raise ValueError(f"labels[{i}] holds label {int(lab[bad].flat[0])}, outside 0.."
                             f"{num_classes - 1} and not ignore_index={ignore_index}")
        unary = scores_to_unary(torch.as_tensor(to_numpy(score)), input_type, axis=0)
        samples.append((unary.to(torch.float32), img, lab.astype(np.int64)))
    if num_classes is not None and num_classes < 2:
        raise ValueError(f"the scores must have at least 2 classes, got {num_classes}")
    return samples


def _batches(samples: list[tuple[torch.Tensor, np.ndarray, np.ndarray]], batch_size: int
             ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """Images of one size stacked into batches of at most ``batch_size``."""
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, (unary, _, _) in enumerate(samples):
        by_size.setdefault(tuple(unary.shape[1:]), []).append(i)
    batches = []
    for indices in by_size.values():
        for start in range(0, len(indices), batch_size):
            chunk = [samples[i] for i in indices[start:start + batch_size]]
            images = [im for _, im, _ in chunk]
            batches.append((torch.stack([u for u, _, _ in chunk]),
                            None if images[0] is None else torch.from_numpy(np.stack(images)),
                            torch.from_numpy(np.stack([lab for _, _, lab in chunk]))))
    return batches


def _score(params: DenseCRFParams | None, batches: list[Any], num_classes: int,
           ignore_index: int, backend: str, device: Any) -> np.ndarray:
    """Confusion matrix of ``params`` (None: the scores' argmax) over every batch."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    crf = params.dense_crf(backend, device) if params is not None else None
    for unary, image, target in batches:
        if crf is None:
            pred = (unary if params is None else params._unbias(unary, 1)).argmin(dim=1)
        else:
            pred = params.refine(unary, image, "unary", crf=crf).argmax(dim=1).cpu()
        matrix += confusion_matrix(pred.numpy(), target.numpy(), num_classes,
                                   ignore_index=ignore_index)
    return matrix


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _random_params(rng: np.random.Generator) -> DenseCRFParams:
    values = {name: _log_uniform(rng, *bounds) for name, bounds in SEARCH_SPACE.items()}
    return DenseCRFParams(n_iter=int(rng.choice(N_ITER_CHOICES)), **values)


def _perturb(rng: np.random.Generator, best: DenseCRFParams, step: float) -> DenseCRFParams:
    """A neighbour of ``best``: each value times ``exp(step · N(0, 1))``, kept in range."""
    values = {}
    for name, (low, high) in SEARCH_SPACE.items():
        value = getattr(best, name) * math.exp(step * rng.normal())
        values[name] = float(min(max(value, low), high))
    n_iter = best.n_iter
    if rng.random() < 0.3:
        position = N_ITER_CHOICES.index(n_iter) if n_iter in N_ITER_CHOICES else 3
        position = min(max(position + int(rng.choice((-1, 1))), 0), len(N_ITER_CHOICES) - 1)
        n_iter = N_ITER_CHOICES[position]
    return replace(best, n_iter=n_iter, **values)


def tune_dense_crf(
    scores: Any,
    images: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    trials: int = 40,
    seed: int = 0,
    input_type: str = "auto",
    ignore_index: int = 255,
    initial: Sequence[DenseCRFParams] = (),
    batch_size: int = 4,
    backend: str = "torch",
    device: str | torch.device | None = None,
    time_budget: float | None = None,
    per_class: bool = False,
    class_factors: Sequence[float] = CLASS_FACTORS,
    per_class_passes: int = 2,
    per_class_kernels: Sequence[str] = KERNELS,
    class_bias: bool = False,
    class_biases: Sequence[float] = CLASS_BIASES,
    progress: bool = True,
) -> TuneResult:
    """Search DenseCRF parameters for the best mean IoU on labelled images.

    The first trial is DenseCRF's defaults, then the ``initial`` candidates;
    half of the remaining trials draw every parameter at random (log-uniform
    in :data:`SEARCH_SPACE`, ``n_iter`` from :data:`N_ITER_CHOICES`), the
    other half perturb the best so far with a shrinking step.  Images of one
    size are refined as a batch.

    With ``per_class=True`` a coordinate search follows from the best
    setting: for each kernel of ``per_class_kernels`` and each class, every
    factor of ``class_factors`` on that class's Potts weight is tried and the
    best kept when it raises the mean IoU; ``per_class_passes`` passes at
    most, stopping after a pass that changes nothing.  That is up to
    ``per_class_passes · len(per_class_kernels) · C · (len(class_factors) - 1)``
    more trials, each as costly as one of the scalar search.

    With ``class_bias=True`` a stage before both fits one offset per class on
    the log-probabilities for the best mean IoU with no CRF
    (:func:`fit_class_bias`, over ``class_biases``); every trial then
    refines the biased scores, and the result carries the bias.

    When no trial beats the scores' own argmax (biased, with
    ``class_bias=True``), the result is ``DenseCRFParams(crf="none")``
    (with the bias, if one was fitted).

    Parameters
    ----------
    scores : sequence of (C, H, W) float arrays or Tensors, or (N, C, H, W)
        Class scores of every image (sizes may differ between images).
    images : sequence of (H, W, 3) uint8 arrays, or (N, H, W, 3)
        The RGB images.
    labels : sequence of (H, W) integer arrays, or (N, H, W)
        Ground truth: ``0 .. C-1`` or ``ignore_index``.
    num_classes : int, optional
        Expected ``C`` (default: the scores').
    trials : int, default 40
        Parameter settings scored by the scalar search, the defaults included.
    seed : int, default 0
        Seeds the search.
    input_type : {"auto", "logits", "probs", "unary"}, default "auto"
        What ``scores`` hold.
    ignore_index : int, default 255
        Label left out of the scores.
    initial : sequence of DenseCRFParams, default ()
        Candidates scored right after the defaults (e.g. a fitted CRFasRNN's,
        or an earlier search's best, which the per-class stage can then
        start from).
    batch_size : int, default 4
        Images refined together.
    backend : {"torch", "pydensecrf"}, default "torch"
        DenseCRF backend; ``pydensecrf`` needs ``batch_size=1``.
    device : str or torch.device, optional
        Torch backend's device (default: CUDA when available, else the CPU).
    time_budget : float, optional
        Seconds, over both stages, after which no new trial starts (the
        defaults are always scored); the table then holds fewer rows.
    per_class : bool, default False
        Fit per-class factors on the kernels' Potts weights after the
        scalar search.
    class_factors : sequence of float, default :data:`CLASS_FACTORS`
        Factors ``>= 0`` the per-class stage tries for each class.
    per_class_passes : int, default 2
        Passes over every kernel and class at most.
    per_class_kernels : sequence of {"bilateral", "gaussian"}, default both
        The kernels whose per-class factors are fitted, in this order.
    class_bias : bool, default False
        Fit a per-class bias on the log-probabilities first.
    class_biases : sequence of float, default :data:`CLASS_BIASES`
        Offsets the class-bias stage tries for each class.
    progress : bool, default True
        Show a progress bar over the trials.

    Returns
    -------
    TuneResult
        Best parameters, the trial table and the mIoU of no CRF, the class
        bias, the defaults, the scalar search and the best.

    References
    ----------
    P. Krähenbühl and V. Koltun, "Efficient Inference in Fully Connected CRFs
    with Gaussian Edge Potentials", NIPS 2011 (label compatibilities learned
    per class pair).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> labels = np.zeros((2, 12, 16), dtype=np.int64); labels[:, :, 8:] = 1
    >>> images = np.where(labels[..., None] == 1, 200, 40).astype(np.uint8).repeat(3, -1)
    >>> logits = np.stack([labels == 0, labels == 1], 1) + rng.normal(0, 0.8, (2, 2, 12, 16))
    >>> result = tune_dense_crf(logits, images, labels, trials=3, progress=False)
    >>> result.miou_best >= result.miou_no_crf
    True
    """
    trials = check_int("trials", trials, low=1)
    seed = check_int("seed", seed)
    ignore_index = check_int("ignore_index", ignore_index)
    batch_size = check_int("batch_size", batch_size, low=1)
    check_choice("input_type", input_type, INPUT_TYPES)
    check_choice("backend", backend, ("torch", "pydensecrf"))
    if backend == "pydensecrf" and batch_size != 1:
        raise ValueError(f"backend='pydensecrf' refines one image at a time: pass "
                         f"batch_size=1, got {batch_size}")
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, low=2)
    if time_budget is not None:
        time_budget = float(check_number("time_budget", time_budget, low=0,
                                         low_inclusive=False))
    per_class = check_bool("per_class", per_class)
    class_factors = _check_factor_choices(class_factors)
    per_class_passes = check_int("per_class_passes", per_class_passes, low=1)
    if isinstance(per_class_kernels, str) or not isinstance(per_class_kernels, Sequence):
        raise TypeError(f"per_class_kernels must be a sequence of kernel names, got "
                        f"{type(per_class_kernels).__name__}")
    if not per_class_kernels:
        raise ValueError(f"per_class_kernels is empty: give some of {list(KERNELS)}")
    for kernel in per_class_kernels:
        check_choice("per_class_kernels", kernel, KERNELS)
    per_class_kernels = tuple(dict.fromkeys(per_class_kernels))
    class_bias = check_bool("class_bias", class_bias)
    class_biases = _check_bias_choices(class_biases)
    initial = list(initial)
    for i, candidate in enumerate(initial):
        if not isinstance(candidate, DenseCRFParams):
            raise TypeError(f"initial[{i}] must be a DenseCRFParams, got "
                            f"{type(candidate).__name__}")
    samples = _prepare(scores, images, labels, num_classes, input_type, ignore_index)
    num_classes = int(samples[0][0].shape[0])
    for i, candidate in enumerate(initial):
        if candidate.num_classes not in (None, num_classes):
            raise ValueError(f"initial[{i}] holds per-class factors for "
                             f"{candidate.num_classes} classes but the scores have "
                             f"C={num_classes}")
    batches = _batches(samples, batch_size)

    def run(params: DenseCRFParams | None) -> tuple[float, np.ndarray, float]:
        start = time.perf_counter()
        if backend == "pydensecrf" and params is not None:
            matrix = _score_single(params, batches, num_classes, ignore_index)
        else:
            matrix = _score(params, batches, num_classes, ignore_index, backend, device)
        return mean_iou(matrix), iou(matrix), time.perf_counter() - start

    started = time.perf_counter()
    miou_no_crf, iou_no_crf, _ = run(None)
    bias, miou_bias, iou_bias = None, None, None
    if class_bias:
        fitted, _ = _fit_bias(batches, num_classes, ignore_index, class_biases, progress)
        bias = tuple(float(b) for b in fitted)
        miou_bias, iou_bias, _ = run(DenseCRFParams(crf="none", class_bias=bias))
    rng = np.random.default_rng(seed)
    candidates = [replace(c, class_bias=bias) if class_bias else c
                  for c in (DenseCRFParams(), *initial)]
    n_random = max(0, (trials - len(candidates)) // 2)
    rows: list[dict[str, Any]] = []
    best: tuple[float, DenseCRFParams, np.ndarray] | None = None
    from tqdm.auto import tqdm

    per_class_trials = (per_class_passes * len(per_class_kernels) * num_classes
                        * len(class_factors) if per_class else 0)
    bar = tqdm(total=trials + per_class_trials, desc="tune", unit="trial",
               disable=not progress)

    def out_of_time() -> bool:
        return time_budget is not None and time.perf_counter() - started > time_budget

    def score(params: DenseCRFParams, change: str | None = None) -> float:
        nonlocal best
        miou, per_class_iou, seconds = run(params)
        rows.append({"trial": len(rows),
                     **{k: v for k, v in params.to_dict().items() if k != "crf"},
                     "per_class": change, "miou": miou, "seconds": seconds})
        if best is None or miou > best[0]:
            best = (miou, params, per_class_iou)
        bar.update(1)
        bar.set_postfix(best=f"{100 * best[0]:.2f}", no_crf=f"{100 * miou_no_crf:.2f}")
        return miou

    for trial in range(trials):
        if trial and out_of_time():
            break
        if trial < len(candidates):
            params = candidates[trial]
        elif trial < len(candidates) + n_random or best is None:
            params = replace(_random_params(rng), class_bias=bias)
        else:
            searched = len(candidates) + n_random
            done = (trial - searched) / max(1, trials - searched)
            params = _perturb(rng, best[1], step=0.5 * (1.0 - done) + 0.1)
        score(params)
    assert best is not None
    miou_scalar = best[0] if per_class else None
    if per_class:
        _fit_class_factors(score, lambda: best[1], num_classes, class_factors,
                           per_class_kernels, per_class_passes, out_of_time)
    bar.total = bar.n
    bar.close()
    baseline = (miou_no_crf, iou_no_crf) if miou_bias is None else (miou_bias, iou_bias)
    if best[0] > baseline[0]:
        params, miou_best, iou_best = best[1], best[0], best[2]
    else:
        params = DenseCRFParams(crf="none", class_bias=bias)
        miou_best, iou_best = baseline
    return TuneResult(params=params, trials=rows, miou_no_crf=miou_no_crf,
                      miou_defaults=rows[0]["miou"], miou_best=miou_best,
                      iou_no_crf=iou_no_crf, iou_best=iou_best, miou_scalar=miou_scalar,
                      miou_bias=miou_bias)


def fit_class_bias(
    scores: Any,
    labels: Any,
    *,
    num_classes: int | None = None,
    input_type: str = "auto",
    ignore_index: int = 255,
    class_biases: Sequence[float] = CLASS_BIASES,
    passes: int = 3,
    progress: bool = False,
) -> tuple[np.ndarray, float]:
    """One offset per class on the log-probabilities, for the best mean IoU of the argmax.

    A coordinate search from zero: for each class in turn, every value of
    ``class_biases`` is tried for its offset and the best kept when it
    raises the mean IoU of ``argmax(log p + bias)`` over all images; at most
    ``passes`` passes, stopping after one that changes nothing.  A CNN
    trained with cross-entropy on few steps, or on other class frequencies,
    favours its frequent classes; the mean IoU weighs every class alike, and
    these offsets move the decision to match (a post-hoc logit adjustment).

    Parameters
    ----------
    scores : sequence of (C, H, W) float arrays or Tensors, or (N, C, H, W)
        Class scores of every image.
    labels : sequence of (H, W) integer arrays, or (N, H, W)
        Ground truth: ``0 .. C-1`` or ``ignore_index``.
    num_classes : int, optional
        Expected ``C`` (default: the scores').
    input_type : {"auto", "logits", "probs", "unary"}, default "auto"
        What ``scores`` hold.
    ignore_index : int, default 255
        Label left out of the scores.
    class_biases : sequence of float, default :data:`CLASS_BIASES`
        Offsets tried for each class (finite, any sign).
    passes : int, default 3
        Passes over the classes at most.
    progress : bool, default False
        Show a progress bar over the evaluations.

    Returns
    -------
    bias : (C,) float64 ndarray
        The offsets (``DenseCRFParams(class_bias=...)`` applies them).
    miou : float
        Mean IoU of the biased argmax on these images.

    Examples
    --------
    The CNN favours class 0 everywhere; lowering its log-probability by 2
    finds class 1's pixels, where class 1 was a close second:

    >>> labels = np.zeros((1, 4, 4), dtype=np.int64); labels[0, :, :2] = 1
    >>> logits = np.zeros((1, 2, 4, 4)); logits[0, 1] = -2.5; logits[0, 1, :, :2] = -0.4
    >>> bias, miou = fit_class_bias(logits, labels, input_type="logits")
    >>> bias.tolist(), miou
    ([-2.0, 0.0], 1.0)
    """
    ignore_index = check_int("ignore_index", ignore_index)
    check_choice("input_type", input_type, INPUT_TYPES)
    if num_classes is not None:
        num_classes = check_int("num_classes", num_classes, low=2)
    class_biases = _check_bias_choices(class_biases)
    passes = check_int("passes", passes, low=1)
    label_list = _as_list("labels", labels)
    score_list = _as_list("scores", scores)
    if len(score_list) != len(label_list):
        raise ValueError(f"scores and labels must hold as many items, got {len(score_list)} "
                         f"and {len(label_list)}")
    samples = _prepare(score_list, None, label_list, num_classes, input_type, ignore_index)
    return _fit_bias(_batches(samples, 8), int(samples[0][0].shape[0]), ignore_index,
                     class_biases, progress, passes)


def _fit_bias(batches: list[Any], num_classes: int, ignore_index: int,
              class_biases: tuple[float, ...], progress: bool, passes: int = 3
              ) -> tuple[np.ndarray, float]:
    """The coordinate search of :func:`fit_class_bias` over prepared batches.

    While one class's offset changes, every other class keeps its biased
    unary, so each pixel's best other class ``k*`` and its unary ``m`` are
    found once per class; a candidate offset ``v`` then only compares
    ``u_c - v`` with ``m`` (ties to the lower class index, as ``argmin``).
    """
    from tqdm.auto import tqdm

    def miou_of(predictions: Any) -> float:
        matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
        for pred, (_, _, target) in zip(predictions, batches):
            matrix += confusion_matrix(pred.numpy(), target.numpy(), num_classes,
                                       ignore_index=ignore_index)
        return mean_iou(matrix)

    bias = np.zeros(num_classes)
    best = miou_of(unary.argmin(dim=1) for unary, _, _ in batches)
    with tqdm(total=passes * num_classes * len(class_biases), desc="class bias", unit="eval",
              disable=not progress) as bar:
        for _ in range(passes):
            changed = False
            for label in range(num_classes):
                offset = torch.tensor(bias, dtype=torch.float32)[:, None, None]
                others = []
                for unary, _, _ in batches:
                    shifted = unary - offset
                    shifted[:, label] = math.inf
                    m, k = shifted.min(dim=1)
                    others.append((unary[:, label], m, k))
                chosen = bias[label]
                for value in class_biases:
                    bar.update(1)
                    if value == chosen:
                        continue
                    v = torch.tensor(value, dtype=torch.float32)
                    score = miou_of(
                        torch.where((u - v < m) | ((u - v == m) & (k > label)), label, k)
                        for u, m, k in others)
                    if score > best:
                        best, chosen, changed = score, value, True
                bias[label] = chosen
            bar.set_postfix(miou=f"{100 * best:.2f}")
            if not changed:
                break
        bar.total = bar.n
    return bias, best


def _check_bias_choices(class_biases: Any) -> tuple[float, ...]:
    """``class_biases`` as a tuple of distinct finite numbers (at least one)."""
    return _check_choices("class_biases", class_biases, low=None)


def _check_factor_choices(class_factors: Any) -> tuple[float, ...]:
    """``class_factors`` as a tuple of distinct finite numbers ``>= 0`` (at least one)."""
    return _check_choices("class_factors", class_factors, low=0)


def _check_choices(name: str, choices: Any, low: float | None) -> tuple[float, ...]:
    """``choices`` as a tuple of distinct finite numbers ``>= low`` (at least one)."""
    if isinstance(choices, (str, bytes)) or not isinstance(choices, (Sequence, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of numbers, got {type(choices).__name__}")
    values = tuple(dict.fromkeys(check_number(f"{name}[{i}]", value, low=low)
                                 for i, value in enumerate(choices)))
    if not values:
        raise ValueError(f"{name} is empty: give at least one value to try")
    return values


def _fit_class_factors(score: Any, current: Any, num_classes: int,
                       class_factors: tuple[float, ...], kernels: tuple[str, ...], passes: int,
                       out_of_time: Any) -> None:
    """Coordinate search over each kernel's per-class factors, from the best setting.

    ``score(params, change)`` scores and records a trial (keeping the best);
    ``current()`` is the best setting so far.  Stops after a pass that
    changes nothing, or when ``out_of_time()``.
    """
    for _ in range(passes):
        changed = False
        for kernel in kernels:
            name = f"{kernel}_class_factors"
            for label in range(num_classes):
                start = current()
                factors = list(getattr(start, name) or (1.0,) * num_classes)
                for factor in class_factors:
                    if factor == factors[label]:
                        continue
                    if out_of_time():
                        return
                    trial = list(factors)
                    trial[label] = factor
                    score(replace(start, **{name: tuple(trial)}),
                          f"{kernel[0]}[{label}]x{factor:g}")
                changed = changed or current() is not start
        if not changed:
            return


def _score_single(params: DenseCRFParams, samples: list[Any], num_classes: int,
                  ignore_index: int) -> np.ndarray:
    """Confusion matrix with the pydensecrf backend, one image at a time."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    crf = params.dense_crf("pydensecrf")
    for unary, image, target in samples:  # batches of one image
        probs = params.refine(unary[0].numpy(), image[0].numpy(), "unary", crf=crf)
        matrix += confusion_matrix(probs.argmax(axis=0), target[0].numpy(), num_classes,
                                   ignore_index=ignore_index)
    return matrix
