"""Input checks shared by every part of crfseg.

Each check raises ``ValueError`` or ``TypeError`` whose message names the
argument, what was expected and what was given, before any work is done.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

try:  # torch is a runtime dependency; the guard keeps numpy-only helpers importable alone.
    import torch
except ImportError:  # pragma: no cover
    torch = None  # type: ignore[assignment]


class DTypeError(TypeError, ValueError):
    """An array of the wrong dtype (e.g. float labels).

    It is both a ``TypeError`` (the usual Python meaning) and a ``ValueError``
    (what crfseg promises for every bad input), so either ``except`` catches it.
    """


def is_tensor(x: Any) -> bool:
    """Return True when ``x`` is a ``torch.Tensor``."""
    return torch is not None and isinstance(x, torch.Tensor)


def to_numpy(x: Any) -> np.ndarray:
    """A numpy view of ``x``: tensors are detached and copied to the host, arrays pass through."""
    return x.detach().cpu().numpy() if is_tensor(x) else np.asarray(x)


def shape_of(x: Any) -> tuple[int, ...]:
    """Shape of a numpy array or torch tensor as a plain tuple."""
    return tuple(int(s) for s in x.shape)


def check_array(name: str, x: Any, *, allow_tensor: bool = True) -> None:
    """Require a numpy array (or a torch tensor when ``allow_tensor``)."""
    if isinstance(x, np.ndarray) or (allow_tensor and is_tensor(x)):
        return
    kinds = "a numpy array or torch tensor" if allow_tensor else "a numpy array"
    raise TypeError(f"{name} must be {kinds}, got {type(x).__name__}")


def check_ndim(name: str, x: Any, ndims: int | Sequence[int], layout: str | None = None) -> None:
    """Require ``x.ndim`` to be one of ``ndims``; ``layout`` describes the expected axes."""
    allowed = (ndims,) if isinstance(ndims, int) else tuple(ndims)
    if x.ndim not in allowed:
        expected = layout or " or ".join(f"{n}-D" for n in allowed)
        raise ValueError(f"{name} must be {expected}, got an array of shape {shape_of(x)}")


def check_integer_dtype(name: str, x: Any) -> None:
    """Require an integer (or boolean) dtype: labels are class indices, never floats."""
    if is_tensor(x):
        ok = not (x.is_floating_point() or x.is_complex())
    else:
        ok = np.issubdtype(x.dtype, np.integer) or x.dtype == np.bool_
    if not ok:
        raise DTypeError(
            f"{name} must hold integer class labels, got dtype {x.dtype}; "
            "convert scores to labels with argmax first"
        )


def check_floating_dtype(name: str, x: Any) -> None:
    """Require a floating-point dtype (scores, probabilities, energies)."""
    if is_tensor(x):
        ok = x.is_floating_point()
    else:
        ok = np.issubdtype(x.dtype, np.floating)
    if not ok:
        raise DTypeError(f"{name} must be a floating-point array, got dtype {x.dtype}")


def check_finite(name: str, x: Any) -> None:
    """Reject NaN and infinity, saying how many entries are bad.

    A NaN or infinite entry makes the sum of all entries NaN or infinite, so a
    finite sum (one vectorised pass, no mask) proves every entry finite; only
    a sum that is not finite (bad entries, or finite ones summing past the
    float range) counts the bad entries one by one.
    """
    if is_tensor(x):
        if not x.is_floating_point() or bool(torch.isfinite(x.sum())):
            return
        bad = int((~torch.isfinite(x)).sum().item())
    else:
        arr = np.asarray(x)
        if arr.dtype.kind not in "fc":
            return
        with np.errstate(over="ignore", invalid="ignore"):
            if np.isfinite(arr.sum()):
                return
        bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ValueError(f"{name} contains {bad} non-finite value(s) (NaN or inf)")


def check_same_shape(name_a: str, a: Any, name_b: str, b: Any) -> None:
    """Require two arrays of identical shape."""
    if shape_of(a) != shape_of(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {shape_of(a)} and {shape_of(b)}"
        )


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_inclusive: bool = True,
    high_inclusive: bool = True,
) -> float:
    """Require a finite real number in ``[low, high]`` (bounds optional); return it as float."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value}")
    if high is not None and (value > high or (value == high and not high_inclusive)):
        op = "<=" if high_inclusive else "<"
        raise ValueError(f"{name} must be {op} {high}, got {value}")
    return value


def check_int(name: str, value: Any, *, low: int | None = None, high: int | None = None) -> int:
    """Require an integer in ``[low, high]`` (bounds optional); return it as int."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_bool(name: str, value: Any) -> bool:
    """Require a plain ``bool`` (or numpy bool): a truthy tensor, string or number is a mistake."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return bool(value)


def check_memory(name: str, value: Any, nbytes: int, what: str) -> None:
    """Refuse an allocation of ``nbytes`` (``what``, sized by argument ``name``) that
    cannot fit in the memory left (``CRFSEG_MEMORY_LIMIT`` caps it), instead of letting
    the process be killed."""
    from crfseg.crf.lattice import available_memory  # the one reading of free memory

    available = available_memory("cpu")
    if nbytes > available:
        raise ValueError(
            f"{name}={value!r} needs {what} of {_size(nbytes)}, more than the "
            f"{_size(available)} of memory available"
        )


def _size(nbytes: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= scale / 4:
            return f"{nbytes / scale:.3g} {unit}"
    return f"{nbytes / 2**10:.3g} KiB"


def _same_kind(value: Any, choice: Any) -> bool:
    """Whether ``value`` is of the choice's kind: 8.0 and True are not the choice 8 or 1."""
    if isinstance(choice, (bool, np.bool_)):
        return isinstance(value, (bool, np.bool_))
    if isinstance(choice, (int, np.integer)):
        return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
    if isinstance(choice, str):
        return isinstance(value, str)
    return isinstance(value, type(choice))


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    """Require ``value`` to be one of ``choices``, and of the same kind (no 8.0 for 8)."""
    if not any(_same_kind(value, choice) and value == choice for choice in choices):
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {listed}; got {value!r}")
