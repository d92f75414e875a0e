"""crfseg.classical: split and merge against pure-Python oracles, its properties, every error."""

import doctest
import math

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import ndimage
from skimage.measure import label as connected_components

import crfseg.classical
from crfseg.classical import (
    PREDICATES,
    SplitMergeTree,
    estimate_noise_sigma,
    gray_level_segment,
    split_and_merge,
)
from crfseg.classical import split_merge as split_merge_module
from crfseg.classical._evaluation import (
    add_noise,
    adjusted_rand_index,
    boundary_f1,
    region_boundaries,
    variation_of_information,
    voronoi_levels,
)

SPLIT_Z = 2.0  # the documented split test of "stat": within 2 standard errors of sigma^2

# --------------------------------------------------------------------------- oracles


def block_passes(block, predicate, threshold, sigma):
    """The homogeneity test of one block, straight from its pixels."""
    v = block.astype(np.float64)
    n = v.size
    if callable(predicate):
        return bool(predicate(n, v.sum(), (v * v).sum(), v.min(), v.max()))
    if predicate == "range":
        return v.max() - v.min() <= threshold
    if predicate == "std":
        return v.var() <= threshold * threshold
    if n == 1:
        return True
    return v.var(ddof=1) <= sigma * sigma * (1 + SPLIT_Z * math.sqrt(2 / (n - 1)))


def oracle_leaves(image, predicate="range", threshold=0.0, sigma=0.0, min_size=1):
    """Recursive quadtree split, leaves in Z order."""
    leaves = []

    def visit(t, l, h, w):
        cut_h, cut_w = h >= 2 * min_size, w >= 2 * min_size
        if not (cut_h or cut_w) or block_passes(image[t:t + h, l:l + w], predicate, threshold,
                                                sigma):
            leaves.append((t, l, h, w))
            return
        h1 = h // 2 if cut_h else h
        w1 = w // 2 if cut_w else w
        visit(t, l, h1, w1)
        if cut_w:
            visit(t, l + w1, h1, w - w1)
        if cut_h:
            visit(t + h1, l, h - h1, w1)
        if cut_h and cut_w:
            visit(t + h1, l + w1, h - h1, w - w1)

    visit(0, 0, *image.shape)
    return np.array(leaves)


def oracle_leaf_edges(leaves, shape, diagonal):
    """Leaf pairs in the documented order: per leaf, right side top to bottom, bottom side
    left to right, then the bottom-left and bottom-right corners."""
    leaf_map = np.empty(shape, dtype=np.int64)
    for k, (t, l, h, w) in enumerate(leaves):
        leaf_map[t:t + h, l:l + w] = k
    height, width = shape
    edges = []
    for k, (t, l, h, w) in enumerate(leaves):
        found = []
        if l + w < width:
            found += list(dict.fromkeys(leaf_map[t:t + h, l + w].tolist()))
        if t + h < height:
            found += list(dict.fromkeys(leaf_map[t + h, l:l + w].tolist()))
            for corner, beside, above in (((t + h, l - 1), (t + h, l), (t + h - 1, l - 1)),
                                          ((t + h, l + w), (t + h, l + w - 1), (t + h - 1, l + w))):
                if diagonal and 0 <= corner[1] < width:
                    q = leaf_map[corner]
                    if q != leaf_map[beside] and q != leaf_map[above]:
                        found.append(q)
        edges += [(min(k, q), max(k, q)) for q in found]
    return edges


def oracle_merge(image, leaves, edges, threshold, min_area=0):
    """Eager greedy merging for the range rule: at every step, among adjacent region pairs
    that have not failed since either region last changed, the pair with the smallest union
    range (ties: the smallest edge index joining them) merges if its range <= threshold.
    Then, with min_area, pairs involving a region smaller than min_area merge the same way,
    unconditionally.  Returns the root (smallest leaf index) of every leaf."""
    v = image.astype(np.float64)
    parent = list(range(len(leaves)))

    def find(a):
        while parent[a] != a:
            a = parent[a]
        return a

    lo = [v[t:t + h, l:l + w].min() for t, l, h, w in leaves]
    hi = [v[t:t + h, l:l + w].max() for t, l, h, w in leaves]
    size = [h * w for _, _, h, w in leaves]
    failed = set()

    def candidates(cleanup):
        best = {}
        for eid, (a, b) in enumerate(edges):
            ra, rb = sorted((find(a), find(b)))
            if ra == rb or (ra, rb) in failed or (ra, rb) in best:
                continue
            if cleanup and size[ra] >= min_area and size[rb] >= min_area:
                continue
            best[(ra, rb)] = (max(hi[ra], hi[rb]) - min(lo[ra], lo[rb]), eid)
        return best

    def merge(ra, rb):
        parent[rb] = ra
        lo[ra], hi[ra], size[ra] = min(lo[ra], lo[rb]), max(hi[ra], hi[rb]), size[ra] + size[rb]
        for pair in [p for p in failed if ra in p or rb in p]:
            failed.discard(pair)

    for cleanup in (False, True):
        if cleanup and min_area <= 1:
            break
        failed.clear()
        while True:
            best = candidates(cleanup)
            if not best:
                break
            (ra, rb), (key, _) = min(best.items(), key=lambda item: item[1])
            if cleanup or key <= threshold:
                merge(ra, rb)
            else:
                failed.add((ra, rb))
    return np.array([find(k) for k in range(len(leaves))])


def canonical(labels):
    """Relabel 1..K in raster order of first pixels (the documented numbering)."""
    _, first, inverse = np.unique(labels.ravel(), return_index=True, return_inverse=True)
    order = np.argsort(np.argsort(first))
    return (order[inverse] + 1).reshape(labels.shape).astype(np.int32)


def brute_region_graph(labels, connectivity):
    pairs = set()
    shifts = [(0, 1), (1, 0)] + ([(1, 1), (1, -1)] if connectivity == 8 else [])
    h, w = labels.shape
    for di, dj in shifts:
        for i in range(h):
            for j in range(w):
                if 0 <= i + di < h and 0 <= j + dj < w:
                    a, b = labels[i, j], labels[i + di, j + dj]
                    if a != b:
                        pairs.add((min(a, b), max(a, b)))
    return sorted(pairs)


def smooth_image(rng, shape=(37, 53), noise=6.0):
    """Integer image with structure at several scales: gradients, a disk and noise."""
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    base = 60 + 2.0 * cols + 1.2 * rows
    base[(rows - shape[0] / 2) ** 2 + (cols - shape[1] / 3) ** 2 < (shape[0] / 4) ** 2] += 70
    return np.clip(np.rint(base + noise * rng.standard_normal(shape)), 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- kernel vs oracles


@pytest.mark.parametrize(
    ("predicate", "threshold"),
    [("range", 0.0), ("range", 25.0), ("std", 4.5), ("std", 9.25), ("stat", 5.0)],
)
@pytest.mark.parametrize("shape", [(37, 53), (16, 16), (1, 29), (23, 1), (5, 3)])
def test_leaves_match_recursive_oracle(rng, predicate, threshold, shape):
    image = smooth_image(rng, shape)
    sigma = 4.0 if predicate == "stat" else None
    _, tree = split_and_merge(image, predicate=predicate, threshold=threshold, sigma=sigma,
                              return_tree=True)
    expected = oracle_leaves(image, predicate, threshold, sigma or 0.0)
    np.testing.assert_array_equal(tree.leaves, expected)
    assert tree.leaves.dtype == np.int32


def test_leaves_match_oracle_for_a_callable_and_min_size(rng):
    image = smooth_image(rng)

    def predicate(count, total, total_sq, low, high):
        return high - low <= 12 and count <= 64

    for min_size in (1, 2, 3, 7):
        _, tree = split_and_merge(image, predicate=predicate, min_size=min_size,
                                  return_tree=True)
        np.testing.assert_array_equal(tree.leaves,
                                      oracle_leaves(image, predicate, min_size=min_size))


def test_float_image_leaves_match_oracle(rng):
    image = rng.uniform(-3.0, 7.0, size=(19, 26)) ** 2
    for predicate, threshold in (("range", 4.0), ("std", 2.5)):
        _, tree = split_and_merge(image, predicate=predicate, threshold=threshold,
                                  return_tree=True)
        np.testing.assert_array_equal(tree.leaves, oracle_leaves(image, predicate, threshold))


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("threshold", [0.0, 6.0, 20.0, 45.0])
@pytest.mark.parametrize("min_area", [0, 5])
def test_range_merging_matches_eager_oracle(rng, connectivity, threshold, min_area):
    image = smooth_image(rng, (15, 19), noise=8.0) // 4
    labels, tree = split_and_merge(image, threshold=threshold, connectivity=connectivity,
                                   min_area=min_area, return_tree=True)
    edges = oracle_leaf_edges(tree.leaves, image.shape, connectivity == 8)
    roots = oracle_merge(image, tree.leaves, edges, threshold, min_area)
    expected = np.empty(image.shape, dtype=np.int64)
    for (t, l, h, w), root in zip(tree.leaves, roots):
        expected[t:t + h, l:l + w] = root
    np.testing.assert_array_equal(labels, canonical(expected))


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("predicate", ["range", "std", "stat"])
def test_region_graph_is_the_brute_force_adjacency(rng, predicate, connectivity):
    image = smooth_image(rng, (24, 31), noise=10.0)
    threshold = {"range": 20.0, "std": 6.0, "stat": 5.0}[predicate]
    labels, tree = split_and_merge(image, predicate=predicate, threshold=threshold,
                                   connectivity=connectivity, return_tree=True)
    assert isinstance(tree, SplitMergeTree)
    assert tree.edges.dtype == np.int32
    assert [tuple(e) for e in tree.edges.tolist()] == brute_region_graph(labels, connectivity)
    # the leaves tile the image and carry the labels of their pixels
    cover = np.zeros(image.shape, dtype=int)
    for (t, l, h, w), lab in zip(tree.leaves, tree.leaf_labels):
        cover[t:t + h, l:l + w] += 1
        assert np.all(labels[t:t + h, l:l + w] == lab)
    assert np.all(cover == 1)


# --------------------------------------------------------------------------- properties


@pytest.mark.parametrize("predicate", [*PREDICATES, "callable"])
@pytest.mark.parametrize("shape", [(1, 1), (1, 17), (17, 1), (31, 45), (64, 64)])
def test_constant_image_is_one_region(predicate, shape):
    image = np.full(shape, 77, dtype=np.uint8)
    kwargs = {"predicate": (lambda n, s, ss, lo, hi: hi == lo) if predicate == "callable"
              else predicate}
    labels = split_and_merge(image, **kwargs)
    assert labels.shape == shape and labels.dtype == np.int32
    assert np.all(labels == 1)


@pytest.mark.parametrize("shape", [(1, 40), (40, 1), (9, 14), (33, 65), (64, 64)])
@pytest.mark.parametrize("predicate", PREDICATES)
def test_step_edge_gives_exactly_two_regions(shape, predicate):
    h, w = shape
    rows, cols = np.mgrid[:h, :w]
    for step in ([cols >= w // 3] if h == 1 else [rows >= h // 3] if w == 1 else
                 [cols >= w // 3, rows >= 2 * h // 3, cols > rows]):
        image = np.where(step, 180, 30).astype(np.uint8)
        labels = split_and_merge(image, predicate=predicate)
        assert labels.shape == shape
        assert labels.max() == 2
        np.testing.assert_array_equal(labels, np.where(step, 2, 1) if not step[0, 0] else
                                      np.where(step, 1, 2))


@pytest.mark.parametrize("predicate", PREDICATES)
@pytest.mark.parametrize("shape", [(1, 1), (1, 13), (13, 1), (3, 2), (17, 29), (50, 31)])
def test_any_shape_keeps_its_shape_and_numbering(rng, predicate, shape):
    image = rng.integers(0, 256, size=shape).astype(np.uint8)
    labels = split_and_merge(image, predicate=predicate, threshold=40.0 if predicate != "stat"
                             else None)
    assert labels.shape == shape and labels.dtype == np.int32
    assert labels.min() == 1
    np.testing.assert_array_equal(np.unique(labels), np.arange(1, labels.max() + 1))
    np.testing.assert_array_equal(labels, canonical(labels))


@pytest.mark.parametrize("predicate", PREDICATES)
@pytest.mark.parametrize("min_area", [0, 6])
def test_every_region_is_connected(rng, predicate, min_area):
    image = smooth_image(rng, (40, 47), noise=12.0)
    four = ndimage.generate_binary_structure(2, 1)
    eight = ndimage.generate_binary_structure(2, 2)
    for connectivity, structure in ((4, four), (8, eight)):
        labels = split_and_merge(image, predicate=predicate, threshold=None if
                                 predicate == "stat" else 15.0, connectivity=connectivity,
                                 min_area=min_area)
        for region in range(1, labels.max() + 1):
            assert ndimage.label(labels == region, structure=structure)[1] == 1


def test_eight_connectivity_joins_diagonal_neighbours():
    image = np.array([[0, 9, 9], [9, 0, 9], [9, 9, 0]], dtype=np.uint8)
    assert split_and_merge(image, connectivity=4).max() == 5
    labels = split_and_merge(image, connectivity=8)
    assert labels.max() == 2
    assert labels[0, 0] == labels[1, 1] == labels[2, 2]


@pytest.mark.parametrize(("predicate", "threshold"),
                         [("range", 0.0), ("range", 17.0), ("std", 5.5), ("callable", 9.0)])
def test_without_clean_up_every_region_passes_the_predicate(rng, predicate, threshold):
    image = smooth_image(rng, (45, 38), noise=9.0)
    if predicate == "callable":
        rule = "callable"
        labels = split_and_merge(image, predicate=lambda n, s, ss, lo, hi: hi - lo <= threshold)
    else:
        rule = predicate
        labels = split_and_merge(image, predicate=predicate, threshold=threshold)
    assert labels.max() > 3
    for region in range(1, labels.max() + 1):
        values = image[labels == region].astype(np.float64)
        if rule in ("range", "callable"):
            assert values.max() - values.min() <= threshold
        else:
            assert values.std() <= threshold + 1e-9


def test_stat_regions_pass_the_pairwise_test_when_merged(rng):
    # every adjacent pair of final regions fails the merge test, or merging would have gone on
    image, _ = voronoi_levels((48, 56), 6, rng)
    noisy = add_noise(image, 6.0, rng)
    sigma = estimate_noise_sigma(noisy)
    labels, tree = split_and_merge(noisy, predicate="stat", threshold=5.0, return_tree=True)
    for a, b in tree.edges:
        va = noisy[labels == a].astype(np.float64)
        vb = noisy[labels == b].astype(np.float64)
        bound = 5.0 * sigma * math.sqrt(1 / va.size + 1 / vb.size)
        assert abs(va.mean() - vb.mean()) > bound


@pytest.mark.parametrize("predicate", ["range", "std"])
def test_larger_threshold_never_gives_more_regions(rng, predicate):
    for _ in range(3):
        image = smooth_image(rng, (48, 61), noise=float(rng.uniform(2, 15)))
        counts = [split_and_merge(image, predicate=predicate, threshold=t).max()
                  for t in (0, 1, 3, 6, 10, 15, 25, 40, 70, 120, 255)]
        assert counts == sorted(counts, reverse=True)
        assert counts[-1] == 1


def test_larger_k_never_gives_more_regions_with_stat(rng):
    image, _ = voronoi_levels((64, 64), 10, rng)
    noisy = add_noise(image, 8.0, rng)
    counts = [split_and_merge(noisy, predicate="stat", threshold=k, sigma=8.0).max()
              for k in (2.0, 3.0, 4.0, 5.0, 7.0)]
    assert counts == sorted(counts, reverse=True)


@pytest.mark.parametrize("predicate", PREDICATES)
@pytest.mark.parametrize("min_area", [0, 8])
def test_adding_a_constant_changes_nothing(rng, predicate, min_area):
    image = smooth_image(rng, (33, 40), noise=10.0)
    kwargs = {"predicate": predicate, "min_area": min_area,
              "threshold": {"range": 12.0, "std": 4.0, "stat": 4.0}[predicate]}
    reference = split_and_merge(image, **kwargs)
    for shifted in (image.astype(np.int32) + 1000, image.astype(np.int16) - 300,
                    image.astype(np.float64) + 2.0**20, image.astype(np.float32) - 64.0):
        np.testing.assert_array_equal(split_and_merge(shifted, **kwargs), reference)


def test_results_are_deterministic_and_independent_of_memory_layout(rng):
    image = smooth_image(rng, (50, 44), noise=15.0)
    for predicate in PREDICATES:
        first = split_and_merge(image, predicate=predicate, min_area=4)
        again = split_and_merge(image.copy(), predicate=predicate, min_area=4)
        fortran = split_and_merge(np.asfortranarray(image), predicate=predicate, min_area=4)
        strided = split_and_merge(np.repeat(image, 2, axis=1)[:, ::2], predicate=predicate,
                                  min_area=4)
        for other in (again, fortran, strided):
            np.testing.assert_array_equal(first, other)


def test_same_levels_in_every_dtype_give_the_same_regions(rng):
    image = smooth_image(rng, (30, 30), noise=10.0) // 2
    reference = split_and_merge(image, threshold=9.0)
    for dtype in (np.int8, np.uint16, np.int64, np.uint64, np.float32, np.float64):
        np.testing.assert_array_equal(split_and_merge(image.astype(dtype), threshold=9.0),
                                      reference)
    mask = image > 60
    np.testing.assert_array_equal(split_and_merge(mask), split_and_merge(mask.astype(np.uint8)))


def test_zero_threshold_on_non_integer_floats_finds_constant_regions(rng):
    levels = np.array([0.1, 0.3, 1 / 3, 2.7e-5])
    cells = rng.integers(0, 4, size=(6, 7)).repeat(5, axis=0).repeat(6, axis=1)
    image = levels[cells] * 1e3 + 1e6
    truth = connected_components(cells, background=-1, connectivity=1)
    for predicate in PREDICATES:
        labels = split_and_merge(image, predicate=predicate, threshold=0.0,
                                 sigma=0.0 if predicate == "stat" else None)
        assert adjusted_rand_index(truth, labels) == 1.0
        assert labels.max() == truth.max()


def test_rgb_is_converted_like_pillow_luminance(rng):
    rgb = rng.integers(0, 256, size=(20, 23, 3), dtype=np.uint8)
    rgb[5:15, 4:18] = (200, 40, 90)
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(split_and_merge(rgb, threshold=30.0),
                                  split_and_merge(gray, threshold=30.0))
    float_rgb = rgb / 255.0
    luma = float_rgb @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(split_and_merge(float_rgb, threshold=0.1),
                                  split_and_merge(luma, threshold=0.1))


def test_callable_sees_statistics_in_image_units():
    image = np.array([[100, 102], [104, 190]], dtype=np.uint8)
    seen = []

    def predicate(count, total, total_sq, low, high):
        seen.append((count, total, total_sq, low, high))
        return False

    labels = split_and_merge(image, predicate=predicate)
    assert seen[0] == (4, 496.0, 100**2 + 102**2 + 104**2 + 190**2, 100.0, 190.0)
    assert (2, 202.0, 100**2 + 102**2, 100.0, 102.0) in seen  # a candidate union of two leaves
    assert labels.max() == 4


def test_callable_errors_propagate():
    def predicate(count, total, total_sq, low, high):
        raise RuntimeError("predicate broke")

    with pytest.raises(RuntimeError, match="predicate broke"):
        split_and_merge(np.arange(16).reshape(4, 4), predicate=predicate)


@pytest.mark.parametrize("answer", [None, float("nan"), "yes", 1, np.float64(0.0), [True]])
def test_callable_answers_that_are_not_bools_are_refused(answer):
    with pytest.raises(TypeError, match="predicate must return a bool .* got "
                                        f"{type(answer).__name__}"):
        split_and_merge(np.arange(16).reshape(4, 4), predicate=lambda *stats: answer)


def test_callable_may_answer_numpy_bools():
    image = np.arange(16).reshape(4, 4)
    labels = split_and_merge(image, predicate=lambda n, s, ss, lo, hi: np.bool_(hi - lo <= 0))
    np.testing.assert_array_equal(labels, split_and_merge(image))


def test_sizes_beyond_the_image_and_c_integers_mean_the_image_size(rng):
    image = rng.integers(0, 4, (9, 13))
    for min_size in (7, 2**31, 2**62, 2**63, 2**70):
        np.testing.assert_array_equal(split_and_merge(image, min_size=min_size),
                                      split_and_merge(image, min_size=13))
    whole = np.ones((9, 13), dtype=np.int32)
    for min_area in (9 * 13 + 1, 2**63, 2**80):
        np.testing.assert_array_equal(split_and_merge(image, min_area=min_area), whole)
        np.testing.assert_array_equal(
            gray_level_segment(image, classes=2, min_area=min_area)[1], whole)


def test_min_size_bounds_the_leaves(rng):
    image = rng.integers(0, 256, size=(37, 50)).astype(np.uint8)
    for min_size in (1, 2, 5, 40):
        labels, tree = split_and_merge(image, min_size=min_size, return_tree=True)
        sides = tree.leaves[:, 2:]
        assert sides[:, 0].min() >= min(min_size, 37) and sides[:, 1].min() >= min(min_size, 50)
    assert len(tree.leaves) == 1 and labels.max() == 1  # 37 < 2 * 40 and 50 < 2 * 40


def test_min_area_leaves_no_small_region(rng):
    image = rng.integers(0, 256, size=(40, 35)).astype(np.uint8)
    assert np.bincount(split_and_merge(image, threshold=30.0).ravel())[1:].min() < 10
    for min_area in (2, 10, 100):
        labels = split_and_merge(image, threshold=30.0, min_area=min_area)
        assert np.bincount(labels.ravel())[1:].min() >= min_area
    assert split_and_merge(image, min_area=image.size).max() == 1
    np.testing.assert_array_equal(split_and_merge(image, threshold=30.0, min_area=1),
                                  split_and_merge(image, threshold=30.0))


def test_exact_recovery_of_noise_free_voronoi(rng):
    for shape in ((64, 64), (50, 67)):
        image, truth = voronoi_levels(shape, 12, rng)
        for predicate in ("range", "stat"):
            labels = split_and_merge(image, predicate=predicate)
            assert labels.max() == truth.max()
            assert adjusted_rand_index(truth, labels) == 1.0


def test_stat_segments_a_noisy_voronoi_image(rng):
    image, truth = voronoi_levels((96, 96), 12, rng)
    noisy = add_noise(image, 10.0, rng)
    labels = split_and_merge(noisy, predicate="stat")
    assert adjusted_rand_index(truth, labels) > 0.95
    assert boundary_f1(truth, labels) > 0.95
    assert labels.max() <= 2 * truth.max()
    # range with a zero threshold cannot cope with noise: every pixel differs
    assert split_and_merge(noisy).max() > 20 * truth.max()


# --------------------------------------------------------------------------- noise estimate


def test_noise_estimate(rng):
    noise = rng.standard_normal((200, 180))
    assert estimate_noise_sigma(50.0 + 7.0 * noise) == pytest.approx(7.0, rel=0.05)
    image, _ = voronoi_levels((128, 128), 10, rng)
    assert estimate_noise_sigma(image) == 0.0
    assert estimate_noise_sigma(add_noise(image, 10.0, rng)) == pytest.approx(10.0, rel=0.1)
    assert estimate_noise_sigma(3.0 * rng.standard_normal((1, 5000))) == pytest.approx(
        3.0, rel=0.1)
    assert estimate_noise_sigma(3.0 * rng.standard_normal((5000, 1))) == pytest.approx(
        3.0, rel=0.1)
    assert estimate_noise_sigma(np.array([[5]])) == 0.0
    rgb = np.repeat((50.0 + 7.0 * noise)[..., None], 3, axis=2)
    assert estimate_noise_sigma(rgb) == pytest.approx(estimate_noise_sigma(50 + 7.0 * noise))


# --------------------------------------------------------------------------- gray_level_segment


def test_gray_level_segment_with_thresholds(rng):
    image = smooth_image(rng, (41, 52), noise=12.0)
    class_map, regions = gray_level_segment(image, thresholds=[90, 150.5])
    np.testing.assert_array_equal(class_map, np.digitize(image, [90, 150.5], right=True))
    assert class_map[image == 90].max() == 0 and class_map[image == 91].min() == 1
    assert class_map.dtype == np.int32 and regions.dtype == np.int32
    for region in range(1, regions.max() + 1):
        assert np.unique(class_map[regions == region]).size == 1
    # the regions are exactly the 4-connected components of the class map
    components = connected_components(class_map, background=-1, connectivity=1)
    np.testing.assert_array_equal(regions, canonical(components))
    _, regions8 = gray_level_segment(image, thresholds=[90, 150.5], connectivity=8)
    np.testing.assert_array_equal(
        regions8, canonical(connected_components(class_map, background=-1, connectivity=2)))


def test_gray_level_segment_with_multi_otsu(rng):
    image, truth = voronoi_levels((60, 70), 10, rng)
    while np.unique(image).size < 4:
        image, truth = voronoi_levels((60, 70), 10, rng)
    class_map, regions = gray_level_segment(image, classes=4)
    levels = np.array([40, 90, 140, 190])
    np.testing.assert_array_equal(class_map, np.searchsorted(levels, image))
    assert adjusted_rand_index(truth, regions) == 1.0
    # wide integer ranges go through a 256-bin histogram
    for wide in (image.astype(np.int32) * 1000, image / 7.0):
        class_map, regions = gray_level_segment(wide, classes=4)
        np.testing.assert_array_equal(class_map, np.searchsorted(levels, image))


def test_gray_level_segment_clean_up_keeps_classes_pure(rng):
    image = rng.integers(0, 256, size=(30, 34)).astype(np.uint8)
    class_map, regions = gray_level_segment(image, thresholds=[128], min_area=12)
    assert np.bincount(regions.ravel())[1:].min() >= 12
    for region in range(1, regions.max() + 1):
        assert np.unique(class_map[regions == region]).size == 1
    # a cleaned-up region takes the class that most of its pixels had
    raw = np.digitize(image, [128])
    for region in range(1, regions.max() + 1):
        votes = np.bincount(raw[regions == region], minlength=2)
        assert class_map[regions == region][0] == votes.argmax()


# --------------------------------------------------------------------------- evaluation helpers


def brute_ari(a, b):
    a, b = a.ravel(), b.ravel()
    n = a.size
    same_a = a[:, None] == a[None, :]
    same_b = b[:, None] == b[None, :]
    upper = np.triu(np.ones((n, n), dtype=bool), 1)
    index = np.sum(same_a & same_b & upper)
    pa, pb, total = np.sum(same_a & upper), np.sum(same_b & upper), n * (n - 1) / 2
    expected = pa * pb / total
    return (index - expected) / ((pa + pb) / 2 - expected)


def test_adjusted_rand_index_matches_pair_counting(rng):
    for _ in range(5):
        a = rng.integers(0, 4, size=(6, 7))
        b = rng.integers(0, 5, size=(6, 7)) * 3 + 10
        assert adjusted_rand_index(a, b) == pytest.approx(brute_ari(a, b))
    assert adjusted_rand_index(a, 7 - a) == 1.0
    assert adjusted_rand_index(np.zeros(5), np.zeros(5)) == 1.0
    with pytest.raises(ValueError, match="same size"):
        adjusted_rand_index(np.zeros(5), np.zeros(6))


def test_variation_of_information_halves():
    truth = np.array([[1, 1, 2, 2]] * 2)
    split = np.array([[1, 3, 2, 2]] * 2)
    merged = np.ones((2, 4), dtype=int)
    assert variation_of_information(truth, truth) == (0.0, 0.0)
    s, m = variation_of_information(truth, split)
    assert s == pytest.approx(0.5) and m == 0.0
    s, m = variation_of_information(truth, merged)
    assert s == 0.0 and m == pytest.approx(1.0)


def test_boundary_f1():
    truth = np.zeros((20, 20), dtype=int)
    truth[:, 10:] = 1
    assert boundary_f1(truth, truth) == 1.0
    for shift, expected in ((1, 1.0), (2, 1.0), (3, 0.0)):
        moved = np.zeros_like(truth)
        moved[:, 10 + shift:] = 1
        assert boundary_f1(truth, moved) == expected
    extra = truth.copy()
    extra[:10, :] += 2  # a horizontal boundary that is not in the truth
    found = region_boundaries(extra)
    assert found.sum() == 39  # column 9 and row 9, which share pixel (9, 9)
    # matched: column 9, and the pixels of row 9 within 2 columns of it
    expected_precision = (20 + 4) / 39
    assert boundary_f1(truth, extra) == pytest.approx(
        2 * expected_precision / (expected_precision + 1))
    assert boundary_f1(np.zeros((4, 4)), np.zeros((4, 4))) == 1.0
    assert boundary_f1(truth, np.zeros_like(truth)) == 0.0


def test_voronoi_levels_and_noise(rng):
    image, truth = voronoi_levels((40, 50), 8, rng)
    assert image.dtype == np.uint8 and set(np.unique(image)) <= {40, 90, 140, 190}
    for region in range(1, truth.max() + 1):
        assert np.unique(image[truth == region]).size == 1
    noisy = add_noise(image, 300.0, rng)
    assert noisy.dtype == np.uint8 and noisy.min() == 0 and noisy.max() == 255


# --------------------------------------------------------------------------- API and errors


def test_public_api():
    assert set(crfseg.classical.__all__) == {
        "PREDICATES", "SplitMergeTree", "estimate_noise_sigma", "gray_level_segment",
        "split_and_merge"}


def test_docstring_examples_run():
    result = doctest.testmod(split_merge_module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 5 and result.failed == 0


IMAGE = np.arange(30, dtype=np.uint8).reshape(5, 6)


@pytest.mark.parametrize(
    ("image", "error", "match"),
    [
        ([[1, 2], [3, 4]], TypeError, "image must be a numpy array, got list"),
        (torch.zeros(4, 4), TypeError, "image must be a numpy array, got Tensor"),
        (np.zeros((4, 4), dtype=complex), TypeError, "integer, boolean or floating.*complex"),
        (np.array([["a"]]), TypeError, "integer, boolean or floating"),
        (np.zeros(5), ValueError, r"\(H, W\).*got an array of shape \(5,\)"),
        (np.zeros((4, 4, 4)), ValueError, r"\(H, W, 3\).*shape \(4, 4, 4\)"),
        (np.zeros((0, 5)), ValueError, r"must not be empty.*\(0, 5\)"),
        (np.zeros((3, 0, 3)), ValueError, r"must not be empty.*\(3, 0, 3\)"),
        (np.array([[1.0, np.nan]]), ValueError, "image contains 1 non-finite"),
        (np.full((2, 2, 3), np.inf), ValueError, "image contains 12 non-finite"),
    ],
)
def test_bad_images(image, error, match):
    with pytest.raises(error, match=match):
        split_and_merge(image)
    with pytest.raises(error, match=match):
        gray_level_segment(image, thresholds=[1])
    with pytest.raises(error, match=match):
        estimate_noise_sigma(image)


def test_gray_levels_too_wide_for_sums_of_squares():
    image = np.array([[1e200, -1e200]])
    for function in (split_and_merge, estimate_noise_sigma):
        with pytest.raises(ValueError, match=r"span -1e\+200 to 1e\+200: too wide for float64"):
            function(image)
    # gray-level rules only compare levels with thresholds
    assert gray_level_segment(image, thresholds=[0.0])[0].tolist() == [[1, 0]]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"predicate": "median"}, ValueError, "predicate must be one of 'range', 'std', 'stat'"),
        ({"predicate": 3}, TypeError, "predicate must be one of .* got int"),
        ({"threshold": -1}, ValueError, "threshold must be >= 0.0, got -1.0"),
        ({"threshold": float("nan")}, ValueError, "threshold must be finite"),
        ({"threshold": "1"}, TypeError, "threshold must be a real number, got str"),
        ({"predicate": lambda *s: True, "threshold": 1.0}, ValueError,
         "threshold has no meaning with a callable"),
        ({"predicate": lambda *s: True, "sigma": 1.0}, ValueError, "sigma is only used by"),
        ({"sigma": 2.0}, ValueError, "sigma is only used by predicate='stat'.*'range'"),
        ({"predicate": "stat", "sigma": -2.0}, ValueError, "sigma must be >= 0.0, got -2.0"),
        ({"min_size": 0}, ValueError, "min_size must be >= 1, got 0"),
        ({"min_size": 1.5}, TypeError, "min_size must be an integer, got float"),
        ({"min_area": -1}, ValueError, "min_area must be >= 0, got -1"),
        ({"connectivity": 6}, ValueError, "connectivity must be one of 4, 8; got 6"),
        ({"connectivity": 4.0}, TypeError, "connectivity must be an integer, got float"),
        ({"return_tree": "yes"}, TypeError, "return_tree must be a bool, got str"),
    ],
)
def test_bad_split_and_merge_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        split_and_merge(IMAGE, **kwargs)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({}, ValueError, "give exactly one of thresholds and classes"),
        ({"thresholds": [5], "classes": 3}, ValueError, "give exactly one of"),
        ({"thresholds": [5, 5]}, ValueError, r"strictly increasing, got \[5.0, 5.0\]"),
        ({"thresholds": [[1, 2]]}, ValueError, r"1-D sequence, got shape \(1, 2\)"),
        ({"thresholds": []}, ValueError, r"non-empty 1-D sequence, got shape \(0,\)"),
        ({"thresholds": "12"}, TypeError, "thresholds must be a sequence of numbers, got str"),
        ({"thresholds": 12}, TypeError, "thresholds must be a sequence of numbers, got int"),
        ({"thresholds": [1, float("nan")]}, ValueError, "thresholds contains 1 non-finite"),
        ({"thresholds": [1j]}, TypeError, "thresholds must be real numbers, got dtype complex"),
        ({"classes": 1}, ValueError, "classes must be >= 2, got 1"),
        ({"classes": 2.5}, TypeError, "classes must be an integer, got float"),
        ({"classes": 40}, ValueError, "classes=40 needs an image with at least 40 distinct "
                                      "gray levels, got 30"),
        ({"classes": 3, "min_area": -2}, ValueError, "min_area must be >= 0, got -2"),
        ({"classes": 3, "connectivity": 3}, ValueError, "connectivity must be one of 4, 8"),
    ],
)
def test_bad_gray_level_options(kwargs, error, match):
    with pytest.raises(error, match=match):
        gray_level_segment(IMAGE, **kwargs)
