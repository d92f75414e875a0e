"""PermutohedralLattice: brute-force oracle, densecrf's lattice, gradients, batches, errors."""

import dataclasses
import importlib

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import torch

from crfseg.crf import DenseCRF, PermutohedralLattice
from crfseg.crf import lattice as lattice_module
from crfseg.crf._reference import gaussian_filter_reference
from crfseg.crf.lattice import (
    MEMORY_LIMIT_ENV,
    NORMALIZATIONS,
    available_memory,
    compiled_engine_available,
    estimate_mean_field_memory,
    images_per_group,
)
from crfseg.crf.mean_field import mean_field

# crfseg.crf exports the function mean_field under its module's name
mean_field_module = importlib.import_module("crfseg.crf.mean_field")

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


@pytest.mark.parametrize("engine", ["compiled", "tensor"])
@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_normalised_kernel_close_to_brute_force(d, engine):
    features = _points(d)
    lattice = PermutohedralLattice(features, engine=engine)
    assert lattice.pattern.native == (engine == "compiled")
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


@pytest.mark.parametrize("engine", ["compiled", "tensor"])
def test_deterministic_mode_and_repeatability(engine):
    # the tensor engine's gathers and segment sums are what CUDA runs in deterministic mode
    features = _points(5, n=500).float()
    values = torch.rand(500, 6, generator=torch.Generator().manual_seed(5))
    fast = PermutohedralLattice(features, engine=engine).filter(values, "symmetric")
    again = PermutohedralLattice(features, engine=engine).filter(values, "symmetric")
    ordered = PermutohedralLattice(features, deterministic=True, engine=engine).filter(
        values, "symmetric")
    assert torch.equal(fast, again)
    torch.testing.assert_close(ordered, fast, rtol=1e-5, atol=1e-6)
    assert torch.equal(ordered, PermutohedralLattice(features, deterministic=True, engine=engine)
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
    with pytest.raises(ValueError, match="engine must be one of"):
        PermutohedralLattice(good, engine="cython")
    with pytest.raises(ValueError, match="engine='compiled' builds on the CPU without gradients"):
        PermutohedralLattice(good.clone().requires_grad_(), engine="compiled")
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


def _relabelling(a, b):
    """Whether the vertex numbers ``a`` and ``b`` (same shape) name the same vertices."""
    pairs = torch.unique(torch.stack([a.reshape(-1).long(), b.reshape(-1).long()]), dim=1)
    return (torch.unique(pairs[0]).numel() == pairs.shape[1]
            and torch.unique(pairs[1]).numel() == pairs.shape[1])


@pytest.mark.parametrize("d", [1, 2, 3, 5, 8])
def test_compiled_and_tensor_engines_build_the_same_lattice(d):
    gen = torch.Generator().manual_seed(10 + d)
    features = torch.rand(3, d, 9, 11, generator=gen, dtype=torch.float64) * 4 - 1
    values = torch.rand(3, 4, 9, 11, generator=gen, dtype=torch.float64)
    compiled = PermutohedralLattice(features, engine="compiled")
    tensor = PermutohedralLattice(features, engine="tensor")
    assert compiled.pattern.native and not tensor.pattern.native
    assert compiled.num_vertices == tensor.num_vertices
    torch.testing.assert_close(compiled.weights, tensor.weights, rtol=0, atol=1e-12)
    assert _relabelling(compiled.pattern.offset, tensor.pattern.offset)
    for normalization in NORMALIZATIONS:
        torch.testing.assert_close(compiled.filter(values, normalization),
                                   tensor.filter(values, normalization), rtol=1e-12, atol=1e-12)


def test_a_broken_relabelling_is_detected():
    gen = torch.Generator().manual_seed(2)
    features = torch.rand(300, 3, generator=gen, dtype=torch.float64) * 3
    offset = PermutohedralLattice(features, engine="tensor").pattern.offset
    shuffled = offset.clone()
    shuffled[0, 0] = (shuffled[0, 0] + 1) % int(offset.max() + 1)
    assert _relabelling(offset, offset.flip(0).flip(0))
    assert not _relabelling(offset, shuffled)


def test_compiled_kernels_split_over_threads_like_one_range(monkeypatch):
    # several ranges: one vertex table each, merged and renumbered; splat buffers summed
    gen = torch.Generator().manual_seed(11)
    features = torch.rand(1, 5, 30, 40, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(1, 3, 30, 40, generator=gen, dtype=torch.float64)
    one = PermutohedralLattice(features, engine="compiled")
    expected = one.filter(values, "symmetric")
    monkeypatch.setattr(lattice_module, "_ROWS_PER_THREAD", 100)
    torch.set_num_threads(3)
    assert len(lattice_module._ranges(1200)) == 3
    split = PermutohedralLattice(features, engine="compiled")
    assert split.num_vertices == one.num_vertices
    assert _relabelling(split.pattern.offset, one.pattern.offset)
    torch.testing.assert_close(split.filter(values, "symmetric"), expected, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.skipif(not compiled_engine_available(), reason="crfseg._lattice is not built")
@pytest.mark.parametrize("threads", [2, 3, 4])
@pytest.mark.parametrize("classes", [2, 21])
def test_mean_field_on_several_threads_matches_one(monkeypatch, threads, classes):
    # a batch of two images: the build's tables per part, the splat's buffers per thread
    # (with and without the softmax taken in the splat), the blur and the slices, all split
    gen = torch.Generator().manual_seed(classes)
    image = torch.rand(2, 3, 40, 50, generator=gen) * 255
    logits = torch.randn(2, classes, 40, 50, generator=gen) * 3
    crf = DenseCRF(backend="torch", device="cpu", n_iter=3)
    expected = crf.refine(logits, image)
    monkeypatch.setattr(lattice_module, "_ROWS_PER_THREAD", 256)
    torch.set_num_threads(threads)
    assert len(lattice_module._ranges(4000)) == threads
    torch.testing.assert_close(DenseCRF(backend="torch", device="cpu", n_iter=3)
                               .refine(logits, image), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(not compiled_engine_available(), reason="crfseg._lattice is not built")
def test_compiled_kernels_on_python_threads_match_one_range(monkeypatch):
    # a build without OpenMP splits the work over a pool of Python threads instead
    gen = torch.Generator().manual_seed(13)
    features = torch.rand(1, 5, 30, 40, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(1, 3, 30, 40, generator=gen, dtype=torch.float64)
    expected = PermutohedralLattice(features, engine="compiled").filter(values, "symmetric")
    monkeypatch.setattr(lattice_module, "_OPENMP", False)
    monkeypatch.setattr(lattice_module, "_ROWS_PER_THREAD", 100)
    torch.set_num_threads(3)
    split = PermutohedralLattice(features, engine="compiled")
    torch.testing.assert_close(split.filter(values, "symmetric"), expected, rtol=1e-12,
                               atol=1e-12)


@pytest.mark.skipif(not compiled_engine_available() or not lattice_module._OPENMP,
                    reason="crfseg._lattice is not built with OpenMP")
def test_compiled_kernels_share_torchs_openmp_runtime():
    # two runtimes would keep two pools of workers competing for the same cores
    with open("/proc/self/maps", encoding="utf-8") as maps:
        runtimes = {line.split()[-1] for line in maps if "libgomp" in line}
    assert len(runtimes) == 1, runtimes


@pytest.mark.skipif(not compiled_engine_available(), reason="crfseg._lattice is not built")
def test_compiled_kernels_refuse_bad_thread_counts_and_buffers():
    from crfseg import _lattice

    values = np.ones((6, 3))
    weights = np.ones((6, 2))
    offset = np.zeros((6, 2), dtype=np.int32)
    out = np.empty((4, 3))
    with pytest.raises(ValueError, match="threads must be at least 1"):
        _lattice.slice_points(out, weights, offset, values, 0, 6, 0)
    with pytest.raises(ValueError, match=r"3 threads need \(2, 4, 3\) spare buffers"):
        _lattice.splat(values, weights, offset, np.empty(0), out, np.empty((1, 4, 3)), 0, 6, 3)
    with pytest.raises(ValueError, match="at most 64 classes"):
        _lattice.splat_softmax(np.ones((6, 65)), weights, offset, np.empty(0),
                               np.empty((4, 65)), np.empty((0, 4, 65)), 0, 6, 1)
    with pytest.raises(ValueError, match="2 tables need 3 bounds"):
        _lattice.build_tables([_lattice.VertexTable(2, 4)] * 2, np.ones((2, 6)),
                              np.empty(0, dtype=np.int64), weights.copy(), offset.copy(),
                              np.array([0, 6], dtype=np.int64))
    # two threads splat into two buffers: the same sums as one
    ones = np.empty((4, 3))
    _lattice.splat(values, weights, offset, np.empty(0), ones, np.empty((0, 4, 3)), 0, 6, 1)
    twice = np.empty((4, 3))
    _lattice.splat(values, weights, offset, np.empty(0), twice, np.empty((1, 4, 3)), 0, 6, 2)
    np.testing.assert_array_equal(twice, ones)
    assert ones[0].tolist() == [12.0, 12.0, 12.0]


def test_compiled_engine_is_differentiable_in_the_values():
    gen = torch.Generator().manual_seed(12)
    features = torch.rand(40, 5, generator=gen, dtype=torch.float64) * 3
    lattice = PermutohedralLattice(features, engine="compiled")
    values = torch.rand(40, 2, generator=gen, dtype=torch.float64, requires_grad=True)
    for normalization in NORMALIZATIONS:
        assert torch.autograd.gradcheck(lambda v, n=normalization: lattice.filter(v, n), (values,),
                                        fast_mode=True)
    # features that need gradients are built by the tensor engine, which carries them
    tracked = features.clone().requires_grad_()
    assert not PermutohedralLattice(tracked).pattern.native


def test_feature_range_limit_is_checked_before_any_work():
    ok = torch.tensor([[0.0, 0.0], [1e7, 1.0]], dtype=torch.float32)
    torch.testing.assert_close(PermutohedralLattice(ok).filter(torch.ones(2, 1), "after"),
                               torch.ones(2, 1))
    # float32 rounding cannot place 1e7-scale points on the lattice: the tensor engine refuses
    with pytest.raises(ValueError, match=r"too wide a range.*rounding to the lattice in float32"):
        PermutohedralLattice(ok, engine="tensor")
    with pytest.raises(ValueError, match=r"too wide a range.*32-bit integer keys"):
        PermutohedralLattice(torch.tensor([[0.0, 0.0], [1e9, 1.0]]), engine="compiled")


@pytest.mark.parametrize("options, image", [
    ({}, np.full((1, 2, 3), 1e12)),
    ({"bilateral_srgb": 1e-12}, np.full((1, 2, 3), 200.0)),
])
def test_dense_crf_refuses_features_beyond_the_key_range(options, image):
    crf = DenseCRF(backend="torch", n_iter=1, device="cpu", **options)
    with pytest.warns(UserWarning) if image.max() > 255 else _no_warning():
        with pytest.raises(ValueError, match="features span too wide a range"):
            crf.refine(np.zeros((2, 1, 2), np.float32), image)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_memory_estimate_grows_with_the_work():
    base = estimate_mean_field_memory(1, 21, 480 * 360)
    assert estimate_mean_field_memory(2, 21, 480 * 360) == 2 * base
    assert estimate_mean_field_memory(1, 42, 480 * 360) > base
    assert estimate_mean_field_memory(1, 21, 960 * 360) > base
    assert estimate_mean_field_memory(1, 21, 480 * 360, dtype=torch.float64) > base
    assert estimate_mean_field_memory(1, 21, 480 * 360, feature_dims=(2, 5, 5)) > base
    assert estimate_mean_field_memory(1, 21, 480 * 360, device="cuda") > base
    # the lattices' real storage stays within the estimate
    features = torch.rand(1, 5, 36, 48) * 4
    lattice = PermutohedralLattice(features)
    stored = sum(t.numel() * t.element_size() for t in (
        lattice.weights, lattice.pattern.offset, lattice.pattern.groups[0].neighbours))
    assert stored < estimate_mean_field_memory(1, 2, 36 * 48, feature_dims=(5,))


def test_memory_estimate_errors():
    with pytest.raises(ValueError, match="num_classes must be >= 1"):
        estimate_mean_field_memory(1, 0, 10)
    with pytest.raises(TypeError, match="pixels must be an integer"):
        estimate_mean_field_memory(1, 2, 10.5)
    with pytest.raises(ValueError, match="feature_dims must name at least one"):
        estimate_mean_field_memory(1, 2, 10, feature_dims=())


@pytest.mark.parametrize("limit, expected", [("123", 123), ("2k", 2048), ("1.5G", 3 * 2**29),
                                             ("3MB", 3 * 2**20)])
def test_memory_limit_from_the_environment(monkeypatch, limit, expected):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, limit)
    assert available_memory("cpu") == expected


def test_memory_limit_must_be_a_size(monkeypatch):
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "lots")
    with pytest.raises(ValueError, match="CRFSEG_MEMORY_LIMIT must be a size"):
        available_memory()


def test_images_are_grouped_to_fit_or_refused(monkeypatch):
    one = estimate_mean_field_memory(1, 4, 30 * 40)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(10 * one))
    assert images_per_group(5, 4, 30 * 40) == 5
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(2 * one + 1))
    assert images_per_group(5, 4, 30 * 40) == 2
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(one // 2))
    with pytest.raises(ValueError, match=r"one image of 1200 pixels with 4 classes needs about "
                                         r"\d+ KiB but cpu has \d+ KiB free; downscale"):
        images_per_group(5, 4, 30 * 40)


def test_dense_crf_splits_a_batch_that_does_not_fit(monkeypatch):
    gen = torch.Generator().manual_seed(13)
    scores = torch.randn(3, 4, 30, 40, generator=gen)
    image = torch.rand(3, 3, 30, 40, generator=gen) * 255
    crf = DenseCRF(n_iter=2, backend="torch", device="cpu")
    whole = crf.refine(scores, image)
    calls = []
    original = mean_field_module.mean_field

    def counting(scores, *args, **kwargs):
        calls.append(scores.shape[0])
        return original(scores, *args, **kwargs)

    monkeypatch.setattr(mean_field_module, "mean_field", counting)
    one = estimate_mean_field_memory(1, 4, 30 * 40)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, str(one + 1))
    split = crf.refine(scores, image)
    assert calls == [1, 1, 1]
    torch.testing.assert_close(split, whole, rtol=0, atol=1e-6)
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1k")
    with pytest.raises(ValueError, match="one image of 1200 pixels with 4 classes"):
        crf.refine(scores, image)


def test_on_device_softmax_path_on_the_cpu(monkeypatch):
    # accelerators skip the read-back of the softmax bound and run torch's softmax each time
    gen = torch.Generator().manual_seed(14)
    scores = torch.randn(1, 3, 12, 15, generator=gen) * 3
    features = torch.rand(1, 5, 12, 15, generator=gen) * 3
    kernels = [(PermutohedralLattice(features, engine="tensor"), 5.0)]
    host = mean_field(scores, kernels, 4)
    monkeypatch.setattr(mean_field_module, "_reads_back_cheaply", lambda device: False)
    device_path = mean_field(scores, kernels, 4)
    torch.testing.assert_close(device_path, host, rtol=1e-5, atol=1e-5)
    compiled = mean_field(scores, [(PermutohedralLattice(features, engine="compiled"), 5.0)], 4)
    torch.testing.assert_close(compiled, host, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("classes", [4, 16])  # softmax inside the splat, or a buffer of it
@pytest.mark.parametrize("normalization", NORMALIZATIONS)
def test_compiled_mean_field_matches_the_stacked_tensor_engine(normalization, classes):
    gen = torch.Generator().manual_seed(15)
    scores = torch.randn(2, classes, 10, 12, generator=gen, dtype=torch.float64) * 2
    positions = torch.rand(2, 2, 10, 12, generator=gen, dtype=torch.float64) * 4
    colours = torch.rand(2, 5, 10, 12, generator=gen, dtype=torch.float64) * 3
    compat = torch.rand(classes, classes, generator=gen, dtype=torch.float64)
    tensor = [(PermutohedralLattice(positions, engine="tensor"), 3.0),
              (PermutohedralLattice(colours, engine="tensor"), compat)]
    expected = mean_field(scores, tensor, 3, normalization=normalization)
    kept = PermutohedralLattice(positions, engine="compiled")
    raw = kept.weights.clone()
    for _ in range(2):  # a lattice the caller keeps is reused, its weights untouched
        got = mean_field(scores, [(kept, 3.0), (colours, compat)], 3,
                         normalization=normalization)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)
    assert torch.equal(kept.weights, raw)


def test_free_memory_on_cuda_comes_from_the_driver(monkeypatch):
    # the CUDA branch, run on the CPU with the driver's answer stubbed
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (80 * 2**30, 141 * 2**30))
    monkeypatch.delenv(MEMORY_LIMIT_ENV, raising=False)
    assert available_memory("cuda") == 80 * 2**30
    assert images_per_group(8, 19, 2048 * 1024, device="cuda") == 8
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "16G")
    assert available_memory("cuda:0") == 16 * 2**30
    one = estimate_mean_field_memory(1, 19, 2048 * 1024, device="cuda")
    assert images_per_group(8, 19, 2048 * 1024, device="cuda") == 16 * 2**30 // one < 8
    monkeypatch.setenv(MEMORY_LIMIT_ENV, "1G")
    with pytest.raises(ValueError, match=r"2097152 pixels with 19 classes needs about 3\.\d\d GiB "
                                         r"but cuda has 1\.00 GiB free"):
        images_per_group(8, 19, 2048 * 1024, device="cuda")


@pytest.mark.parametrize("classes", [2, 12, 13, 21])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_compiled_softmax_either_way_is_torch_softmax(classes, dtype):
    gen = torch.Generator().manual_seed(16)
    scores = (torch.randn(500, classes, generator=gen) * 30).to(dtype)
    out = lattice_module._compiled_softmax(scores, torch.empty_like(scores))
    torch.testing.assert_close(out, torch.softmax(scores, 1))


@pytest.mark.parametrize("classes", [1, 2, 3])
def test_compiled_kernels_for_few_channels_match_the_tensor_engine(classes):
    # two channels (a binary mask) take a loop of their own in the splat and slice kernels
    gen = torch.Generator().manual_seed(17)
    scores = torch.randn(1, max(classes, 2), 15, 17, generator=gen, dtype=torch.float64)
    features = torch.rand(1, 5, 15, 17, generator=gen, dtype=torch.float64) * 3
    values = torch.rand(1, classes, 15, 17, generator=gen, dtype=torch.float64)
    compiled = PermutohedralLattice(features, engine="compiled")
    tensor = PermutohedralLattice(features, engine="tensor")
    for normalization in NORMALIZATIONS:
        torch.testing.assert_close(compiled.filter(values, normalization),
                                   tensor.filter(values, normalization))
        torch.testing.assert_close(mean_field(scores, [(compiled, 4.0)], 2,
                                              normalization=normalization),
                                   mean_field(scores, [(tensor, 4.0)], 2,
                                              normalization=normalization))
