"""PermutohedralLattice: brute-force oracle, densecrf's lattice, gradients, batches, errors."""

import dataclasses

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import torch

from crfseg.crf import PermutohedralLattice
from crfseg.crf._reference import gaussian_filter_reference
from crfseg.crf.lattice import NORMALIZATIONS

# Relative Frobenius error of the normalised lattice kernel against the exact
# Gaussian, on 400 random points spread over a few standard deviations: the
# lattice's own approximation error stays below these, every broken lattice
# tried (no blur, a missing axis, shuffled neighbours, flat weights) exceeds them.
KERNEL_ERROR_BOUND = {1: 0.08, 2: 0.12, 3: 0.16, 5: 0.24}
SPREAD = {1: 12.0, 2: 6.0, 3: 4.0, 5: 3.0}



def _points(d, n=400, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(n, d, generator=gen, dtype=torch.float64) * SPREAD[d]


def _kernel_error(lattice, features, normalization="after"):
    eye = torch.eye(features.shape[0], dtype=features.dtype)
    ours = lattice.filter(eye, normalization)
    exact = gaussian_filter_reference(features, eye, normalization)
    return float((ours - exact).norm() / exact.norm())


def _break(lattice, kind):
    """A copy of ``lattice`` with one deliberate fault."""
    group = lattice.pattern.groups[0]
    neighbours = group.neighbours.clone()
    missing = group.stop - group.start
    if kind == "flat weights":
        lattice.weights = torch.full_like(lattice.weights, 1.0 / (lattice.dim + 1))
        return lattice
    if kind == "no blur":
        neighbours[:] = missing
    elif kind == "missing axis":
        neighbours[0] = missing
    else:
        gen = torch.Generator().manual_seed(1)
        neighbours = neighbours[:, :, torch.randperm(missing, generator=gen)]
    lattice.pattern = dataclasses.replace(
        lattice.pattern, groups=(dataclasses.replace(group, neighbours=neighbours),), _cache={})
    return lattice


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_normalised_kernel_close_to_brute_force(d):
    features = _points(d)
    lattice = PermutohedralLattice(features)
    for normalization in ("after", "symmetric", "before"):
        assert _kernel_error(lattice, features, normalization) < KERNEL_ERROR_BOUND[d]


@pytest.mark.parametrize("d", [2, 5])
@pytest.mark.parametrize("kind", ["flat weights", "no blur", "missing axis", "shuffled neighbours"])
def test_error_bound_catches_broken_lattices(d, kind):
    features = _points(d)
    broken = _break(PermutohedralLattice(features), kind)
    assert _kernel_error(broken, features) > KERNEL_ERROR_BOUND[d]


@pytest.mark.parametrize("d, spread_bound", [(2, 0.05), (5, 0.12)])
def test_raw_kernel_is_a_scaled_gaussian(d, spread_bound):
    # densecrf's unnormalised lattice is the Gaussian times a constant below 1
    features = _points(d)
    values = torch.rand(400, 2, dtype=torch.float64) + 0.5
    ratio = PermutohedralLattice(features).filter(values) / gaussian_filter_reference(
        features, values)
    assert 0.5 < float(ratio.mean()) < 1.0
    assert float(ratio.std() / ratio.mean()) < spread_bound


def test_after_normalisation_preserves_constants():
    features = _points(3, n=200)
    ones = torch.ones(200, 4, dtype=torch.float64)
    out = PermutohedralLattice(features).filter(3.0 * ones, "after")
    torch.testing.assert_close(out, 3.0 * ones)


def _pydensecrf_filter(image, unary, sxy, srgb=None):
    """densecrf's symmetric-normalised filter of ``Q0[0] - Q0[1]``, read off one iteration."""
    height, width = image.shape[:2]
    crf = dcrf.DenseCRF2D(width, height, 2)
    crf.setUnaryEnergy(unary)
    if srgb is None:
        crf.addPairwiseGaussian(sxy=sxy, compat=1.0)
    else:
        crf.addPairwiseBilateral(sxy=sxy, srgb=srgb, rgbim=image, compat=1.0)
    q = np.array(crf.inference(1), dtype=np.float64)
    # Q1 ∝ exp(-U + K Q0), so log(Q1[0] / Q1[1]) + U[0] - U[1] = K (Q0[0] - Q0[1])
    return np.log(q[0] / q[1]) + unary[0] - unary[1]


@pytest.mark.parametrize("sxy, srgb", [(3.0, None), (10.0, 13.0), (80.0, 13.0)])
def test_matches_densecrf_lattice(rng, sxy, srgb):
    height, width = 30, 40
    blocks = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
    image = np.ascontiguousarray(np.repeat(np.repeat(blocks, 5, 0), 5, 1))
    unary = (2 * rng.random((2, height * width))).astype(np.float32)
    expected = _pydensecrf_filter(image, unary, sxy, srgb)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    features = [xx / sxy, yy / sxy]
    if srgb is not None:
        features += list(np.moveaxis(image, 2, 0).astype(np.float32) / srgb)
    lattice = PermutohedralLattice(torch.from_numpy(np.stack(features)[None]))
    q0 = np.exp(-unary)
    q0 /= q0.sum(0)
    values = torch.from_numpy((q0[0] - q0[1]).reshape(1, 1, height, width))
    ours = lattice.filter(values, "symmetric").numpy().ravel()
    np.testing.assert_allclose(ours, expected, atol=2e-5)


def test_image_layout_and_batches_do_not_mix():
    gen = torch.Generator().manual_seed(3)
    features = torch.rand(2, 5, 6, 7, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(2, 4, 6, 7, generator=gen, dtype=torch.float64)
    batched = PermutohedralLattice(features).filter(values, "symmetric")
    assert batched.shape == values.shape
    for i in range(2):
        points = features[i].reshape(5, -1).t()
        single = PermutohedralLattice(points).filter(values[i].reshape(4, -1).t(), "symmetric")
        torch.testing.assert_close(batched[i].reshape(4, -1).t(), single)


@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_gradcheck_values_and_features(normalization):
    gen = torch.Generator().manual_seed(4)
    features = (torch.rand(15, 3, generator=gen, dtype=torch.float64) * 3).requires_grad_()
    values = torch.rand(15, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(
        lambda f, v: PermutohedralLattice(f).filter(v, normalization), (features, values),
        fast_mode=True)


def test_backward_is_the_adjoint_filter():
    features = _points(2, n=60)
    lattice = PermutohedralLattice(features)
    matrix = lattice.filter(torch.eye(60, dtype=torch.float64), "none")  # K[i, j]
    x = torch.rand(60, 1, dtype=torch.float64, requires_grad=True)
    y = torch.rand(60, 1, dtype=torch.float64)
    (lattice.filter(x, "none") * y).sum().backward()
    torch.testing.assert_close(x.grad, matrix.t() @ y)


def test_deterministic_mode_and_repeatability():
    features = _points(5, n=500).float()
    values = torch.rand(500, 6, generator=torch.Generator().manual_seed(5))
    fast = PermutohedralLattice(features).filter(values, "symmetric")
    again = PermutohedralLattice(features).filter(values, "symmetric")
    ordered = PermutohedralLattice(features, deterministic=True).filter(values, "symmetric")
    assert torch.equal(fast, again)
    torch.testing.assert_close(ordered, fast, rtol=1e-5, atol=1e-6)
    assert torch.equal(ordered, PermutohedralLattice(features, deterministic=True)
                       .filter(values, "symmetric"))


def test_runs_on_device(device):
    features = _points(5, n=300).float()
    values = torch.rand(300, 3, generator=torch.Generator().manual_seed(6))
    expected = PermutohedralLattice(features).filter(values, "symmetric")
    for deterministic in (False, True):
        lattice = PermutohedralLattice(features.to(device), deterministic=deterministic)
        out = lattice.filter(values.to(device), "symmetric")
        assert out.device.type == device.type
        torch.testing.assert_close(out.cpu(), expected, rtol=1e-4, atol=1e-5)


def test_attributes_and_repr():
    lattice = PermutohedralLattice(_points(3, n=50))
    assert (lattice.dim, lattice.num_points) == (3, 50)
    assert 4 <= lattice.num_vertices <= 50 * 4
    assert "PermutohedralLattice(dim=3" in repr(lattice)


def test_errors():
    good = _points(2, n=10)
    with pytest.raises(TypeError, match="features must be a torch tensor"):
        PermutohedralLattice(good.numpy())
    with pytest.raises(ValueError, match=r"features must be \(N, d, H, W\) or \(P, d\)"):
        PermutohedralLattice(good[0])
    with pytest.raises(TypeError, match="features must be a floating-point"):
        PermutohedralLattice(good.long())
    with pytest.raises(ValueError, match="at least one point"):
        PermutohedralLattice(good[:0])
    with pytest.raises(ValueError, match="at least one point"):
        PermutohedralLattice(good[:, :0])
    bad = good.clone()
    bad[3, 1] = float("nan")
    with pytest.raises(ValueError, match="features contains 1 non-finite"):
        PermutohedralLattice(bad)
    with pytest.raises(ValueError, match="too wide a range"):
        PermutohedralLattice(torch.tensor([[0.0] * 5, [1e12] * 5], dtype=torch.float64))
    lattice = PermutohedralLattice(good)
    with pytest.raises(TypeError, match="values must be a torch tensor"):
        lattice.filter(np.ones((10, 1)))
    with pytest.raises(TypeError, match="values must be a floating-point"):
        lattice.filter(torch.ones(10, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"values must be \(P, C\) with P = 10"):
        lattice.filter(torch.ones(9, 1, dtype=torch.float64))
    with pytest.raises(ValueError, match="normalization must be one of"):
        lattice.filter(torch.ones(10, 1, dtype=torch.float64), "mean")
    image = PermutohedralLattice(torch.rand(2, 2, 3, 4))
    with pytest.raises(ValueError, match=r"values must be \(N, C, H, W\) = \(2, C, 3, 4\)"):
        image.filter(torch.ones(2, 1, 4, 3))
