"""Split-and-merge segmentation of gray images (Horowitz & Pavlidis).

The image is split recursively into quadtree blocks until every block is
homogeneous; the leaves then merge on a region adjacency graph, most similar
adjacent pair first, whenever their union is still homogeneous.  The
computation lives in the Cython kernel ``crfseg._split_merge``; this module
validates, converts and calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, overload

import numpy as np

from crfseg import _split_merge as _kernel
from crfseg._validation import (
    check_array,
    check_bool,
    check_choice,
    check_finite,
    check_int,
    check_number,
)

__all__ = [
    "PREDICATES",
    "SplitMergeTree",
    "estimate_noise_sigma",
    "gray_level_segment",
    "split_and_merge",
]

PREDICATES = ("range", "std", "stat")
RegionPredicate = Callable[[int, float, float, float, float], bool]

_KINDS = {"range": 0, "std": 1, "stat": 2}
_CALLABLE_KIND = 3
_DEFAULT_THRESHOLD = {"range": 0.0, "std": 0.0, "stat": 5.0}
# "stat" splits a block unless its variance is within 2 standard errors of sigma^2: in
# doubt, split (merging repairs a needless split, nothing repairs a block that mixes regions)
_SPLIT_Z = 2.0
# Phi^{-1}(3/4): the median absolute value of a standard normal variable
_MAD_TO_SIGMA = 0.6744897501960817
# Pillow's "L" conversion (ITU-R BT.601 luma) in its 16-bit fixed point form
_LUMA_FIXED = (19595, 38470, 7471)
_LUMA = (0.299, 0.587, 0.114)
_EXACT_LIMIT = 2.0**53
_SQUARES_LIMIT = 1e300
_OTSU_BINS = 256


@dataclass(frozen=True)
class SplitMergeTree:
    """The quadtree leaves and the region adjacency graph behind a segmentation.

    Attributes
    ----------
    leaves : (L, 4) ndarray of int32
        Rows ``(top, left, height, width)`` of the quadtree leaves, in the
        depth-first (Z) order of the split: top-left, top-right, bottom-left,
        bottom-right.
    leaf_labels : (L,) ndarray of int32
        Region label (1..K) that each leaf ended in.
    edges : (E, 2) ndarray of int32
        Pairs ``(a, b)``, ``a < b``, of region labels that touch under the
        connectivity used, sorted lexicographically.
    """

    leaves: np.ndarray
    leaf_labels: np.ndarray
    edges: np.ndarray


# --------------------------------------------------------------------------- input


def _as_gray(image: Any, name: str = "image") -> np.ndarray:
    """Validate a gray or RGB image and return a 2-D array (luminance for RGB)."""
    check_array(name, image, allow_tensor=False)
    kind = image.dtype.kind
    if kind not in "biuf":
        raise TypeError(
            f"{name} must hold integer, boolean or floating-point gray levels, "
            f"got dtype {image.dtype}"
        )
    if image.ndim == 3 and image.shape[2] == 3:
        check_finite(name, image)
        return _luminance(image)
    if image.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D gray image (H, W) or an RGB image (H, W, 3), "
            f"got an array of shape {image.shape}"
        )
    if image.size == 0:
        raise ValueError(f"{name} must not be empty, got an array of shape {image.shape}")
    check_finite(name, image)
    return image.astype(np.uint8) if kind == "b" else image


def _luminance(rgb: np.ndarray) -> np.ndarray:
    """ITU-R BT.601 luma; integer RGB is rounded exactly as Pillow's ``convert("L")``."""
    if rgb.shape[0] == 0 or rgb.shape[1] == 0:
        raise ValueError(f"image must not be empty, got an array of shape {rgb.shape}")
    if rgb.dtype.kind in "biu":
        channels = [rgb[..., c].astype(np.int64) for c in range(3)]
        fixed = sum(w * c for w, c in zip(_LUMA_FIXED, channels))
        return (fixed + 0x8000) >> 16
    channels = [rgb[..., c].astype(np.float64) for c in range(3)]
    return sum(w * c for w, c in zip(_LUMA, channels))


@dataclass(frozen=True)
class _Centred:
    """Gray levels minus a shift, and what rounding the kernel must allow for."""

    x: np.ndarray  # (H, W) float64, C-contiguous
    shift: float
    scale: float  # largest |x|
    exact: bool  # every sum the kernel forms is an exact float64 integer


def _centre(gray: np.ndarray) -> _Centred:
    # Centring on the mid-range keeps the sums of squares small; for integer levels the
    # shift is an integer, so adding a constant to the image leaves x unchanged.
    lo, hi = gray.min(), gray.max()
    if gray.dtype.kind in "iu":
        lo, hi = int(lo), int(hi)
        integral = True
        shift: float = (lo + hi) // 2
    else:
        lo, hi = float(lo), float(hi)
        integral = bool(np.all(gray == np.floor(gray)))
        shift = float(math.floor((lo + hi) / 2)) if integral else (lo + hi) / 2
    scale = float(max(hi - shift, shift - lo))
    if scale * scale * gray.size > _SQUARES_LIMIT:
        raise ValueError(
            f"image gray levels span {lo:g} to {hi:g}: too wide for float64 sums of squares "
            "over the image; rescale the image"
        )
    x = np.ascontiguousarray(gray, dtype=np.float64) - shift
    exact = (
        integral
        and max(abs(lo), abs(hi)) < _EXACT_LIMIT
        and scale * scale * gray.size < _EXACT_LIMIT
    )
    return _Centred(x, float(shift), scale, exact)


def _haar_sigma(x: np.ndarray) -> float:
    """Median absolute finest-scale Haar detail / 0.6745 (Donoho & Johnstone)."""
    h, w = x.shape
    if h >= 2 and w >= 2:
        a = x[: h - h % 2, : w - w % 2]
        detail = (a[0::2, 0::2] - a[0::2, 1::2] - a[1::2, 0::2] + a[1::2, 1::2]) / 2.0
    elif max(h, w) >= 2:
        line = x.ravel()
        line = line[: line.size - line.size % 2]
        detail = (line[0::2] - line[1::2]) / math.sqrt(2.0)
    else:
        return 0.0
    return float(np.median(np.abs(detail))) / _MAD_TO_SIGMA


def estimate_noise_sigma(image: np.ndarray) -> float:
    """Standard deviation of additive Gaussian noise in a gray image.

    The robust wavelet estimator of Donoho & Johnstone: the median absolute
    value of the finest diagonal Haar detail coefficients, divided by
    0.6745.  Edges of a piecewise-constant image touch few coefficients, so
    the median ignores them; a noise-free piecewise-constant image gives 0.
    This is the noise level that ``split_and_merge(predicate="stat")`` uses
    when ``sigma`` is not given.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray
        Gray image of any integer or float dtype; RGB is converted to
        luminance as in :func:`split_and_merge`.  An image with one row or
        column uses the 1-D Haar detail along it; a single pixel gives 0.

    Returns
    -------
    sigma : float
        Estimated noise standard deviation, in gray levels of ``image``.

    References
    ----------
    .. [1] D. L. Donoho and I. M. Johnstone, "Ideal spatial adaptation by
       wavelet shrinkage", Biometrika 81(3), 425-455, 1994.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.classical import estimate_noise_sigma
    >>> rng = np.random.default_rng(0)
    >>> image = 100.0 + 10.0 * rng.standard_normal((256, 256))
    >>> round(estimate_noise_sigma(image))
    10
    """
    return _haar_sigma(_centre(_as_gray(image)).x)


# --------------------------------------------------------------------------- segmentation


def _check_rule(
    predicate: str | RegionPredicate, threshold: float | None, sigma: float | None
) -> tuple[int, float]:
    if callable(predicate):
        if threshold is not None:
            raise ValueError(
                "threshold has no meaning with a callable predicate (the callable decides); "
                f"got threshold={threshold!r}"
            )
        if sigma is not None:
            raise ValueError(f"sigma is only used by predicate='stat', got sigma={sigma!r}")
        return _CALLABLE_KIND, 0.0
    if not isinstance(predicate, str):
        raise TypeError(
            "predicate must be one of 'range', 'std', 'stat' or a callable "
            f"(count, sum, sum_sq, min, max) -> bool, got {type(predicate).__name__}"
        )
    check_choice("predicate", predicate, PREDICATES)
    if sigma is not None:
        if predicate != "stat":
            raise ValueError(
                f"sigma is only used by predicate='stat', got sigma={sigma!r} with "
                f"predicate={predicate!r}"
            )
        check_number("sigma", sigma, low=0.0)
    if threshold is None:
        return _KINDS[predicate], _DEFAULT_THRESHOLD[predicate]
    return _KINDS[predicate], check_number("threshold", threshold, low=0.0)


@dataclass(frozen=True)
class _Result:
    labels: np.ndarray  # (H, W) int32, 1..K
    num_regions: int
    leaves: np.ndarray
    leaf_labels: np.ndarray
    leaf_edges: np.ndarray


def _segment(
    data: _Centred,
    kind: int,
    threshold: float,
    sigma: float,
    func: RegionPredicate | None,
    min_size: int,
    min_area: int,
    connectivity: int,
) -> _Result:
    x = data.x
    # sizes beyond the image mean the same as the image's own size, and keep the
    # kernel's integer arithmetic (2 * min_size) far from overflow
    min_size = min(min_size, max(x.shape))
    min_area = min(min_area, x.size + 1)
    eps = np.finfo(np.float64).eps
    err_s = err_ss = tol_mean = tol_var = 0.0
    s_int = ss_int = None
    if kind in (_KINDS["std"], _KINDS["stat"]):
        s_int, ss_int = _kernel.integral_images(x)
        if not data.exact:
            # worst-case rounding of an integral-image entry, a bound on running sums
            growth = (x.shape[0] + x.shape[1] + 4) * eps
            err_s = growth * float(np.abs(x).sum())
            err_ss = growth * float(ss_int[-1, -1])
    if not data.exact:
        tol_mean = 4.0 * eps * data.scale
        tol_var = 8.0 * eps * data.scale * data.scale
    split_threshold = _SPLIT_Z if kind == _KINDS["stat"] else threshold
    leaves = _kernel.split_blocks(x, s_int, ss_int, kind, split_threshold, sigma, data.shift,
                                  min_size, err_s, err_ss, data.scale, func)
    del s_int, ss_int
    count, s, ss, mn, mx = _kernel.leaf_statistics(x, leaves)
    leaf_map = np.empty(x.shape, dtype=np.int32)
    _kernel.paint_leaves(leaves, leaf_map)
    edges = _kernel.leaf_adjacency(leaves, leaf_map, connectivity == 8)
    parent = np.arange(len(leaves), dtype=np.int32)
    rule = (kind, threshold, sigma, data.shift, tol_mean, tol_var, func)
    _kernel.merge_regions(parent, count, s, ss, mn, mx, edges, *rule, 0)
    if min_area > 1:
        _kernel.merge_regions(parent, count, s, ss, mn, mx, edges, *rule, min_area)
    _kernel.resolve_roots(parent)
    num_regions, leaf_labels = _kernel.relabel(leaf_map, parent)
    return _Result(leaf_map, num_regions, leaves, leaf_labels, edges)


def _region_graph(result: _Result) -> np.ndarray:
    pairs = result.leaf_labels[result.leaf_edges].astype(np.int64)
    pairs = pairs[pairs[:, 0] != pairs[:, 1]]
    pairs.sort(axis=1)
    codes = np.unique(pairs[:, 0] * (result.num_regions + 1) + pairs[:, 1])
    return np.stack([codes // (result.num_regions + 1), codes % (result.num_regions + 1)],
                    axis=1).astype(np.int32).reshape(-1, 2)


def _check_sizes(min_size: int, min_area: int, connectivity: int) -> None:
    check_int("min_size", min_size, low=1)
    check_int("min_area", min_area, low=0)
    check_int("connectivity", connectivity)
    check_choice("connectivity", connectivity, (4, 8))


@overload
def split_and_merge(
    image: np.ndarray,
    *,
    predicate: Literal["range", "std", "stat"] | RegionPredicate = ...,
    threshold: float | None = ...,
    sigma: float | None = ...,
    min_size: int = ...,
    min_area: int = ...,
    connectivity: int = ...,
    return_tree: Literal[False] = ...,
) -> np.ndarray: ...


@overload
def split_and_merge(
    image: np.ndarray,
    *,
    predicate: Literal["range", "std", "stat"] | RegionPredicate = ...,
    threshold: float | None = ...,
    sigma: float | None = ...,
    min_size: int = ...,
    min_area: int = ...,
    connectivity: int = ...,
    return_tree: Literal[True],
) -> tuple[np.ndarray, SplitMergeTree]: ...


def split_and_merge(
    image: np.ndarray,
    *,
    predicate: Literal["range", "std", "stat"] | RegionPredicate = "range",
    threshold: float | None = None,
    sigma: float | None = None,
    min_size: int = 1,
    min_area: int = 0,
    connectivity: int = 4,
    return_tree: bool = False,
) -> np.ndarray | tuple[np.ndarray, SplitMergeTree]:
    """Segment a gray image into homogeneous regions by split and merge.

    Split: the whole image is one block; a block that fails the homogeneity
    rule is cut at ``(h // 2, w // 2)`` into four (two when a side cannot be
    cut), for any ``H x W`` without padding or resizing.  Block sums come in
    O(1) from integral images of ``I`` and ``I**2``.  Merge: every leaf is a
    region holding its count, sum, sum of squares, min and max; the most
    similar adjacent pair comes off a heap and merges (union-find) when its
    union passes the rule.  A pair that fails is offered again once either
    region has grown, so leaves of different parents group together, not only
    siblings.  Ties go to the pair joined by the earliest leaf edge, so the
    result is deterministic.

    Rules (``predicate``) and what ``threshold`` means for each:

    ``"range"``
        ``max - min <= threshold`` (the original test; default 0: constant
        regions).  Pairs are ordered by the range of their union.
    ``"std"``
        population standard deviation ``<= threshold`` (default 0).  Pairs
        are ordered by the variance of their union.
    ``"stat"``
        for noisy images.  Two regions merge when ``|mean_a - mean_b| <= k
        sigma sqrt(1/n_a + 1/n_b)``, with ``k = threshold`` (default 5) and
        ``sigma`` given or estimated by :func:`estimate_noise_sigma`.  A block
        stays whole only when its sample variance is within two standard
        errors of the noise variance, ``s^2 <= sigma^2 (1 + 2 sqrt(2 / (n -
        1)))``: in doubt it is split, because merging repairs a needless split
        but nothing repairs a block that mixes two regions.  Pairs are ordered
        by Ward's increase of the squared error, ``n_a n_b / (n_a + n_b)
        (mean_a - mean_b)^2``.  The default ``k = 5`` rather than 3: greedy
        merging makes many tests and lets fragments whose means agree by
        chance grow first, so a 3-sigma test leaves true regions in pieces
        (measured in ``benchmarks/bench_split_merge.py``).
    callable
        ``predicate(count, sum, sum_sq, min, max) -> bool`` on the gray levels
        of a block or of the union of two regions; called once per block and
        per candidate pair, so it is much slower than the built-in rules.
        Any answer other than a ``bool`` (or ``numpy.bool_``) raises ``TypeError``.
        Pairs are ordered as for ``"stat"``.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray
        Gray image of any integer, boolean or float dtype, any size.  An RGB
        image is converted to ITU-R BT.601 luminance ``0.299 R + 0.587 G +
        0.114 B``; integer RGB is rounded to integers exactly as Pillow's
        ``Image.convert("L")`` does.
    predicate : {"range", "std", "stat"} or callable, optional
        Homogeneity rule, see above.
    threshold : float, optional
        Non-negative limit of the rule (see above); must be left out with a
        callable.
    sigma : float, optional
        Noise standard deviation for ``"stat"``; estimated from the image
        when not given.
    min_size : int, optional
        Smallest block side the split produces: a side is cut only when both
        halves keep at least ``min_size`` pixels.  Blocks that cannot be cut
        stay whole even when they fail the rule.
    min_area : int, optional
        Clean-up: after merging, every region of fewer than ``min_area``
        pixels merges into its most similar neighbour (a heap over the pairs
        that involve a small region), whatever the rule says.
    connectivity : {4, 8}, optional
        Which regions are adjacent: sharing a side (4), or also a corner (8).
        Regions are 4- or 8-connected accordingly.
    return_tree : bool, optional
        Also return the quadtree leaves and the region adjacency graph.

    Returns
    -------
    labels : (H, W) ndarray of int32
        Region labels 1..K, numbered in raster order of each region's first
        pixel.
    tree : SplitMergeTree
        Only with ``return_tree=True``.

    Notes
    -----
    Without clean-up (``min_area <= 1``) and with ``min_size = 1`` every
    region passes the rule (``"range"``, ``"std"``, callable).  Adding a
    constant to an integer image changes nothing.  On integer images every
    sum is exact; on non-integer float images comparisons allow for float64
    rounding (a few units in the last place per pixel), and a split decision
    that rounding of the integral images could flip is taken again from the
    block's pixels.  Merging re-scores a pair when it reaches the top of the
    heap after either region changed, which keeps each merge O(log E); the
    order is exactly most-similar-first for ``"range"`` (whose score only
    grows) and can differ from re-scoring every neighbour at each merge for
    the other rules when a merge makes a pair more similar.

    References
    ----------
    .. [1] S. L. Horowitz and T. Pavlidis, "Picture segmentation by a tree
       traversal algorithm", Journal of the ACM 23(2), 368-388, 1976.
    .. [2] J. H. Ward, "Hierarchical grouping to optimize an objective
       function", Journal of the American Statistical Association 58(301),
       236-244, 1963.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.classical import split_and_merge
    >>> image = np.zeros((5, 7), dtype=np.uint8)
    >>> image[:, 3:] = 200
    >>> split_and_merge(image)
    array([[1, 1, 1, 2, 2, 2, 2],
           [1, 1, 1, 2, 2, 2, 2],
           [1, 1, 1, 2, 2, 2, 2],
           [1, 1, 1, 2, 2, 2, 2],
           [1, 1, 1, 2, 2, 2, 2]], dtype=int32)
    >>> labels, tree = split_and_merge(image, return_tree=True)
    >>> tree.edges
    array([[1, 2]], dtype=int32)
    """
    gray = _as_gray(image)
    kind, threshold = _check_rule(predicate, threshold, sigma)
    _check_sizes(min_size, min_area, connectivity)
    check_bool("return_tree", return_tree)
    data = _centre(gray)
    noise = 0.0
    if kind == _KINDS["stat"]:
        noise = float(sigma) if sigma is not None else _haar_sigma(data.x)
    func = predicate if kind == _CALLABLE_KIND else None
    result = _segment(data, kind, threshold, noise, func, min_size, min_area, connectivity)
    if not return_tree:
        return result.labels
    return result.labels, SplitMergeTree(result.leaves, result.leaf_labels, _region_graph(result))


def _check_thresholds(thresholds: Any) -> np.ndarray:
    if isinstance(thresholds, (str, bytes)) or not isinstance(thresholds, (Sequence, np.ndarray)):
        raise TypeError(
            f"thresholds must be a sequence of numbers, got {type(thresholds).__name__}"
        )
    values = np.asarray(thresholds)
    if values.ndim != 1 or values.size == 0:
        raise ValueError(
            f"thresholds must be a non-empty 1-D sequence, got shape {values.shape}"
        )
    if values.dtype.kind not in "iuf":
        raise TypeError(f"thresholds must be real numbers, got dtype {values.dtype}")
    values = values.astype(np.float64)
    check_finite("thresholds", values)
    if np.any(np.diff(values) <= 0):
        raise ValueError(f"thresholds must be strictly increasing, got {values.tolist()}")
    return values


def gray_level_segment(
    image: np.ndarray,
    *,
    thresholds: Sequence[float] | np.ndarray | None = None,
    classes: int | None = None,
    min_area: int = 0,
    connectivity: int = 4,
) -> tuple[np.ndarray, np.ndarray]:
    """Semantic split and merge: gray-level rules assign a class to every pixel.

    Pixel ``p`` gets class ``c`` = number of thresholds strictly below
    ``I(p)``, so classes run from 0 to ``len(thresholds)`` and a gray level
    equal to a threshold belongs to the lower class (as multi-Otsu means its
    thresholds: the last level of each class).  The thresholds are given, or
    found by multi-Otsu with ``classes`` classes: on the integer levels
    themselves when an integer image spans at most 256 of them, else on a
    256-bin histogram (the thresholds are then the upper edges of the last
    bin of each class).
    Blocks are split until all their pixels share a class, then adjacent
    blocks of the same class merge; every region holds one class.

    Parameters
    ----------
    image : (H, W) or (H, W, 3) ndarray
        Gray image of any integer, boolean or float dtype (RGB is converted
        to luminance as in :func:`split_and_merge`).
    thresholds : sequence of float, optional
        Strictly increasing gray-level boundaries between classes.
    classes : int, optional
        Number of classes (>= 2) for multi-Otsu thresholds
        (``skimage.filters.threshold_multiotsu``).  Give exactly one of
        ``thresholds`` and ``classes``.
    min_area : int, optional
        Regions smaller than this merge into the neighbour of the nearest
        class, and take the class that most of their pixels have.
    connectivity : {4, 8}, optional
        Adjacency of regions, as in :func:`split_and_merge`.

    Returns
    -------
    class_map : (H, W) ndarray of int32
        Class of every pixel, 0..C-1.
    regions : (H, W) ndarray of int32
        Region labels 1..K in raster order; each region has a single class.

    References
    ----------
    .. [1] S. L. Horowitz and T. Pavlidis, "Picture segmentation by a tree
       traversal algorithm", Journal of the ACM 23(2), 368-388, 1976.
    .. [2] P.-S. Liao, T.-S. Chen and P.-C. Chung, "A fast algorithm for
       multilevel thresholding", Journal of Information Science and
       Engineering 17(5), 713-727, 2001.

    Examples
    --------
    >>> import numpy as np
    >>> from crfseg.classical import gray_level_segment
    >>> image = np.array([[10, 10, 200, 200],
    ...                   [10, 90, 200, 200],
    ...                   [10, 10, 10, 200]], dtype=np.uint8)
    >>> class_map, regions = gray_level_segment(image, thresholds=[50, 150])
    >>> class_map
    array([[0, 0, 2, 2],
           [0, 1, 2, 2],
           [0, 0, 0, 2]], dtype=int32)
    >>> regions
    array([[1, 1, 2, 2],
           [1, 3, 2, 2],
           [1, 1, 1, 2]], dtype=int32)
    """
    gray = _as_gray(image)
    if (thresholds is None) == (classes is None):
        raise ValueError(
            "give exactly one of thresholds and classes, got "
            f"thresholds={thresholds!r} and classes={classes!r}"
        )
    _check_sizes(1, min_area, connectivity)
    if thresholds is not None:
        bounds = _check_thresholds(thresholds)
    else:
        check_int("classes", classes, low=2)
        bounds = _multiotsu(gray, classes)
    class_map = np.searchsorted(bounds, gray, side="left").astype(np.int32)
    data = _Centred(class_map.astype(np.float64), 0.0, float(len(bounds)), True)
    result = _segment(data, _KINDS["range"], 0.0, 0.0, None, 1, min_area, connectivity)
    regions = result.labels
    if min_area > 1:
        # a cleaned-up region takes the class of most of its pixels
        votes = np.bincount(
            regions.ravel().astype(np.int64) * (len(bounds) + 1) + class_map.ravel(),
            minlength=(result.num_regions + 1) * (len(bounds) + 1),
        ).reshape(result.num_regions + 1, len(bounds) + 1)
        class_map = votes.argmax(axis=1).astype(np.int32)[regions]
    return class_map, regions


def _multiotsu(gray: np.ndarray, classes: int) -> np.ndarray:
    from skimage.filters import threshold_multiotsu

    levels = np.unique(gray).size
    if levels < classes:
        raise ValueError(
            f"classes={classes} needs an image with at least {classes} distinct gray levels, "
            f"got {levels}"
        )
    if gray.dtype.kind in "iu" and int(gray.max()) - int(gray.min()) < _OTSU_BINS:
        return threshold_multiotsu(gray, classes=classes).astype(np.float64)
    values = gray.astype(np.float64)
    centres = threshold_multiotsu(values, classes=classes, nbins=_OTSU_BINS)
    # skimage returns the centre of the last bin of each class; its upper edge keeps the
    # whole bin in the class, as the histogram partition means
    return centres + (values.max() - values.min()) / (2 * _OTSU_BINS)
