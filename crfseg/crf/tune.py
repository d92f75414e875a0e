"""Fit DenseCRF parameters to labelled data: :func:`tune_dense_crf` and :class:`DenseCRFParams`.

The defaults of :class:`~crfseg.crf.DenseCRF` are the values tuned for PASCAL
VOC; on other data (street scenes, a weaker CNN) they can make things worse.
``tune_dense_crf`` searches the kernels' standard deviations and weights, the
number of mean-field iterations and a scale on the unary (a temperature of the
CNN's scores) for the best mean IoU on a validation set, and never recommends
parameters that score below the CNN alone.
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

__all__ = ["DenseCRFParams", "TuneResult", "tune_dense_crf", "SEARCH_SPACE", "N_ITER_CHOICES"]

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

    def __post_init__(self) -> None:
        check_choice("crf", self.crf, CRF_KINDS)
        object.__setattr__(self, "n_iter", check_int("n_iter", self.n_iter, low=0))
        for name in ("gaussian_sxy", "bilateral_sxy", "bilateral_srgb", "unary_scale"):
            value = check_number(name, getattr(self, name), low=0, low_inclusive=False)
            object.__setattr__(self, name, float(value))
        for name in ("gaussian_compat", "bilateral_compat"):
            object.__setattr__(self, name, float(check_number(name, getattr(self, name), low=0)))

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
    def read(cls, path: Any) -> DenseCRFParams:
        """Read a parameter file written by :meth:`write` (``crfseg tune -o``)."""
        from crfseg import io

        return cls.from_dict(io.read_crf_params(path))

    def to_dict(self) -> dict[str, Any]:
        """The fields as a plain dict."""
        return asdict(self)

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
                        gaussian_compat=self.gaussian_compat, bilateral_sxy=self.bilateral_sxy,
                        bilateral_srgb=self.bilateral_srgb,
                        bilateral_compat=self.bilateral_compat, backend=backend, device=device)

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
            With ``crf="none"``: ``softmax(-unary_scale · unary)`` of the scores.
        """
        check_array("scores", scores)
        check_choice("input_type", input_type, INPUT_TYPES)
        axis = 1 if len(shape_of(scores)) == 4 else 0
        unary = scores_to_unary(scores, input_type, axis=axis) * self.unary_scale
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
        One row per trial: ``trial``, the parameters, ``miou`` and ``seconds``.
    miou_no_crf, miou_defaults, miou_best : float
        Mean IoU of the argmax of the scores, of DenseCRF's defaults and of
        ``params`` (equal to ``miou_no_crf`` when ``crf="none"``).
    iou_no_crf, iou_best : (C,) ndarray
        Per-class IoU of the scores alone and of ``params``.
    """

    params: DenseCRFParams
    trials: list[dict[str, Any]]
    miou_no_crf: float
    miou_defaults: float
    miou_best: float
    iou_no_crf: np.ndarray
    iou_best: np.ndarray

    def table(self, top: int | None = None) -> str:
        """The trials as a text table, best first (``top`` rows at most), then the summary."""
        columns = ("trial", "n_iter", "gaussian_sxy", "gaussian_compat", "bilateral_sxy",
                   "bilateral_srgb", "bilateral_compat", "unary_scale", "miou", "seconds")
        rows = sorted(self.trials, key=lambda r: -r["miou"])[:top]
        header = ["#", "iter", "g_sxy", "g_w", "b_sxy", "b_srgb", "b_w", "scale", "mIoU", "s"]
        lines = ["  ".join(f"{h:>7}" for h in header)]
        for row in rows:
            cells = []
            for key in columns:
                value = row[key]
                if key == "miou":
                    cells.append(f"{100 * value:7.2f}")
                elif isinstance(value, int):
                    cells.append(f"{value:7d}")
                else:
                    cells.append(f"{value:7.3g}")
            lines.append("  ".join(cells))
        lines += [
            f"mIoU no CRF    {100 * self.miou_no_crf:6.2f}",
            f"mIoU defaults  {100 * self.miou_defaults:6.2f}",
            f"mIoU best      {100 * self.miou_best:6.2f}"
            + ("  (no CRF: no trial beat the scores alone)" if self.params.crf == "none" else ""),
        ]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready summary: parameters, trials and scores."""
        return {"params": self.params.to_dict(), "trials": self.trials,
                "miou_no_crf": self.miou_no_crf, "miou_defaults": self.miou_defaults,
                "miou_best": self.miou_best, "iou_no_crf": self.iou_no_crf.tolist(),
                "iou_best": self.iou_best.tolist()}


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
             ignore_index: int) -> list[tuple[torch.Tensor, np.ndarray, np.ndarray]]:
    """Check the inputs and return ``(unary (C, H, W) float32, image, labels)`` per image."""
    score_list = _as_list("scores", scores)
    image_list = _as_list("images", images)
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
        img = to_numpy(image)
        if img.ndim != 3 or img.shape[:2] != tuple(shape[1:]) or img.shape[2] != 3:
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
            batches.append((torch.stack([u for u, _, _ in chunk]),
                            torch.from_numpy(np.stack([im for _, im, _ in chunk])),
                            torch.from_numpy(np.stack([lab for _, _, lab in chunk]))))
    return batches


def _score(params: DenseCRFParams | None, batches: list[Any], num_classes: int,
           ignore_index: int, backend: str, device: Any) -> np.ndarray:
    """Confusion matrix of ``params`` (None: the scores' argmax) over every batch."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    crf = params.dense_crf(backend, device) if params is not None else None
    for unary, image, target in batches:
        if crf is None:
            pred = unary.argmin(dim=1)
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
    progress: bool = True,
) -> TuneResult:
    """Search DenseCRF parameters for the best mean IoU on labelled images.

    The first trial is DenseCRF's defaults, then the ``initial`` candidates;
    half of the remaining trials draw every parameter at random (log-uniform
    in :data:`SEARCH_SPACE`, ``n_iter`` from :data:`N_ITER_CHOICES`), the
    other half perturb the best so far with a shrinking step.  Images of one
    size are refined as a batch.  When no trial beats the scores' own argmax,
    the result is ``DenseCRFParams(crf="none")``.

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
        Parameter settings scored, the defaults included.
    seed : int, default 0
        Seeds the search.
    input_type : {"auto", "logits", "probs", "unary"}, default "auto"
        What ``scores`` hold.
    ignore_index : int, default 255
        Label left out of the scores.
    initial : sequence of DenseCRFParams, default ()
        Candidates scored right after the defaults (e.g. a fitted CRFasRNN's).
    batch_size : int, default 4
        Images refined together.
    backend : {"torch", "pydensecrf"}, default "torch"
        DenseCRF backend; ``pydensecrf`` needs ``batch_size=1``.
    device : str or torch.device, optional
        Torch backend's device (default: CUDA when available, else the CPU).
    time_budget : float, optional
        Seconds after which no new trial starts (the defaults are always
        scored); the table then holds fewer than ``trials`` rows.
    progress : bool, default True
        Show a progress bar over the trials.

    Returns
    -------
    TuneResult
        Best parameters, the trial table and the mIoU of no CRF, the defaults
        and the best.

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
    initial = list(initial)
    for i, candidate in enumerate(initial):
        if not isinstance(candidate, DenseCRFParams):
            raise TypeError(f"initial[{i}] must be a DenseCRFParams, got "
                            f"{type(candidate).__name__}")
    samples = _prepare(scores, images, labels, num_classes, input_type, ignore_index)
    num_classes = int(samples[0][0].shape[0])
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
    rng = np.random.default_rng(seed)
    candidates = [DenseCRFParams(), *initial]
    n_random = max(0, (trials - len(candidates)) // 2)
    rows: list[dict[str, Any]] = []
    best: tuple[float, DenseCRFParams, np.ndarray] | None = None
    from tqdm.auto import tqdm

    bar = tqdm(total=trials, desc="tune", unit="trial", disable=not progress)
    for trial in range(trials):
        if trial and time_budget is not None and time.perf_counter() - started > time_budget:
            break
        if trial < len(candidates):
            params = candidates[trial]
        elif trial < len(candidates) + n_random or best is None:
            params = _random_params(rng)
        else:
            searched = len(candidates) + n_random
            done = (trial - searched) / max(1, trials - searched)
            params = _perturb(rng, best[1], step=0.5 * (1.0 - done) + 0.1)
        miou, per_class, seconds = run(params)
        row = {"trial": trial, **{k: v for k, v in params.to_dict().items() if k != "crf"},
               "miou": miou, "seconds": seconds}
        rows.append(row)
        if best is None or miou > best[0]:
            best = (miou, params, per_class)
        bar.update(1)
        bar.set_postfix(best=f"{100 * best[0]:.2f}", no_crf=f"{100 * miou_no_crf:.2f}")
    bar.close()
    assert best is not None
    if best[0] > miou_no_crf:
        params, miou_best, iou_best = best[1], best[0], best[2]
    else:
        params, miou_best, iou_best = DenseCRFParams(crf="none"), miou_no_crf, iou_no_crf
    return TuneResult(params=params, trials=rows, miou_no_crf=miou_no_crf,
                      miou_defaults=rows[0]["miou"], miou_best=miou_best,
                      iou_no_crf=iou_no_crf, iou_best=iou_best)


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
