"""Pairwise costs and edge weights of grid CRFs (crfseg.crf.pairwise)."""

import math

import numpy as np
import pytest

from crfseg.crf import Pairwise, contrast_weights, potts, truncated_linear, truncated_quadratic
from crfseg.crf.pairwise import (
    as_pairwise,
    default_edge_weights,
    expansion_violation,
    swap_violation,
)


def _distance(num_labels):
    labels = np.arange(num_labels)
    return np.abs(labels[:, None] - labels[None, :]).astype(float)


def test_potts_matrix():
    cost = potts(4, 0.75)
    assert cost.kind == "potts" and cost.num_labels == 4 and cost.weight == 0.75
    np.testing.assert_array_equal(cost.matrix, 0.75 * (1 - np.eye(4)))
    assert cost.matrix.dtype == np.float64
    np.testing.assert_array_equal(np.asarray(cost), cost.matrix)


def test_truncated_linear_matrix():
    cost = truncated_linear(6, 2.0, 3)
    np.testing.assert_array_equal(cost.matrix, 2.0 * np.minimum(_distance(6), 3))
    assert truncated_linear(5, 1.0).truncation == math.inf
    np.testing.assert_array_equal(truncated_linear(5, 1.0).matrix, _distance(5))


def test_truncated_quadratic_matrix():
    cost = truncated_quadratic(6, 0.5, 4)
    np.testing.assert_array_equal(cost.matrix, 0.5 * np.minimum(_distance(6) ** 2, 4))


def test_matrix_is_read_only():
    with pytest.raises(ValueError, match="read-only"):
        potts(3, 1.0).matrix[0, 1] = 5.0


@pytest.mark.parametrize(
    "builder, kind",
    [
        (lambda: potts(5, 1.3), "potts"),
        (lambda: truncated_linear(7, 0.1, 3), "truncated_linear"),
        (lambda: truncated_linear(7, 0.3, 2.5), "truncated_linear"),
        (lambda: truncated_linear(4, 2.0), "truncated_linear"),
        (lambda: truncated_quadratic(8, 0.7, 9), "truncated_quadratic"),
        (lambda: truncated_quadratic(4, 1.0), "truncated_quadratic"),
    ],
)
def test_as_pairwise_recognises_structured_matrices(builder, kind):
    cost = builder()
    recognised = as_pairwise(np.array(cost.matrix))
    assert recognised.kind == kind
    np.testing.assert_array_equal(recognised.matrix, cost.matrix)


def test_as_pairwise_general_matrix(rng):
    matrix = rng.normal(size=(3, 3))
    cost = as_pairwise(matrix)
    assert cost.kind == "general" and math.isnan(cost.weight)
    np.testing.assert_array_equal(cost.matrix, matrix)
    assert as_pairwise(cost) is cost
    assert as_pairwise(np.array([[0, 2], [2, 0]])).kind == "potts"


def test_as_pairwise_errors():
    with pytest.raises(TypeError, match="pairwise must be a numpy array"):
        as_pairwise([[0.0, 1.0], [1.0, 0.0]])
    with pytest.raises(TypeError, match="pairwise must be a real-valued matrix"):
        as_pairwise(np.array([["a", "b"], ["c", "d"]]))
    with pytest.raises(ValueError, match=r"pairwise must be a square \(L, L\) matrix, got"):
        as_pairwise(np.zeros(3))
    with pytest.raises(ValueError, match=r"square \(L, L\) matrix with L >= 2, got shape \(2, 3\)"):
        as_pairwise(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"L >= 2, got shape \(1, 1\)"):
        as_pairwise(np.zeros((1, 1)))
    with pytest.raises(ValueError, match="pairwise contains 1 non-finite"):
        as_pairwise(np.array([[0.0, np.nan], [1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"must have shape \(3, 3\) to match the 3 labels"):
        as_pairwise(potts(2, 1.0), num_labels=3)


def test_builder_errors():
    with pytest.raises(ValueError, match="num_labels must be >= 2, got 1"):
        potts(1, 1.0)
    with pytest.raises(TypeError, match="num_labels must be an integer, got float"):
        potts(2.0, 1.0)
    with pytest.raises(ValueError, match="weight must be >= 0.0, got -1.0"):
        truncated_linear(3, -1.0, 2)
    with pytest.raises(ValueError, match="weight must be finite"):
        potts(3, math.nan)
    with pytest.raises(ValueError, match="truncation must be > 0.0, got 0.0"):
        truncated_quadratic(3, 1.0, 0)
    with pytest.raises(TypeError, match="truncation must be a real number, got str"):
        truncated_linear(3, 1.0, "2")
    with pytest.raises(ValueError, match="truncation must be finite, got nan"):
        truncated_linear(3, 1.0, math.nan)


def test_pairwise_constructor_checks_its_matrix():
    matrix = np.array([[0.0, 1.0], [1.0, 0.0]])
    assert Pairwise("potts", 2, 1.0, 1.0, matrix).kind == "potts"
    with pytest.raises(ValueError, match="kind must be one of"):
        Pairwise("metric", 2, 1.0, 1.0, matrix)
    with pytest.raises(ValueError, match=r"float64 array of shape \(3, 3\)"):
        Pairwise("general", 3, math.nan, math.nan, matrix)
    with pytest.raises(ValueError, match="matrix is not the potts cost with weight=2"):
        Pairwise("potts", 2, 2.0, 1.0, matrix)
    with pytest.raises(ValueError, match="matrix contains 1 non-finite"):
        Pairwise("general", 2, math.nan, math.nan, np.array([[0.0, np.inf], [1.0, 0.0]]))


def test_expansion_and_swap_conditions():
    assert expansion_violation(potts(4, 1.0).matrix) is None
    assert expansion_violation(truncated_linear(6, 1.0, 2).matrix) is None
    a, b, c = expansion_violation(truncated_quadratic(4, 1.0).matrix)
    m = truncated_quadratic(4, 1.0).matrix
    assert m[a, a] + m[b, c] > m[a, c] + m[b, a]
    assert swap_violation(truncated_quadratic(4, 1.0).matrix) is None
    assert swap_violation(np.array([[1.0, 0.0], [0.0, 1.0]])) == (0, 1)


def test_default_edge_weights():
    right, down, diagonal, anti = default_edge_weights(3, 4, 8)
    assert right.shape == (3, 3) and down.shape == (2, 4)
    assert diagonal.shape == anti.shape == (2, 3)
    assert np.all(right == 1.0) and np.all(down == 1.0)
    np.testing.assert_allclose(diagonal, 1 / math.sqrt(2))
    assert len(default_edge_weights(3, 4)) == 2
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8; got 6"):
        default_edge_weights(3, 4, 6)
    with pytest.raises(ValueError, match="height must be >= 1, got 0"):
        default_edge_weights(0, 4)


def _reference_contrast(image, beta, connectivity):
    """Loop-by-loop GrabCut weights, the oracle for contrast_weights."""
    img = image.astype(float).reshape(image.shape[0], image.shape[1], -1)
    h, w = img.shape[:2]
    offsets = [((0, 0), (0, 1)), ((0, 0), (1, 0)), ((0, 0), (1, 1)), ((0, 1), (1, 0))]
    offsets = offsets[: 2 if connectivity == 4 else 4]
    diffs = []
    for (ay, ax), (by, bx) in offsets:
        rows = h - abs(by - ay)
        cols = w - abs(bx - ax)
        d = np.zeros((rows, cols))
        for y in range(rows):
            for x in range(cols):
                p = img[y + ay, x + ax]
                q = img[y + by, x + bx]
                d[y, x] = np.sum((p - q) ** 2)
        diffs.append(d)
    if beta is None:
        total = sum(d.sum() for d in diffs)
        count = sum(d.size for d in diffs)
        beta = 0.0 if total == 0 else 1.0 / (2.0 * total / count)
    dist = [1.0, 1.0, math.sqrt(2), math.sqrt(2)]
    return [np.exp(-beta * d) / dist[i] for i, d in enumerate(diffs)]


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("beta", [None, 0.01])
@pytest.mark.parametrize("channels", [None, 3])
def test_contrast_weights_match_loops(rng, connectivity, beta, channels):
    shape = (5, 7) if channels is None else (5, 7, channels)
    image = rng.integers(0, 256, shape).astype(np.uint8)
    weights = contrast_weights(image, beta=beta, connectivity=connectivity)
    expected = _reference_contrast(image, beta, connectivity)
    assert len(weights) == len(expected)
    for got, want in zip(weights, expected, strict=True):
        assert got.dtype == np.float64
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_contrast_weights_constant_image_and_edges():
    weights = contrast_weights(np.full((3, 3), 7.0), connectivity=8)
    np.testing.assert_allclose(weights[0], 1.0)
    np.testing.assert_allclose(weights[2], 1 / math.sqrt(2))
    image = np.zeros((4, 4))
    image[:, 2:] = 1.0
    right, down = contrast_weights(image, beta=1.0)
    np.testing.assert_allclose(right[:, 1], math.exp(-1.0))
    np.testing.assert_allclose(down, 1.0)


def test_contrast_weights_errors():
    with pytest.raises(TypeError, match="image must be a numpy array"):
        contrast_weights([[0, 1]])
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(H, W, C\)"):
        contrast_weights(np.zeros(5))
    with pytest.raises(TypeError, match="image must have a real dtype"):
        contrast_weights(np.zeros((2, 2), dtype=complex))
    with pytest.raises(ValueError, match="image contains 1 non-finite"):
        contrast_weights(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="beta must be >= 0.0, got -1.0"):
        contrast_weights(np.zeros((2, 2)), beta=-1.0)
    with pytest.raises(ValueError, match="connectivity must be one of 4, 8"):
        contrast_weights(np.zeros((2, 2)), connectivity=6)
