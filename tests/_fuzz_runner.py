"""Run one public entry point of crfseg on an input described by a recipe, in a child process.

The property-based suite (``tests/test_fuzz.py``) describes every input as a
*recipe*: plain JSON (shapes, dtypes, memory layouts, value kinds, settings),
never an array, so that byte order and strides survive the trip to the child
and every failure prints a reproducer:

    python tests/_fuzz_runner.py grid '{"unary": {...}, "method": "trws", ...}'

A case either works, and then its result must pass the checks below (against
brute force where the input is small), or raises ``ValueError``/``TypeError``.
Anything else (another exception, a failed check, a crash, a hang) is a bug.
The child runs under glibc's heap checks, so a stray write fails here rather
than in a later, unrelated test.
"""

from __future__ import annotations

import itertools
import json
import os
import pickle
import select
import struct
import subprocess
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any

import numpy as np

HEAP_CHECKS = {"MALLOC_CHECK_": "3", "MALLOC_PERTURB_": "165"}
ALLOWED = ("ValueError", "TypeError", "DTypeError")


class CheckFailed(AssertionError):
    """A case ran but its result is wrong."""


def _check(condition: Any, message: str) -> None:
    if not condition:
        raise CheckFailed(message)


# ----------------------------------------------------------------------------- arrays

_EXTREMES = {"f": lambda info: [info.max, -info.max, info.tiny, -info.tiny, 0.0, 1.0, -1.0]}


def build_array(recipe: dict) -> np.ndarray:
    """The array a recipe describes: shape, dtype (any byte order), values, memory layout.

    ``values``: ``"normal"`` (times ``scale``, plus ``offset``), ``"abs"`` (its
    absolute value), ``"ints"`` in
    ``[low, high]``, ``"nan"`` / ``"inf"`` (normal values with a few of them),
    ``"extreme"`` (the dtype's largest, smallest and tiniest values), ``"constant"``
    (``offset`` everywhere).  ``layout``: ``"C"``, ``"F"``, ``"reversed"`` (negative
    strides on every axis) or ``"strided"`` (every other element of a larger array).
    """
    shape = tuple(int(s) for s in recipe["shape"])
    dtype = np.dtype(recipe["dtype"])
    native = dtype.newbyteorder("=")
    rng = np.random.default_rng(recipe.get("seed", 0))
    kind = recipe.get("values", "normal")
    if kind == "constant" and dtype.kind in "biu":
        info = np.iinfo(native) if dtype.kind in "iu" else np.iinfo(np.uint8)
        level = min(max(int(recipe.get("offset", 0)), int(info.min)), int(info.max))
        values = np.full(shape, level).astype(native)
    elif dtype.kind == "b":
        values = rng.random(shape) < 0.5
    elif dtype.kind in "iu":
        info = np.iinfo(native)
        low = max(int(recipe.get("low", 0)), int(info.min))
        high = min(int(recipe.get("high", 2)), int(info.max))
        values = rng.integers(low, max(low, high), size=shape, endpoint=True, dtype=native)
    else:
        scale, offset = float(recipe.get("scale", 1.0)), float(recipe.get("offset", 0.0))
        with np.errstate(over="ignore", invalid="ignore"):
            if kind == "constant":
                values = np.full(shape, offset)
            else:
                values = rng.normal(size=shape) * scale + offset
            if kind == "ints":
                values = np.round(values)
            elif kind == "abs":
                values = np.abs(values)
            if kind == "extreme":
                choices = np.array(_EXTREMES["f"](np.finfo(native)), dtype=native)
                values = choices[rng.integers(0, len(choices), size=shape)]
            elif kind in ("nan", "inf") and values.size:
                bad = rng.random(shape) < 0.3
                bad.flat[0] = True
                values = np.where(bad, np.nan if kind == "nan" else np.inf, values)
            values = values.astype(native)
    values = np.asarray(values, dtype=dtype)
    if values.ndim == 0:  # indexing would turn a 0-d array into a NumPy scalar
        return values
    layout = recipe.get("layout", "C")
    reverse = (slice(None, None, -1),) * len(shape)
    every_other = (slice(None, None, 2),) * len(shape)
    if layout == "F":
        return np.asfortranarray(values)
    if layout == "reversed":
        return np.ascontiguousarray(values[reverse])[reverse]
    if layout == "strided":
        big = np.zeros(tuple(2 * s for s in shape), dtype=dtype)
        big[every_other] = values
        return big[every_other]
    return np.ascontiguousarray(values)


def _maybe_array(value: Any) -> Any:
    return build_array(value) if isinstance(value, dict) and "shape" in value else value


# ------------------------------------------------------------------------------ cases


def case_confusion_matrix(r: dict) -> str:
    from crfseg.metrics import confusion_matrix

    pred, target = build_array(r["pred"]), build_array(r["target"])
    num_classes, ignore_index = r["num_classes"], r["ignore_index"]
    if r.get("torch"):
        import torch

        pred = torch.from_numpy(np.ascontiguousarray(pred, dtype=pred.dtype.newbyteorder("=")))
        target = torch.from_numpy(np.ascontiguousarray(target,
                                                       dtype=target.dtype.newbyteorder("=")))
    matrix = confusion_matrix(pred, target, num_classes, ignore_index)
    matrix = np.asarray(matrix)
    # the oracle, in Python integers (no overflow, any dtype)
    p = np.asarray(pred).astype(object).ravel()
    t = np.asarray(target).astype(object).ravel()
    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    for a, b in zip(t, p):
        a, b = int(a), int(b)
        if a == ignore_index or b == ignore_index:
            continue
        _check(0 <= a < num_classes and 0 <= b < num_classes,
               f"label pair ({a}, {b}) outside [0, {num_classes}) was counted, not refused")
        expected[a, b] += 1
    _check(matrix.dtype == np.int64 and matrix.shape == (num_classes, num_classes),
           f"matrix of dtype {matrix.dtype} and shape {matrix.shape}")
    _check(np.array_equal(matrix, expected), f"matrix {matrix.tolist()} != {expected.tolist()}")
    return f"counted {int(matrix.sum())} pixels"


def case_scores(r: dict) -> str:
    from crfseg import metrics

    matrix = build_array(r["matrix"])
    results = {name: getattr(metrics, name)(matrix) for name in (
        "pixel_accuracy", "mean_pixel_accuracy", "class_accuracy", "iou", "mean_iou",
        "frequency_weighted_iou", "dice", "mean_dice")}
    for name, value in results.items():
        values = np.atleast_1d(np.asarray(value, dtype=np.float64))
        finite = values[~np.isnan(values)]
        _check(np.all((finite >= 0) & (finite <= 1 + 1e-12)), f"{name} = {value} outside [0, 1]")
    m = np.asarray(matrix, dtype=np.float64)
    _check(np.isfinite(m).all() and (m >= 0).all(), "a matrix with NaN, inf or < 0 was accepted")
    return "scores in [0, 1]"


def case_segmentation_metrics(r: dict) -> str:
    from crfseg.metrics import SegmentationMetrics

    names = r.get("class_names")
    if names == "<str>":
        names = "abc"
    metrics = SegmentationMetrics(r["num_classes"], r["ignore_index"], names)
    labels = np.arange(6) % r["num_classes"]
    metrics.update(labels, labels)
    scores = metrics.compute()
    _check(scores["pixel_accuracy"] == 1.0, f"pixel accuracy {scores['pixel_accuracy']}")
    metrics.summary()
    return f"{r['num_classes']} classes"


def _pairwise(spec: Any) -> Any:
    from crfseg.crf import potts, truncated_linear, truncated_quadratic

    if isinstance(spec, dict) and "kind" in spec:
        build = {"potts": potts, "linear": truncated_linear,
                 "quadratic": truncated_quadratic}[spec["kind"]]
        args = [spec["num_labels"], spec["weight"]]
        if spec["kind"] != "potts" and spec.get("truncation") is not None:
            args.append(spec["truncation"])
        return build(*args)
    return build_array(spec)


def _grid_energies(unary: np.ndarray, matrix: np.ndarray, weights: tuple) -> np.ndarray:
    """Energy of every labelling of a tiny grid, in float64 NumPy."""
    num_labels, height, width = unary.shape
    labellings = np.array(list(itertools.product(range(num_labels), repeat=height * width)),
                          dtype=np.int64).reshape(-1, height, width)
    rows, cols = np.indices((height, width))
    energy = unary[labellings, rows, cols].sum(axis=(1, 2))
    pairs = [((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
             ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
             ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
             ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1)))]
    for (first, second), w in zip(pairs, weights):
        a = labellings[(Ellipsis, *first)]
        b = labellings[(Ellipsis, *second)]
        energy = energy + (w * matrix[a, b]).sum(axis=(1, 2))
    return energy


def case_grid(r: dict) -> str:
    from crfseg.crf import GridCRF
    from crfseg.crf.pairwise import default_edge_weights

    unary = build_array(r["unary"])
    weights = r.get("edge_weights")
    if weights is not None:
        weights = [build_array(w) for w in weights]
    crf = GridCRF(_pairwise(r["pairwise"]), connectivity=r.get("connectivity", 4),
                  edge_weights=weights)
    init = _maybe_array(r.get("init"))
    result = crf.minimize(unary, method=r.get("method", "auto"), max_iter=r.get("max_iter"),
                          init=init, tol=r.get("tol", 1e-5))
    num_labels, *spatial = unary.shape
    labels = result.labels
    _check(labels.shape == tuple(spatial) and labels.dtype == np.int32,
           f"labels of shape {labels.shape} and dtype {labels.dtype}")
    _check(labels.min() >= 0 and labels.max() < num_labels, "labels out of range")
    _check(np.isfinite(result.energy), f"energy {result.energy}")
    recomputed = crf.energy(labels, unary)
    scale = max(1.0, abs(recomputed))
    _check(abs(recomputed - result.energy) <= 1e-9 * scale,
           f"reported energy {result.energy} != energy of the labels {recomputed}")
    if len(spatial) == 3:
        if num_labels ** int(np.prod(spatial)) <= 256:
            # volumes: the kernel's energy of every labelling (tested against NumPy elsewhere)
            minimum = min(crf.energy(np.array(x, dtype=np.int64).reshape(spatial), unary)
                          for x in itertools.product(range(num_labels),
                                                     repeat=int(np.prod(spatial))))
            _check(result.energy >= minimum - 1e-9 * scale,
                   f"energy {result.energy} below the brute-force minimum {minimum}")
            if result.method == "graphcut" or (result.method == "swap" and num_labels == 2):
                _check(result.energy <= minimum + 1e-9 * scale,
                       f"{result.method} energy {result.energy} above the minimum {minimum}")
        return f"{result.method}: energy {result.energy:.6g}"
    height, width = spatial
    if num_labels ** (height * width) <= 4096:
        arrays = tuple(weights) if weights is not None else default_edge_weights(
            height, width, crf.connectivity)
        unary64 = np.asarray(unary, dtype=np.float64)
        matrix = crf.pairwise.matrix
        minimum = float(_grid_energies(unary64, matrix, arrays).min())
        # sums in another order round differently: allow for it, relative to the terms' size
        reach = float(np.abs(unary64).max(axis=0).sum() + sum(np.sum(w) for w in arrays)
                      * np.abs(matrix).max())
        _check(result.energy >= minimum - 1e-9 * reach,
               f"energy {result.energy} below the brute-force minimum {minimum}")
        # with two labels one swap move is the whole binary problem: swap is exact too
        if result.method == "graphcut" or (result.method == "swap" and num_labels == 2):
            _check(result.energy <= minimum + 1e-9 * reach,
                   f"{result.method} energy {result.energy} above the minimum {minimum}")
        if result.lower_bound is not None:
            # TRW-S keeps float32 messages
            _check(result.lower_bound <= minimum + 1e-6 * reach,
                   f"lower bound {result.lower_bound} above the minimum {minimum}")
    return f"{result.method}: energy {result.energy:.6g}"


def case_maxflow(r: dict) -> str:
    from crfseg.crf import maxflow

    edges = build_array(r["edges"])
    caps, source, sink = (build_array(r[k]) for k in ("caps", "source", "sink"))
    rev = _maybe_array(r.get("rev"))
    flow, sink_side = maxflow(edges, caps, source, sink, rev)
    n = np.asarray(source).shape[0]
    _check(np.isfinite(flow) and flow >= 0, f"flow {flow}")
    _check(sink_side.shape == (n,) and sink_side.dtype == bool, "sink_side shape or dtype")

    def cut(side: np.ndarray) -> float:
        e = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        c = np.asarray(caps, dtype=np.float64)
        rc = np.zeros(len(e)) if rev is None else np.asarray(rev, dtype=np.float64)
        value = float(np.asarray(source, np.float64)[side].sum()
                      + np.asarray(sink, np.float64)[~side].sum())
        if len(e):
            value += float(c[~side[e[:, 0]] & side[e[:, 1]]].sum()
                           + rc[side[e[:, 0]] & ~side[e[:, 1]]].sum())
        return value

    value = cut(sink_side)
    _check(abs(value - flow) <= 1e-9 * max(1.0, flow), f"cut {value} != flow {flow}")
    if n <= 10:
        best = min(cut(np.array(bits, dtype=bool))
                   for bits in itertools.product((False, True), repeat=n))
        _check(abs(best - flow) <= 1e-9 * max(1.0, best), f"flow {flow} != min cut {best}")
    return f"flow {flow:.6g}"


def case_split_and_merge(r: dict) -> str:
    from crfseg.classical import gray_level_segment, split_and_merge

    image = build_array(r["image"])
    predicate = r.get("predicate", "range")
    if isinstance(predicate, str) and predicate.startswith("returns:"):
        answer = json.loads(predicate[len("returns:"):])
        answer = float("nan") if answer == "nan" else answer
        predicate = lambda *stats: answer  # noqa: E731
    options = {k: r[k] for k in ("threshold", "sigma", "min_size", "min_area", "connectivity")
               if k in r}
    if r.get("gray_levels"):
        options.pop("threshold", None)
        options.pop("sigma", None)
        options.pop("min_size", None)
        classes, labels = gray_level_segment(image, classes=r.get("classes", 2), **options)
    else:
        labels = split_and_merge(image, predicate=predicate, **options)
    _check(labels.shape == image.shape[:2] and labels.dtype == np.int32,
           f"labels of shape {labels.shape} and dtype {labels.dtype}")
    _check(labels.min() == 1 and np.array_equal(np.unique(labels),
                                                np.arange(1, labels.max() + 1)),
           "region labels are not 1..K")
    return f"{labels.max()} regions"


def case_dense(r: dict) -> str:
    from crfseg.crf import DenseCRF

    scores, image = build_array(r["scores"]), build_array(r["image"])
    input_type = r.get("input_type", "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        crf = DenseCRF(backend=r.get("backend", "pydensecrf"), **r.get("settings", {}))
        probs = crf.refine(scores, image, input_type, **r.get("options", {}))
    probs = np.asarray(probs)
    _check(np.isfinite(probs).all(), "probabilities with NaN or inf")
    axis = -4 if r.get("options", {}).get("spacing") else -3
    _check(np.allclose(probs.sum(axis), 1.0, atol=1e-3), "probabilities do not sum to 1")
    _check(probs.min() >= -1e-6 and probs.max() <= 1 + 1e-6, "probabilities outside [0, 1]")
    return f"probabilities of shape {probs.shape}"


def case_segfault(r: dict) -> str:
    """Kill the child as a memory fault would: the suite's own check that crashes are caught."""
    import signal

    os.kill(os.getpid(), signal.SIGSEGV)
    return "survived"


def case_lattice(r: dict) -> str:
    import torch

    from crfseg.crf import PermutohedralLattice

    def tensor(recipe: dict) -> torch.Tensor:
        a = build_array(recipe)
        return torch.from_numpy(np.array(a, dtype=a.dtype.newbyteorder("=")))

    features, values = tensor(r["features"]), tensor(r["values"])
    engine, normalization = r.get("engine", "auto"), r.get("normalization", "none")
    lattice = PermutohedralLattice(features, engine=engine,
                                   deterministic=r.get("deterministic", False))
    out = lattice.filter(values, normalization=normalization)
    _check(out.shape == values.shape, f"output of shape {tuple(out.shape)}")
    finite = bool(torch.isfinite(values).all())
    if finite:  # filter passes NaN in the values through
        _check(bool(torch.isfinite(out).all()), "output with NaN or inf for finite values")
    ones = torch.ones_like(values)
    mean = lattice.filter(ones, normalization="after")
    _check(bool(torch.allclose(mean, ones, atol=1e-3)), "'after' does not map ones to ones")
    if engine != "tensor" and finite:
        # the compiled kernel against the PyTorch construction of the same lattice
        other = PermutohedralLattice(features, engine="tensor").filter(values,
                                                                       normalization=normalization)
        scale = float(values.abs().max()) if values.numel() else 1.0
        _check(bool(torch.allclose(out.double(), other.double(), rtol=1e-3, atol=1e-4 * scale)),
               f"compiled and tensor engines differ by {float((out - other).abs().max()):.3g}")
    return f"{lattice.num_vertices} vertices"


def case_sleep(r: dict) -> str:
    """Take ``seconds``: the suite's own check that hangs are caught."""
    time.sleep(r["seconds"])
    return "woke up"


CASES = {
    "segfault": case_segfault,
    "sleep": case_sleep,
    "lattice": case_lattice,
    "confusion_matrix": case_confusion_matrix,
    "scores": case_scores,
    "segmentation_metrics": case_segmentation_metrics,
    "grid": case_grid,
    "maxflow": case_maxflow,
    "split_and_merge": case_split_and_merge,
    "dense": case_dense,
}


def run_case(name: str, recipe: dict) -> tuple[str, str]:
    """``("ok", summary)``, ``("raised", "Type: message")`` or ``("bug", traceback)``."""
    try:
        return "ok", CASES[name](recipe)
    except CheckFailed as exc:
        return "bug", f"wrong result: {exc}"
    except Exception as exc:  # noqa: BLE001 - every other exception is reported
        kind = type(exc).__name__
        text = f"{kind}: {exc}"
        if kind in ALLOWED or isinstance(exc, (ValueError, TypeError)):
            return "raised", text
        return "bug", "".join(traceback.format_exception(exc))


# ---------------------------------------------------------------------- child process


def _send(fd: int, obj: Any) -> None:
    data = pickle.dumps(obj)
    os.write(fd, struct.pack("<Q", len(data)) + data)


def _read_exactly(fd: int, size: int, deadline: float | None) -> bytes | None:
    chunks = []
    while size:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                raise TimeoutError
        chunk = os.read(fd, size)
        if not chunk:
            return None
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _receive(fd: int, deadline: float | None = None) -> Any:
    header = _read_exactly(fd, 8, deadline)
    if header is None:
        return None
    body = _read_exactly(fd, struct.unpack("<Q", header)[0], deadline)
    return None if body is None else pickle.loads(body)


def serve(read_fd: int, write_fd: int) -> None:
    """The child's loop: read ``(name, recipe)``, answer :func:`run_case`'s verdict."""
    import torch

    torch.set_num_threads(1)
    # a kernel built with CRFSEG_BOUNDSCHECK=1 reports an index out of range inside a
    # noexcept function as an "unraisable" exception: a bug of the case that caused it
    ignored: list[str] = []
    sys.unraisablehook = lambda event: ignored.append(
        f"{type(event.exc_value).__name__}: {event.exc_value} (in {event.object!r})")
    _send(write_fd, "ready")
    while True:
        request = _receive(read_fd)
        if request is None:
            return
        ignored.clear()
        verdict = run_case(*request)
        if ignored:
            verdict = ("bug", "exceptions the kernel could not raise: " + "; ".join(ignored))
        _send(write_fd, verdict)


class Sandbox:
    """A child interpreter, under heap checks, that runs cases until one kills it."""

    def __init__(self, timeout: float = 60.0) -> None:
        self.timeout = timeout
        self.process: subprocess.Popen | None = None

    def _start(self) -> None:
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        code = ("import sys; sys.path.insert(0, sys.argv[1]); import _fuzz_runner; "
                "_fuzz_runner.serve(int(sys.argv[2]), int(sys.argv[3]))")
        self.process = subprocess.Popen(
            [sys.executable, "-c", code, str(Path(__file__).parent), str(to_child_r),
             str(from_child_w)],
            pass_fds=(to_child_r, from_child_w), env={**os.environ, **HEAP_CHECKS},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        os.close(to_child_r)
        os.close(from_child_w)
        if _receive(self._from_child, time.monotonic() + 120.0) != "ready":
            raise RuntimeError(f"the fuzz child did not start: {self._stop()}")

    def _stop(self) -> str:
        """End the child; return how it ended and the tail of its stderr."""
        process, self.process = self.process, None
        if process is None:
            return ""
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        if process.poll() is None:
            process.kill()
        _, err = process.communicate()
        code = process.returncode
        how = f"killed by signal {-code}" if code < 0 else f"exited with {code}"
        return f"{how}; stderr: {err.decode(errors='replace')[-1500:]}"

    def run(self, name: str, recipe: dict) -> tuple[str, str]:
        """Like :func:`run_case`, plus ``("crash", ...)`` and ``("hang", ...)``."""
        if self.process is None or self.process.poll() is not None:
            self._start()
        try:
            _send(self._to_child, (name, recipe))
            answer = _receive(self._from_child, time.monotonic() + self.timeout)
        except TimeoutError:
            return "hang", f"no answer within {self.timeout:g} s; {self._stop()}"
        except BrokenPipeError:
            answer = None
        if answer is None:
            return "crash", self._stop()
        return answer

    def close(self) -> None:
        self._stop()


def reproducer(name: str, recipe: dict) -> str:
    return f"python tests/_fuzz_runner.py {name} '{json.dumps(recipe)}'"


# ------------------------------------------------------------------- test-side helpers


def check_case(sandbox: Sandbox, name: str, recipe: dict) -> tuple[str, str]:
    """The verdict of one case: ``("ok", summary)`` or ``("raised", message)``; else fail.

    ``CRFSEG_FUZZ_LOG=file`` appends every verdict to ``file`` (to see what inputs reach).
    """
    import pytest

    verdict, detail = sandbox.run(name, recipe)
    if os.environ.get("CRFSEG_FUZZ_LOG"):
        with open(os.environ["CRFSEG_FUZZ_LOG"], "a") as log:
            log.write(f"{name}\t{verdict}\t{detail.splitlines()[0][:160]}\n")
    if verdict not in ("ok", "raised"):
        pytest.fail(f"{name}: {verdict}: {detail}\nreproduce with: {reproducer(name, recipe)}",
                    pytrace=False)
    return verdict, detail


def arr(shape, dtype="<f8", values="normal", layout="C", seed=0, **extra) -> dict:
    """An array recipe (see :func:`build_array`)."""
    return {"shape": list(shape), "dtype": dtype, "values": values, "layout": layout,
            "seed": seed, **extra}


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in CASES:
        sys.exit(f"usage: python {sys.argv[0]} {{{','.join(CASES)}}} RECIPE_JSON")
    verdict, detail = run_case(sys.argv[1], json.loads(sys.argv[2]))
    print(verdict, detail)
    sys.exit(0 if verdict in ("ok", "raised") else 1)
