"""GridCRF energy minimisation (crfseg.crf.grid) against brute force and NumPy oracles."""

import itertools
import math

import numpy as np
import pytest
from scipy import sparse
from scipy.sparse.csgraph import maximum_flow

from crfseg.crf import (
    GridCRF,
    GridCRFResult,
    Pairwise,
    contrast_weights,
    maxflow,
    potts,
    truncated_linear,
    truncated_quadratic,
)
from crfseg.crf.pairwise import default_edge_weights

# (first pixel, second pixel) slices of every edge direction, in weight-array order
EDGE_SLICES = [
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
]


def numpy_energy(unary, labels, matrix, weights):
    """Energy of one labelling (H, W) or a batch (B, H, W), in plain NumPy."""
    unary = np.asarray(unary, dtype=np.float64)
    _, height, width = unary.shape
    rows, cols = np.indices((height, width))
    energy = unary[labels, rows, cols].sum(axis=(-2, -1))
    for (first, second), w in zip(EDGE_SLICES, weights):
        a = labels[(Ellipsis, *first)]
        b = labels[(Ellipsis, *second)]
        energy = energy + (w * matrix[a, b]).sum(axis=(-2, -1))
    return energy


def all_labellings(num_labels, height, width):
    grid = itertools.product(range(num_labels), repeat=height * width)
    return np.array(list(grid), dtype=np.int64).reshape(-1, height, width)


def random_cost(rng, kind, num_labels):
    if kind == "potts":
        return potts(num_labels, float(rng.uniform(0.5, 2.0)))
    if kind == "linear":
        return truncated_linear(num_labels, float(rng.uniform(0.5, 2.0)), 1.5)
    if kind == "quadratic":
        return truncated_quadratic(num_labels, float(rng.uniform(0.5, 2.0)), 2.0)
    if kind == "submodular":
        a, d = rng.normal(size=2)
        b, c = rng.normal(size=2) + abs(a + d) + 0.5
        return np.array([[a, b], [c, d]])
    return rng.normal(size=(num_labels, num_labels)) * 1.5


def random_weights(rng, height, width, connectivity):
    return tuple(
        rng.uniform(0.0, 2.0, w.shape) for w in default_edge_weights(height, width, connectivity)
    )


def random_problem(rng, kind, num_labels, height, width, connectivity):
    cost = random_cost(rng, kind, num_labels)
    weights = random_weights(rng, height, width, connectivity)
    crf = GridCRF(cost, connectivity=connectivity, edge_weights=weights)
    unary = rng.normal(size=(num_labels, height, width))
    return crf, unary, weights


def brute_force_minimum(crf, unary, weights):
    labellings = all_labellings(crf.num_labels, unary.shape[1], unary.shape[2])
    return numpy_energy(unary, labellings, crf.pairwise.matrix, weights).min()


# ------------------------------------------------------------------- energy


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("with_weights", [True, False])
def test_energy_matches_numpy(rng, connectivity, dtype, with_weights):
    height, width, num_labels = 9, 13, 5
    matrix = rng.normal(size=(num_labels, num_labels))
    if with_weights:
        weights = random_weights(rng, height, width, connectivity)
    else:
        weights = default_edge_weights(height, width, connectivity)
    crf = GridCRF(matrix, connectivity=connectivity,
                  edge_weights=weights if with_weights else None)
    unary = rng.normal(size=(num_labels, height, width)).astype(dtype)
    for _ in range(3):
        labels = rng.integers(0, num_labels, (height, width))
        expected = numpy_energy(unary, labels, matrix, weights)
        assert crf.energy(labels, unary) == pytest.approx(expected, rel=1e-12)


def test_diagonal_edge_convention():
    # only the anti-diagonal edge (0, 1)-(1, 0) is weighted; V is asymmetric
    matrix = np.array([[0.0, 1.0], [10.0, 0.0]])
    zeros = np.zeros((1, 1))
    crf = GridCRF(matrix, connectivity=8,
                  edge_weights=(np.zeros((2, 1)), np.zeros((1, 2)), zeros, np.full((1, 1), 3.0)))
    unary = np.zeros((2, 2, 2))
    assert crf.energy(np.array([[0, 1], [0, 0]]), unary) == 30.0  # V[1, 0] * 3
    assert crf.energy(np.array([[0, 0], [1, 0]]), unary) == 3.0  # V[0, 1] * 3
    default = GridCRF(potts(2, 1.0), connectivity=8)
    assert default.energy(np.array([[0, 1], [1, 1]]), unary) == pytest.approx(2 + 1 / math.sqrt(2))


# --------------------------------------------------------------- brute force


@pytest.mark.parametrize("connectivity", [4, 8])
def test_graphcut_is_exact(connectivity):
    rng = np.random.default_rng(1)
    for height, width in [(3, 3), (2, 4), (1, 5), (4, 3)]:
        crf, unary, weights = random_problem(rng, "submodular", 2, height, width, connectivity)
        result = crf.minimize(unary, method="graphcut")
        optimum = brute_force_minimum(crf, unary, weights)
        assert result.energy == pytest.approx(optimum, abs=1e-9)
        assert result.lower_bound == result.energy
        assert crf.energy(result.labels, unary) == pytest.approx(result.energy, abs=1e-12)
        assert result.labels.dtype == np.int32 and result.labels.shape == (height, width)


@pytest.mark.parametrize("kind", ["potts", "linear", "quadratic", "general"])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_trws_bound_brackets_every_method(kind, connectivity):
    rng = np.random.default_rng(2)
    for num_labels in (2, 3):
        crf, unary, weights = random_problem(rng, kind, num_labels, 3, 3, connectivity)
        optimum = brute_force_minimum(crf, unary, weights)
        trws = crf.minimize(unary, method="trws", tol=0.0, max_iter=30)
        assert trws.lower_bound <= optimum + 1e-9
        methods = ["trws", "icm"]
        if crf._swap_violation is None:
            methods.append("swap")
        if crf._expansion_violation is None:
            methods.append("expansion")
        for method in methods:
            result = crf.minimize(unary, method=method)
            assert result.energy >= optimum - 1e-9, method
            assert crf.energy(result.labels, unary) == pytest.approx(result.energy, abs=1e-9)


def test_trws_bound_is_below_the_minimum_on_frustrated_grids():
    rng = np.random.default_rng(3)
    loose = 0
    for trial in range(8):
        crf, unary, weights = random_problem(rng, "general", 3, 3, 3, 4 + 4 * (trial % 2))
        optimum = brute_force_minimum(crf, unary, weights)
        result = crf.minimize(unary, method="trws", tol=0.0, max_iter=40)
        assert result.lower_bound <= optimum + 1e-9
        assert result.energy >= optimum - 1e-9
        loose += result.lower_bound < optimum - 1e-6
    assert loose > 0  # the problems really are frustrated, so the bound is tested


def test_trws_is_exact_on_a_chain():
    rng = np.random.default_rng(4)
    for kind in ("potts", "quadratic", "general"):
        crf, unary, weights = random_problem(rng, kind, 3, 1, 8, 4)
        optimum = brute_force_minimum(crf, unary, weights)
        result = crf.minimize(unary, method="trws")
        # float32 messages cost the bound their rounding, ~1e-7 of their size
        assert optimum - 1e-5 < result.lower_bound <= optimum + 1e-9
        assert result.energy == pytest.approx(optimum, abs=1e-9)
        assert result.converged


def test_expansion_on_potts_is_within_twice_the_optimum():
    rng = np.random.default_rng(5)
    for connectivity in (4, 8):
        for _ in range(4):
            crf, unary, weights = random_problem(rng, "potts", 3, 3, 3, connectivity)
            unary = np.abs(unary)  # the factor 2 holds for non-negative energies
            optimum = brute_force_minimum(crf, unary, weights)
            result = crf.minimize(unary, method="expansion")
            assert optimum - 1e-9 <= result.energy <= 2 * optimum + 1e-9


TINY_GRIDS = [(1, 1), (1, 2), (1, 5), (2, 1), (5, 1), (2, 2)]


def tiny_costs(num_labels):
    """Every structured cost at weights 0 to 3, the zero weight included."""
    for weight in (0.0, 1e-200, 0.5, 3.0):
        yield potts(num_labels, weight)
        yield truncated_linear(num_labels, weight, 1.5)
        yield truncated_quadratic(num_labels, weight, 2.0)
        yield truncated_quadratic(num_labels, weight)


@pytest.mark.parametrize("num_labels", [2, 3])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_tiny_grids_every_method_and_cost_against_brute_force(num_labels, connectivity):
    """1xN, Nx1, 1x1 and 2x2 grids: a zero-weight truncated quadratic once wrote out of bounds."""
    rng = np.random.default_rng(16)
    for height, width in TINY_GRIDS:
        weights = random_weights(rng, height, width, connectivity)
        for cost in tiny_costs(num_labels):
            crf = GridCRF(cost, connectivity=connectivity, edge_weights=weights)
            unary = rng.normal(size=(num_labels, height, width))
            optimum = brute_force_minimum(crf, unary, weights)
            # a chain is a tree and a zero cost decouples the pixels: TRW-S is exact there
            exact = height == 1 or width == 1 or cost.weight < 1e-100
            methods = ["trws", "icm"]
            if crf._swap_violation is None:
                methods.append("swap")
            if crf._expansion_violation is None:
                methods.append("expansion")
            if num_labels == 2 and crf._swap_violation is None:
                methods.append("graphcut")
            for method in methods:
                result = crf.minimize(unary, method=method, tol=0.0)
                assert result.energy >= optimum - 1e-9, (method, cost)
                assert crf.energy(result.labels, unary) == pytest.approx(result.energy,
                                                                         abs=1e-9)
                if method == "trws":
                    assert result.lower_bound <= optimum + 1e-9, cost
                    if exact:
                        assert result.energy == pytest.approx(optimum, abs=1e-9), cost
                if method == "graphcut" or (method != "icm" and cost.weight < 1e-100):
                    assert result.energy == pytest.approx(optimum, abs=1e-9), (method, cost)


def test_flat_and_steep_quadratic_messages_match_general_messages(rng):
    """Parabolas too flat to cross in float64, and huge unaries, take the exact path."""
    for weight, scale in ((1e-160, 1.0), (1e-140, 1.0), (1.0, 1e200), (1e-20, 1e100)):
        structured = truncated_quadratic(6, weight)
        general = Pairwise("general", 6, math.nan, math.nan, np.array(structured.matrix))
        unary = rng.normal(size=(6, 1, 7)) * scale
        fast = GridCRF(structured).minimize(unary, method="trws")
        slow = GridCRF(general).minimize(unary, method="trws")
        assert fast.energy == slow.energy
        np.testing.assert_array_equal(fast.labels, slow.labels)
        assert np.isfinite(fast.lower_bound)


@pytest.mark.parametrize("method", ["icm", "expansion", "swap", "trws"])
def test_energy_never_rises(rng, method):
    cost = truncated_linear(5, 1.0, 2) if method != "trws" else truncated_quadratic(5, 1.0, 4)
    weights = random_weights(rng, 16, 20, 8)
    crf = GridCRF(cost, connectivity=8, edge_weights=weights)
    unary = rng.normal(size=(5, 16, 20)) * 2
    result = crf.minimize(unary, method=method, tol=0.0)
    history = result.energy_history
    scale = abs(history[0])
    assert np.all(np.diff(history) <= 1e-12 * scale)
    assert history[-1] == result.energy
    assert result.energy == pytest.approx(crf.energy(result.labels, unary), rel=1e-12)
    if method == "trws":
        assert np.all(np.diff(result.bound_history) >= -1e-9 * scale)
        assert result.lower_bound <= result.energy
    else:
        assert result.energy < history[0]  # the start (argmin of unary) is improved on
        assert len(history) == result.n_iter + 1


@pytest.mark.parametrize("kind", ["potts", "linear", "quadratic"])
@pytest.mark.parametrize("connectivity", [4, 8])
def test_fast_messages_match_general_messages(rng, kind, connectivity):
    """O(L) distance-transform messages equal the O(L^2) minimisation."""
    structured = random_cost(rng, kind, 7)
    general = Pairwise("general", 7, math.nan, math.nan, np.array(structured.matrix))
    weights = random_weights(rng, 10, 12, connectivity)
    unary = rng.normal(size=(7, 10, 12)) * 2
    fast = GridCRF(structured, connectivity=connectivity, edge_weights=weights)
    slow = GridCRF(general, connectivity=connectivity, edge_weights=weights)
    a = fast.minimize(unary, method="trws", max_iter=15, tol=0.0)
    b = slow.minimize(unary, method="trws", max_iter=15, tol=0.0)
    # both store float32 messages, so they agree to about float32 precision
    np.testing.assert_allclose(a.bound_history, b.bound_history, rtol=1e-6)
    np.testing.assert_allclose(a.energy_history, b.energy_history, rtol=1e-6)


# ------------------------------------------------------------------ behaviour


def test_denoising_recovers_a_piecewise_constant_image(rng):
    truth = np.zeros((24, 24), dtype=int)
    truth[:, 8:] = 1
    truth[12:, 16:] = 2
    truth[4:10, 2:6] = 3
    levels = np.arange(4.0)
    noisy = truth + rng.normal(0, 0.6, truth.shape)
    unary = np.abs(noisy[None] - levels[:, None, None])
    crf = GridCRF(truncated_linear(4, 0.6, 2))
    start_errors = np.mean(unary.argmin(0) != truth)
    for method in ("expansion", "swap", "trws", "icm"):
        result = crf.minimize(unary, method=method)
        assert np.mean(result.labels != truth) < start_errors / 3, method
    exact = crf.minimize(unary, method="trws", max_iter=300, tol=0.0)
    assert exact.relative_gap < 1e-3


def test_auto_picks_the_method():
    unary = np.zeros((2, 3, 3))
    assert GridCRF(potts(2, 1.0)).minimize(unary).method == "graphcut"
    assert GridCRF(potts(3, 1.0)).minimize(np.zeros((3, 3, 3))).method == "expansion"
    assert GridCRF(truncated_quadratic(3, 1.0)).minimize(np.zeros((3, 3, 3))).method == "trws"
    anti = np.array([[1.0, 0.0], [0.0, 1.0]])
    assert GridCRF(anti).minimize(unary).method == "trws"


def test_float32_and_float64_unaries_agree(rng):
    unary = rng.normal(size=(4, 12, 12)).astype(np.float32)
    crf = GridCRF(potts(4, 0.8), connectivity=8)
    for method in ("expansion", "trws"):
        a = crf.minimize(unary, method=method)
        b = crf.minimize(unary.astype(np.float64), method=method)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.energy == b.energy


@pytest.mark.parametrize("scale", [1e-6, 1e6])
def test_energies_are_not_scaled_to_integers(rng, scale):
    """Multiplying the whole energy by a constant must not change any labelling."""
    unary = rng.normal(size=(4, 14, 14))
    base = GridCRF(truncated_linear(4, 0.7, 2))
    scaled = GridCRF(truncated_linear(4, 0.7 * scale, 2))
    for method in ("expansion", "swap", "icm"):
        a = base.minimize(unary, method=method)
        b = scaled.minimize(unary * scale, method=method)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert b.energy == pytest.approx(a.energy * scale, rel=1e-9)
    binary = GridCRF(potts(2, 0.9 * scale)).minimize(unary[:2] * scale, method="graphcut")
    reference = GridCRF(potts(2, 0.9)).minimize(unary[:2], method="graphcut")
    np.testing.assert_array_equal(binary.labels, reference.labels)
    a = base.minimize(unary, method="trws", max_iter=20)
    b = scaled.minimize(unary * scale, method="trws", max_iter=20)
    assert b.lower_bound == pytest.approx(a.lower_bound * scale, rel=1e-6)


def test_init_is_used(rng):
    crf = GridCRF(potts(3, 1.0))
    unary = rng.normal(size=(3, 10, 10))
    best = crf.minimize(unary, method="trws", max_iter=100, tol=0.0)
    again = crf.minimize(unary, method="expansion", init=best.labels)
    assert again.energy <= best.energy
    assert again.energy_history[0] == pytest.approx(best.energy)
    icm = crf.minimize(unary, method="icm", init=np.zeros((10, 10), dtype=np.uint8))
    assert icm.energy_history[0] == pytest.approx(crf.energy(np.zeros((10, 10), int), unary))
    poor = np.zeros((10, 10), dtype=np.int64)
    trws = crf.minimize(unary, method="trws", init=poor, max_iter=1)
    assert trws.energy <= crf.energy(poor, unary)


def test_contrast_weights_plug_in(rng):
    image = np.zeros((12, 12, 3), dtype=np.uint8)
    image[:, 6:] = 200
    unary = rng.normal(0, 1, (2, 12, 12))
    for connectivity in (4, 8):
        crf = GridCRF(potts(2, 2.0), connectivity=connectivity,
                      edge_weights=contrast_weights(image, connectivity=connectivity))
        assert crf.grid_shape == (12, 12)
        result = crf.minimize(unary)
        assert result.gap == 0.0 and result.relative_gap == 0.0


def test_result_fields():
    result = GridCRF(potts(3, 1.0)).minimize(np.zeros((3, 2, 2)), method="icm")
    assert isinstance(result, GridCRFResult)
    assert result.lower_bound is None and result.gap is None and result.relative_gap is None
    assert result.bound_history is None and result.converged and result.n_iter == 1


# -------------------------------------------------------------------- max-flow


def test_maxflow_matches_scipy():
    rng = np.random.default_rng(6)
    for _ in range(60):
        n = int(rng.integers(2, 40))
        m = int(rng.integers(0, 120))
        edges = rng.integers(0, n, (m, 2))
        edges = edges[edges[:, 0] != edges[:, 1]]
        caps = rng.integers(0, 10, len(edges)).astype(float)
        rev = rng.integers(0, 10, len(edges)).astype(float)
        source = (rng.integers(0, 10, n) * (rng.random(n) < 0.4)).astype(float)
        sink = (rng.integers(0, 10, n) * (rng.random(n) < 0.4)).astype(float)
        flow, sink_side = maxflow(edges, caps, source, sink, reverse_capacities=rev)
        dense = np.zeros((n + 2, n + 2), dtype=np.int64)
        np.add.at(dense, (edges[:, 0], edges[:, 1]), caps.astype(np.int64))
        np.add.at(dense, (edges[:, 1], edges[:, 0]), rev.astype(np.int64))
        dense[n, :n] = source
        dense[:n, n + 1] = sink
        expected = maximum_flow(sparse.csr_matrix(dense), n, n + 1).flow_value
        assert flow == expected
        source_side = np.r_[~sink_side, True, False]
        assert dense[source_side][:, ~source_side].sum() == expected  # the cut is minimal


def test_maxflow_float_capacities_and_directed_default():
    flow, side = maxflow(np.array([[0, 1]]), np.array([0.25]), np.array([1.5, 0.0]),
                         np.array([0.0, 2.5]))
    assert flow == 0.25 and side.tolist() == [False, True]
    flow, side = maxflow(np.array([[1, 0]]), np.array([5.0]), np.array([1.5, 0.0]),
                         np.array([0.0, 2.5]))
    assert flow == 0.0  # no reverse capacity unless given
    flow, _ = maxflow(np.zeros((0, 2), dtype=int), np.zeros(0), np.array([1.0, 3.0]),
                      np.array([2.0, 0.5]))
    assert flow == 1.5


def test_maxflow_errors():
    edges = np.array([[0, 1]])
    one, two = np.ones(1), np.ones(2)
    with pytest.raises(TypeError, match="edges must hold integer class labels"):
        maxflow(edges.astype(float), one, two, two)
    with pytest.raises(ValueError, match=r"edges must have shape \(E, 2\), got \(2,\)"):
        maxflow(np.array([0, 1]), one, two, two)
    with pytest.raises(ValueError, match=r"node indices in \[0, 1\] \(n = 2"):
        maxflow(np.array([[0, 2]]), one, two, two)
    with pytest.raises(ValueError, match=r"capacities must have shape \(E,\) = \(1,\)"):
        maxflow(edges, two, two, two)
    with pytest.raises(ValueError, match=r"reverse_capacities must have shape \(E,\)"):
        maxflow(edges, one, two, two, reverse_capacities=two)
    with pytest.raises(ValueError, match="capacities must be >= 0, got a minimum of -1"):
        maxflow(edges, -one, two, two)
    with pytest.raises(ValueError, match="sink_capacities contains 1 non-finite"):
        maxflow(edges, one, two, np.array([1.0, np.inf]))
    with pytest.raises(ValueError, match="must have the same shape"):
        maxflow(edges, one, two, np.ones(3))
    with pytest.raises(TypeError, match="source_capacities must hold real numbers"):
        maxflow(edges, one, np.array(["a", "b"]), two)
    with pytest.raises(ValueError, match="source_capacities must be 1-D"):
        maxflow(edges, one, np.ones((2, 1)), two)


# ---------------------------------------------------------------- bad input


def test_constructor_errors():
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8, 6, 18, 26; got 5"):
        GridCRF(potts(2, 1.0), connectivity=5)
    with pytest.raises(TypeError, match="edge_weights must be a sequence of 2 arrays"):
        GridCRF(potts(2, 1.0), edge_weights=np.ones((3, 3)))
    with pytest.raises(ValueError, match=r"edge_weights must hold 4 arrays \(right, down, diag"):
        GridCRF(potts(2, 1.0), connectivity=8, edge_weights=(np.ones((3, 2)), np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"edge_weights\[down\] must be >= 0, got a minimum of -1"):
        GridCRF(potts(2, 1.0), edge_weights=(np.ones((3, 2)), -np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"edge_weights\[right\] contains 3 non-finite"):
        GridCRF(potts(2, 1.0), edge_weights=(np.array([[np.nan, 1.0]] * 3), np.ones((2, 3))))
    with pytest.raises(ValueError, match=r"edge_weights have shapes \[\(3, 2\), \(2, 4\)\]"):
        GridCRF(potts(2, 1.0), edge_weights=(np.ones((3, 2)), np.ones((2, 4))))
    with pytest.raises(TypeError, match=r"edge_weights\[right\] must be a numpy array"):
        GridCRF(potts(2, 1.0), edge_weights=([[1.0]], np.ones((1, 2))))
    with pytest.raises(TypeError, match=r"edge_weights\[right\] must hold real numbers"):
        GridCRF(potts(2, 1.0), edge_weights=(np.ones((2, 1), dtype=bool), np.ones((1, 2))))
    with pytest.raises(ValueError, match=r"edge_weights\[right\] must be 2-D"):
        GridCRF(potts(2, 1.0), edge_weights=(np.ones(2), np.ones((1, 2))))
    with pytest.raises(ValueError, match=r"L >= 2, got shape \(1, 1\)"):
        GridCRF(np.zeros((1, 1)))


def test_minimize_errors():
    crf = GridCRF(potts(3, 1.0))
    unary = np.zeros((3, 4, 5))
    with pytest.raises(TypeError, match="unary must be a numpy array"):
        crf.minimize(unary.tolist())
    with pytest.raises(TypeError, match="unary must be a floating-point array"):
        crf.minimize(unary.astype(int))
    with pytest.raises(ValueError, match=r"unary must be \(L, H, W\) with labels first"):
        crf.minimize(np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"unary has 2 labels \(shape \(2, 4, 5\)\) but pairwise"):
        crf.minimize(np.zeros((2, 4, 5)))
    with pytest.raises(ValueError, match="unary must have H, W >= 1"):
        crf.minimize(np.zeros((3, 0, 5)))
    with pytest.raises(ValueError, match="unary contains 2 non-finite"):
        bad = unary.copy()
        bad[0, 0, 0], bad[1, 1, 1] = np.nan, np.inf
        crf.minimize(bad)
    with pytest.raises(ValueError, match="method must be one of"):
        crf.minimize(unary, method="bp")
    with pytest.raises(ValueError, match="max_iter must be >= 1, got 0"):
        crf.minimize(unary, max_iter=0)
    with pytest.raises(ValueError, match="tol must be >= 0.0"):
        crf.minimize(unary, tol=-1.0)
    with pytest.raises(ValueError, match=r"init must have shape \(H, W\) = \(4, 5\)"):
        crf.minimize(unary, init=np.zeros((5, 4), dtype=int))
    with pytest.raises(ValueError, match=r"init must hold labels in \[0, 2\], got values in"):
        crf.minimize(unary, init=np.full((4, 5), 3))
    with pytest.raises(ValueError, match=r"init must hold labels in \[0, 2\]"):
        crf.minimize(unary, init=np.full((4, 5), -1))
    with pytest.raises(TypeError, match="init must hold integer class labels"):
        crf.minimize(unary, init=np.zeros((4, 5)))
    weighted = GridCRF(potts(3, 1.0), edge_weights=default_edge_weights(4, 6))
    with pytest.raises(ValueError, match=r"edge_weights are for a 4x6 grid but unary has shape"):
        weighted.minimize(unary)


def test_method_condition_errors():
    quadratic = GridCRF(truncated_quadratic(4, 1.0))
    unary = np.zeros((4, 3, 3))
    with pytest.raises(ValueError, match="method 'expansion' needs .* use method 'swap' or 'trws'"):
        quadratic.minimize(unary, method="expansion")
    with pytest.raises(ValueError, match="method 'graphcut' is exact for 2 labels only, got 4"):
        quadratic.minimize(unary, method="graphcut")
    anti = GridCRF(np.array([[1.0, 0.0], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="method 'graphcut' needs a submodular pairwise cost"):
        anti.minimize(np.zeros((2, 3, 3)), method="graphcut")
    with pytest.raises(ValueError, match="method 'swap' needs .* use method 'trws'"):
        anti.minimize(np.zeros((2, 3, 3)), method="swap")
    with pytest.raises(ValueError, match="method 'expansion' needs"):
        anti.minimize(np.zeros((2, 3, 3)), method="expansion")
    huge = GridCRF(potts(3, 1e200))
    with pytest.raises(ValueError, match=r"method 'trws' keeps its messages in float32"):
        huge.minimize(np.zeros((3, 3, 3)), method="trws")


@pytest.mark.parametrize("method", ["expansion", "swap", "icm", "trws"])
def test_energies_beyond_float64_are_refused_not_returned_as_inf(method):
    unary = np.zeros((3, 2, 2))
    with pytest.raises(ValueError, match="unary and pairwise reach energies up to inf, beyond"):
        GridCRF(potts(3, 1e308)).minimize(unary, method=method)
    with pytest.raises(ValueError, match="reach energies up to 4e[+]300"):
        GridCRF(potts(3, 1.0)).minimize(np.full((3, 2, 2), 1e300), method=method)
    with pytest.raises(ValueError, match="reach energies"):
        GridCRF(potts(3, 1.0), edge_weights=(np.full((2, 1), 1e305), np.ones((1, 2)))
                ).minimize(unary, method=method)
    # just inside the range, every method gives a finite energy
    result = GridCRF(potts(3, 1e290)).minimize(np.full((3, 2, 2), 1e290), method="icm")
    assert np.isfinite(result.energy)


def test_integer_settings_beyond_c_int_and_float_connectivity():
    crf = GridCRF(potts(3, 1.0))
    unary = np.zeros((3, 2, 2))
    with pytest.raises(ValueError, match=f"max_iter must be <= {2**31 - 2}, got {2**31}"):
        crf.minimize(unary, max_iter=2**31)
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8, 6, 18, 26; got 8.0"):
        GridCRF(potts(3, 1.0), connectivity=8.0)
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8, 6, 18, 26; got True"):
        GridCRF(potts(3, 1.0), connectivity=True)
    assert crf.minimize(unary, max_iter=2**31 - 2, method="icm").converged


def _best_move(crf, unary, labels, method):
    """Lowest energy one expansion or swap move reaches from ``labels``, by enumeration."""
    flat = labels.ravel()
    best = math.inf
    moves = (range(crf.num_labels) if method == "expansion"
             else itertools.combinations(range(crf.num_labels), 2))
    for move in moves:
        choices = [(value, move) if method == "expansion" else
                   ((move[0], move[1]) if value in move else (value,)) for value in flat]
        for candidate in itertools.product(*choices):
            energy = crf.energy(np.array(candidate).reshape(labels.shape), unary)
            best = min(best, energy)
    return best


@pytest.mark.parametrize("method", ["expansion", "swap"])
@pytest.mark.parametrize(("connectivity", "shape"), [(4, (2, 3)), (8, (2, 2)), (6, (2, 1, 3)),
                                                     (26, (2, 2, 1))])
def test_move_making_ends_where_no_move_improves(method, connectivity, shape):
    """No single expansion or swap move (enumerated) lowers the energy of the result.

    For two labels a swap move is the whole binary problem, so swap equals graphcut there;
    a swap once stopped early when its cut "promised" no gain over the all-alpha labelling.
    """
    rng = np.random.default_rng(23)
    for num_labels in (2, 3):
        for _ in range(6):
            crf = GridCRF(potts(num_labels, float(rng.uniform(0.2, 2.0))),
                          connectivity=connectivity)
            unary = rng.normal(size=(num_labels, *shape))
            result = crf.minimize(unary, method=method, tol=0.0)
            assert result.energy <= _best_move(crf, unary, result.labels, method) + 1e-9
            if num_labels == 2:
                exact = crf.minimize(unary, method="graphcut").energy
                assert result.energy == pytest.approx(exact, abs=1e-9)


def test_sizes_from_arguments_are_checked_against_memory(monkeypatch):
    with pytest.raises(ValueError, match=r"num_labels=2147483648 needs an \(L, L\) float64 cost"):
        potts(2**31, 1.0)
    with pytest.raises(ValueError, match=r"num_labels=4294967296 needs"):
        truncated_quadratic(2**32, 1.0)
    with pytest.raises(ValueError, match=r"\(height, width\)=\(1000000, 1000000\) needs edge "
                                         r"weights in float64 of 1.49e\+04 GiB"):
        default_edge_weights(10**6, 10**6)
    monkeypatch.setenv("CRFSEG_MEMORY_LIMIT", "1M")
    crf = GridCRF(potts(3, 1.0))
    unary = np.zeros((3, 100, 100), dtype=np.float32)
    with pytest.raises(ValueError, match=r"unary=\(3, 100, 100\) needs the work space of method "
                                         r"'trws' of 1.3 MiB, more than the 1 MiB of memory"):
        crf.minimize(unary, method="trws")
    assert crf.minimize(unary, method="icm").energy == 0.0


def test_histories_grow_past_their_first_allocation(rng):
    """Histories start small (max_iter may be 2**31 - 2) and grow as iterations happen."""
    crf = GridCRF(truncated_quadratic(5, 1.0, 4), connectivity=8)
    unary = rng.normal(size=(5, 16, 20)) * 2
    long = crf.minimize(unary, method="trws", tol=0.0, max_iter=300)
    short = crf.minimize(unary, method="trws", tol=0.0, max_iter=10)
    assert long.n_iter > 100 and long.energy_history.shape == (long.n_iter,)
    assert long.bound_history.shape == (long.n_iter,)
    np.testing.assert_array_equal(long.bound_history[:10], short.bound_history)
    np.testing.assert_array_equal(long.energy_history[:10], short.energy_history)
    # ICM moves a label change one pixel to the left per raster sweep
    chain = GridCRF(potts(2, 1.0))
    unary = np.zeros((2, 1, 60))
    unary[1] = -0.1
    init = np.zeros((1, 60), dtype=int)
    init[0, -1] = 1
    result = chain.minimize(unary, method="icm", init=init, max_iter=2**31 - 2)
    assert result.n_iter == 60 and result.energy_history.shape == (61,)
    assert (result.labels == 1).all() and result.converged
    assert np.all(np.diff(result.energy_history[:-1]) < 0)


@pytest.mark.parametrize("dtype", [">f8", ">f4", np.float16])
def test_non_native_and_half_unaries_are_converted(rng, dtype):
    crf = GridCRF(potts(3, 0.5))
    unary = rng.normal(size=(3, 4, 5)).astype(dtype)
    expected = crf.minimize(np.asarray(unary, dtype=np.float64), method="icm")
    result = crf.minimize(unary, method="icm", init=expected.labels.astype(">i8"))
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert result.energy == expected.energy
    strided = crf.minimize(np.asarray(unary, np.float64)[:, ::-1, ::2], method="icm")
    reference = crf.minimize(np.ascontiguousarray(np.asarray(unary, np.float64)[:, ::-1, ::2]),
                             method="icm")
    np.testing.assert_array_equal(strided.labels, reference.labels)


def test_energy_errors():
    crf = GridCRF(potts(3, 1.0))
    unary = np.zeros((3, 4, 5))
    with pytest.raises(ValueError, match=r"labels must have shape \(H, W\) = \(4, 5\)"):
        crf.energy(np.zeros((4, 4), dtype=int), unary)
    with pytest.raises(ValueError, match=r"labels must hold labels in \[0, 2\]"):
        crf.energy(np.full((4, 5), 7), unary)
    with pytest.raises(TypeError, match="labels must be a numpy array"):
        crf.energy([[0]], unary)
    with pytest.raises(ValueError, match="unary has 2 labels"):
        crf.energy(np.zeros((4, 5), dtype=int), np.zeros((2, 4, 5)))


# ----------------------------------------------------------------- PyMaxflow


def test_graphcut_agrees_with_pymaxflow(rng):
    pymaxflow = pytest.importorskip("maxflow")
    image = rng.integers(0, 256, (40, 50, 3)).astype(np.uint8)
    right, down = contrast_weights(image)
    unary = rng.normal(size=(2, 40, 50))
    crf = GridCRF(potts(2, 1.5), edge_weights=(right, down))
    ours = crf.minimize(unary, method="graphcut")
    graph = pymaxflow.Graph[float]()
    nodes = graph.add_grid_nodes((40, 50))
    along_rows = np.zeros((40, 50))
    along_rows[:, :-1] = 1.5 * right
    along_cols = np.zeros((40, 50))
    along_cols[:-1, :] = 1.5 * down
    for weights, structure in ((along_rows, [[0, 0, 0], [0, 0, 1], [0, 0, 0]]),
                               (along_cols, [[0, 0, 0], [0, 0, 0], [0, 1, 0]])):
        graph.add_grid_edges(nodes, weights=weights, structure=np.array(structure),
                             symmetric=True)
    graph.add_grid_tedges(nodes, unary[1], unary[0])
    graph.maxflow()
    theirs = graph.get_grid_segments(nodes).astype(np.int32)
    assert crf.energy(theirs, unary) == pytest.approx(ours.energy, rel=1e-12)
