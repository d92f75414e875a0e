"""DenseCRF over the whole range of its features, against brute-force mean field.

pydensecrf's lattice keeps 16-bit coordinates: features too wide for it once
corrupted memory.  Inside the documented range results must be right in any
units, with both backends; beyond it a clear ``ValueError`` comes before
pydensecrf sees them.
"""

import warnings

import numpy as np
import pytest
import torch

from crfseg.crf import DenseCRF, labels_to_unary
from crfseg.crf._reference import gaussian_filter_reference
from crfseg.crf.dense import (
    _PYDENSECRF_EXTENT,
    _embedding_extent,
    _embedding_rows,
    scores_to_labels,
    scores_to_unary,
)
from crfseg.crf.lattice import _elevate

HEIGHT, WIDTH = 12, 16
SETTINGS = {"n_iter": 5, "gaussian_sxy": 3.0, "gaussian_compat": 3.0, "bilateral_sxy": 5.0,
            "bilateral_compat": 5.0}


def brute_force_mean_field(logits, image, n_iter, gaussian_sxy, gaussian_compat, bilateral_sxy,
                           bilateral_srgb, bilateral_compat):
    """Mean field with exact Gaussian filters (symmetric normalisation), in float64."""
    classes, height, width = logits.shape
    y, x = np.mgrid[0:height, 0:width]
    positions = np.stack([x.ravel(), y.ravel()], 1).astype(np.float64)
    colours = np.asarray(image, dtype=np.float64).reshape(height * width, -1)
    smooth = torch.tensor(positions / gaussian_sxy)
    appearance = torch.tensor(np.concatenate([positions / bilateral_sxy,
                                              colours / bilateral_srgb], 1))
    scores = torch.tensor(logits.reshape(classes, -1).T.astype(np.float64))
    q = torch.softmax(scores, 1)
    for _ in range(n_iter):
        message = (gaussian_compat * gaussian_filter_reference(smooth, q, "symmetric")
                   + bilateral_compat * gaussian_filter_reference(appearance, q, "symmetric"))
        q = torch.softmax(scores + message, 1)
    return q.T.reshape(classes, height, width).numpy()


@pytest.fixture(scope="module")
def scene():
    rng = np.random.default_rng(16)
    image = np.zeros((HEIGHT, WIDTH, 3))
    image[:, WIDTH // 2:] = 200.0
    image[HEIGHT // 2:, :4] = 90.0
    image = np.clip(image + rng.normal(0, 6, image.shape), 0, 255).astype(np.uint8)
    logits = rng.normal(size=(3, HEIGHT, WIDTH)).astype(np.float32)
    return logits, image


def _refine(logits, image, backend="pydensecrf", **settings):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # float images outside 0-255 warn about their units
        crf = DenseCRF(backend=backend, **{**SETTINGS, **settings})
        return crf.refine(logits, image, input_type="logits")


def _assert_close_to_brute_force(probs, logits, image, srgb, **settings):
    options = {**SETTINGS, **settings}
    exact = brute_force_mean_field(logits, image, options["n_iter"], options["gaussian_sxy"],
                                   options["gaussian_compat"], options["bilateral_sxy"], srgb,
                                   options["bilateral_compat"])
    # the lattice approximates the Gaussian (a few per cent per filter, see test_lattice)
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)
    assert np.abs(probs - exact).mean() < 0.05
    assert (probs.argmax(0) == exact.argmax(0)).mean() >= 0.95


@pytest.mark.parametrize(
    ("scale", "offset", "dtype"),
    [
        (1.0, 0.0, np.uint8),          # pydensecrf's own features (the reference case)
        (257.0, 0.0, np.uint16),       # a 16-bit image, srgb in its units
        (1e-6, 0.0, np.float64),       # a float image in tiny units
        (1e6, 0.0, np.float64),        # a float image in huge units
        (1.0, 1e6, np.float64),        # far from 0: centred before pydensecrf sees it
        (1000.0, -5e6, np.float32),
    ],
)
@pytest.mark.parametrize("backend", ["pydensecrf", "torch"])
def test_any_units_inside_the_range_agree_with_brute_force(scene, scale, offset, dtype, backend):
    logits, image = scene
    scaled = (image.astype(np.float64) * scale + offset).astype(dtype)
    probs = _refine(logits, scaled, backend, bilateral_srgb=13.0 * scale)
    _assert_close_to_brute_force(probs, logits, scaled, 13.0 * scale)
    if offset == 0.0:
        # the same features in other units: the same answer as the uint8 photo
        np.testing.assert_allclose(probs, _refine(logits, image, backend, bilateral_srgb=13.0),
                                   atol=2e-5)


def test_sixteen_bit_image_with_the_default_srgb(scene):
    """A 16-bit image spanning 0-65535 with srgb=13 spans 5 000 standard deviations: it fits."""
    logits, image = scene
    wide = image.astype(np.uint16) * 257
    probs = _refine(logits, wide, bilateral_srgb=13.0)
    _assert_close_to_brute_force(probs, logits, wide, 13.0)


@pytest.mark.parametrize(("gaussian_sxy", "bilateral_sxy"),
                         [(1e-3, 1e-2), (1e-2, 1e-2), (1e3, 1e3), (1e30, 1e30)])
@pytest.mark.parametrize("backend", ["pydensecrf", "torch"])
def test_tiny_and_huge_spatial_widths_inside_the_range(scene, gaussian_sxy, bilateral_sxy,
                                                       backend):
    logits, image = scene
    sxy = {"gaussian_sxy": gaussian_sxy, "bilateral_sxy": bilateral_sxy}
    probs = _refine(logits, image, backend, bilateral_srgb=13.0, **sxy)
    _assert_close_to_brute_force(probs, logits, image, 13.0, **sxy)


def test_tiny_srgb_on_a_constant_image(scene):
    logits, _ = scene
    constant = np.full((HEIGHT, WIDTH, 3), 1e12)
    probs = _refine(logits, constant, bilateral_srgb=1e-12)
    _assert_close_to_brute_force(probs, logits, np.zeros_like(constant), 1.0)


@pytest.mark.parametrize(
    ("settings", "image", "match"),
    [
        ({"bilateral_srgb": 1e-12}, np.array([[[0, 0, 0], [255, 255, 255]]], np.uint8),
         r"span \(0.2, 0, 2.55e\+14, 2.55e\+14, 2.55e\+14\) standard deviations \(positions / "
         r"bilateral_sxy, then image / bilateral_srgb\).*raise bilateral_sxy, bilateral_srgb"),
        ({"gaussian_sxy": 1e-30, "bilateral_sxy": 1e-30}, np.zeros((20, 30, 3), np.uint8),
         r"span \(2.9e\+31, 1.9e\+31\) standard deviations \(positions / gaussian_sxy\).*about "
         r"2.196e\+04 standard deviations in each of these 2 features; raise gaussian_sxy"),
        ({"bilateral_sxy": 1e-3}, np.zeros((20, 30, 3), np.uint8), "raise bilateral_sxy"),
        ({"bilateral_srgb": 1e-300}, np.full((1, 2, 3), [[0.0], [1e12]]),
         r"span \(0.2, 0, inf, inf, inf\)"),
    ],
)
def test_features_beyond_the_range_raise_before_pydensecrf(settings, image, match):
    height, width = image.shape[:2]
    scores = np.full((2, height, width), 0.5, np.float32)
    with pytest.raises(ValueError, match=match):
        _refine(scores, image, **{**settings, "n_iter": 1})


def test_embedding_extent_bounds_the_lattice_embedding():
    rng = np.random.default_rng(0)
    for d in (1, 2, 5, 7):
        points = rng.uniform(-50, 80, (d, 300))
        low, high = points.min(1), points.max(1)
        elevated = _elevate(torch.tensor(points)).numpy()
        np.testing.assert_allclose(_embedding_rows(d) @ points, elevated, atol=1e-9)
        extent = _embedding_extent(low, high)
        assert np.abs(elevated).max() <= extent + 1e-9
        # the bound is reached at a corner of the box
        corners = np.where(_embedding_rows(d) > 0, high, low)
        assert np.isclose(np.abs(_embedding_rows(d) @ corners.T).max(), extent) or \
            np.isclose(np.abs(_embedding_rows(d) @ np.where(_embedding_rows(d) > 0, low,
                                                             high).T).max(), extent)
    assert _embedding_extent(np.zeros(2), np.array([np.inf, 1.0])) == np.inf
    assert _PYDENSECRF_EXTENT < 2**15


def test_labels_to_unary_checks_num_classes_against_memory():
    labels = np.zeros((100, 100), dtype=np.int64)
    with pytest.raises(ValueError, match=r"num_classes=2147483648 needs a float32 unary of shape "
                                         r"\(C, 100, 100\) of 8e\+04 GiB"):
        labels_to_unary(labels, 2**31)
    with pytest.raises(ValueError, match=f"unknown_label must be <= {2**63 - 1}"):
        labels_to_unary(labels, 3, unknown_label=2**63)
    assert labels_to_unary(labels, 3, unknown_label=2**63 - 1).shape == (3, 100, 100)


@pytest.mark.parametrize("shape", [(2, 0, 3), (0, 3, 3), (2, 3, 0)])
def test_empty_scores_say_so(shape):
    scores = np.zeros(shape, np.float32)
    for convert in (scores_to_unary, scores_to_labels):
        for input_type in ("auto", "logits", "probs", "unary"):
            with pytest.raises(ValueError, match=r"scores must not be empty, got shape "
                                                 rf"\({shape[0]}, {shape[1]}, {shape[2]}\)"):
                convert(scores, input_type)
        with pytest.raises(ValueError, match="scores must not be empty"):
            convert(torch.from_numpy(scores))
