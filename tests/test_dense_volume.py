"""3-D volumes and the generic mean_field: agreement with pydensecrf's generic DenseCRF class."""

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import torch
from scipy.ndimage import gaussian_filter

from crfseg.crf import DenseCRF, grid_features, mean_field

BACKENDS = ["pydensecrf", "torch"]


def _volume(rng, shape=(10, 24, 28), classes=3):
    """A noisy phantom: a bright ball and a dark slab in a mid-gray volume, and smooth logits."""
    d, h, w = shape
    z, y, x = np.mgrid[0:d, 0:h, 0:w]
    truth = np.zeros(shape, np.int64)
    truth[((z - d / 2) * 2.5) ** 2 + (y - h / 2) ** 2 + (x - w / 2) ** 2 < (h / 3) ** 2] = 1
    truth[:, :, : w // 5] = 2
    intensity = np.array([100.0, 180.0, 30.0])[truth] + rng.normal(0, 8, shape)
    onehot = np.eye(classes)[truth].transpose(3, 0, 1, 2)
    logits = 2.0 * onehot + np.stack([gaussian_filter(rng.normal(size=shape), 1.5) * 6
                                      for _ in range(classes)])
    return logits.astype(np.float32), intensity.astype(np.float32), truth


def _pydensecrf_generic(unary, kernels, n_iter):
    """pydensecrf's generic class: unary (C, P), kernels [(features (d, P), compat)]."""
    crf = dcrf.DenseCRF(unary.shape[1], unary.shape[0])
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    for features, compat in kernels:
        crf.addPairwiseEnergy(np.ascontiguousarray(features, dtype=np.float32), compat=compat)
    return np.asarray(crf.inference(n_iter)).reshape(unary.shape)


# ------------------------------------------------------------- generic mean_field


def test_mean_field_agrees_with_pydensecrfs_generic_class(rng):
    logits, intensity, _ = _volume(rng)
    shape = intensity.shape
    scores = torch.from_numpy(logits)[None]
    positions = grid_features(1, shape, (1.5, 3.0, 3.0))
    bilateral = torch.cat([grid_features(1, shape, (4.0, 8.0, 8.0)),
                           torch.from_numpy(intensity)[None, None] / 20.0], 1)
    vector = np.array([6.0, 10.0, 8.0])
    probs = torch.softmax(mean_field(scores, [(positions, 3.0), (bilateral, vector)]), 1)[0]
    unary = -torch.log_softmax(scores[0], 0).numpy().reshape(3, -1)
    expected = _pydensecrf_generic(unary, [(positions[0].reshape(3, -1).numpy(), 3.0),
                                           (bilateral[0].reshape(4, -1).numpy(),
                                            -vector.astype(np.float32))], 5)
    probs = probs.numpy().reshape(3, -1)
    assert (probs.argmax(0) == expected.argmax(0)).mean() >= 0.995
    assert np.abs(probs - expected).mean() < 1e-5


def test_mean_field_on_point_sets_and_normalisations(rng):
    """Any spatial layout: (N, C, P) points give the same result as (N, C, 1, P) images."""
    features = torch.from_numpy(rng.random((1, 4, 300)) * 3)
    scores = torch.from_numpy(rng.normal(size=(1, 3, 300)))
    matrix = torch.from_numpy(rng.random((3, 3)) * 2)
    matrix = matrix + matrix.T  # pydensecrf symmetrises a compatibility matrix
    for normalization, code in (("symmetric", dcrf.NORMALIZE_SYMMETRIC),
                                ("after", dcrf.NORMALIZE_AFTER),
                                ("before", dcrf.NORMALIZE_BEFORE)):
        refined = mean_field(scores, [(features, matrix)], 4, normalization=normalization)
        image = mean_field(scores[..., None, :], [(features[..., None, :], matrix)], 4,
                           normalization=normalization)
        torch.testing.assert_close(refined, image[..., 0, :])
        crf = dcrf.DenseCRF(300, 3)
        crf.setUnaryEnergy(np.ascontiguousarray(-torch.log_softmax(scores[0], 0).numpy(),
                                                dtype=np.float32))
        crf.addPairwiseEnergy(np.ascontiguousarray(features[0].numpy(), dtype=np.float32),
                              compat=matrix.numpy().astype(np.float32), normalization=code)
        expected = np.asarray(crf.inference(4))
        np.testing.assert_allclose(torch.softmax(refined, 1)[0].numpy(), expected, atol=1e-4)


def test_mean_field_gradcheck_on_a_volume(rng):
    scores = torch.from_numpy(rng.normal(size=(1, 2, 2, 3, 3))).requires_grad_()
    compat = torch.from_numpy(rng.random((2, 2))).requires_grad_()
    intensity = torch.from_numpy(rng.random((1, 1, 2, 3, 3)) * 2)
    features = torch.cat([grid_features(1, (2, 3, 3), (1.0, 1.5, 1.5), dtype=torch.float64),
                          intensity], 1)

    def run(s, c):
        return mean_field(s, [(features, c)], n_iter=2)

    assert torch.autograd.gradcheck(run, (scores, compat))


def test_grid_features():
    f = grid_features(2, (2, 3, 4), (1.0, 2.0, 4.0), dtype=torch.float64)
    assert f.shape == (2, 3, 2, 3, 4)
    z, y, x = np.mgrid[0:2, 0:3, 0:4]
    np.testing.assert_array_equal(f[1, 0].numpy(), x / 4.0)
    np.testing.assert_array_equal(f[1, 1].numpy(), y / 2.0)
    np.testing.assert_array_equal(f[0, 2].numpy(), z / 1.0)
    with pytest.raises(ValueError, match=r"scales must hold one value per axis of shape \(2, 3\)"):
        grid_features(1, (2, 3), (1.0,))
    with pytest.raises(ValueError, match="num must be >= 1"):
        grid_features(0, (2, 3), (1.0, 1.0))


def test_mean_field_errors():
    scores = torch.zeros(1, 3, 4, 5)
    features = torch.zeros(1, 2, 4, 5)
    with pytest.raises(TypeError, match="scores must be a torch tensor"):
        mean_field(scores.numpy(), [(features, 1.0)])
    with pytest.raises(TypeError, match="scores must be a floating-point"):
        mean_field(scores.long(), [(features, 1.0)])
    with pytest.raises(ValueError, match=r"scores must be \(N, C, \*spatial\)"):
        mean_field(scores[0, 0], [(features, 1.0)])
    with pytest.raises(ValueError, match="at least 2 classes"):
        mean_field(scores[:, :1], [(features, 1.0)])
    with pytest.raises(ValueError, match=r"kernels\[0\] features must be \(N, d, \*spatial\) = "
                                         r"\(1, d, 4, 5\)"):
        mean_field(scores, [(features[..., :4], 1.0)])
    with pytest.raises(TypeError, match=r"kernels\[1\] must be a \(features, compat\) pair"):
        mean_field(scores, [(features, 1.0), features])
    with pytest.raises(TypeError, match="kernels must be a list"):
        mean_field(scores, features)
    with pytest.raises(TypeError, match=r"kernels\[0\] features must be a torch tensor"):
        mean_field(scores, [(features.numpy(), 1.0)])
    with pytest.raises(ValueError, match=r"kernels\[0\] compat must be a number, a \(C,\) vector "
                                         r"or a \(C, C\) matrix with C=3, got shape \(2,\)"):
        mean_field(scores, [(features, np.ones(2))])
    with pytest.raises(ValueError, match=r"kernels\[0\] compat contains 1 non-finite"):
        mean_field(scores, [(features, np.array([1.0, np.nan, 1.0]))])
    with pytest.raises(TypeError, match=r"kernels\[0\] compat must be numeric"):
        mean_field(scores, [(features, "potts")])
    with pytest.raises(ValueError, match="n_iter must be >= 0"):
        mean_field(scores, [(features, 1.0)], n_iter=-1)
    with pytest.raises(ValueError, match="n_iter must be <= 2147483647"):
        mean_field(scores, [(features, 1.0)], n_iter=2**31)
    with pytest.raises(ValueError, match="normalization must be one of"):
        mean_field(scores, [(features, 1.0)], normalization="l1")
    with pytest.raises(ValueError, match="scores contains 1 non-finite"):
        mean_field(scores.index_put((torch.tensor([0]),) * 4, torch.tensor(float("nan"))),
                   [(features, 1.0)])
    from crfseg.crf import PermutohedralLattice
    with pytest.raises(ValueError, match=r"kernels\[0\] is a lattice of 10 points"):
        mean_field(scores, [(PermutohedralLattice(torch.zeros(10, 2)), 1.0)])


# ------------------------------------------------------------- DenseCRF on volumes


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (2.5, 0.8, 0.8)])
def test_backends_agree_on_volumes(rng, spacing):
    logits, intensity, truth = _volume(rng)
    options = {"gaussian_sxy": 2.0, "bilateral_sxy": 6.0, "bilateral_srgb": 15.0}
    expected = DenseCRF(**options).refine(logits, intensity, spacing=spacing)
    probs = DenseCRF(backend="torch", **options).refine(logits, intensity, spacing=spacing)
    assert isinstance(probs, np.ndarray) and probs.dtype == np.float32
    assert probs.shape == expected.shape == logits.shape
    assert (probs.argmax(0) == expected.argmax(0)).mean() >= 0.995
    assert np.abs(probs - expected).mean() < 1e-4
    # and the CRF cleans the noisy logits up
    assert (expected.argmax(0) == truth).mean() > (logits.argmax(0) == truth).mean() + 0.02


def test_spacing_is_in_the_units_of_the_standard_deviations(rng):
    logits, intensity, _ = _volume(rng, (6, 12, 14))
    logits = logits * 0.2  # unsure, so that the pairwise terms decide
    unit = DenseCRF(n_iter=3, gaussian_sxy=3.0, bilateral_sxy=10.0, backend="torch")
    doubled = DenseCRF(n_iter=3, gaussian_sxy=6.0, bilateral_sxy=20.0, backend="torch")
    np.testing.assert_array_equal(unit.refine(logits, intensity, spacing=(1, 1, 1)),
                                  doubled.refine(logits, intensity, spacing=(2, 2, 2)))
    # a slice that leans to class 0 between slices sure of class 1 follows them when they are
    # near, and keeps its own mind when the slices lie far apart
    lean = np.zeros((2, 5, 8, 8), np.float32)
    lean[1] = 3.0
    lean[:, 2] = [[[0.3]], [[0.0]]]
    flat = np.full((5, 8, 8), 100.0, np.float32)
    near = unit.predict(lean, flat, spacing=(1.0, 1.0, 1.0))
    far = unit.predict(lean, flat, spacing=(1000.0, 1.0, 1.0))
    assert (near == 1).all() and (far[2] == 0).all() and (far[[0, 1, 3, 4]] == 1).all()


def test_volume_forms_batches_and_modalities(rng):
    logits, intensity, _ = _volume(rng, (5, 10, 12))
    spacing = (2.0, 1.0, 1.0)
    crf = DenseCRF(n_iter=2, backend="torch")
    single = crf.refine(logits, intensity, spacing=spacing)
    as_tensor = crf.refine(torch.from_numpy(logits), torch.from_numpy(intensity), spacing=spacing)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == logits.shape
    np.testing.assert_allclose(as_tensor.numpy(), single, atol=1e-6)
    batch_logits = torch.from_numpy(np.stack([logits, logits[:, ::-1].copy()]))
    for images in (np.stack([intensity, intensity[::-1]]),                  # (N, D, H, W)
                   np.stack([intensity, intensity[::-1]])[:, None],         # (N, K, D, H, W)
                   np.stack([intensity, intensity[::-1]])[..., None]):      # (N, D, H, W, K)
        batch = crf.refine(batch_logits, torch.from_numpy(images.copy()), spacing=spacing)
        assert batch.shape == (2,) + logits.shape
        np.testing.assert_allclose(batch[0].numpy(), single, atol=1e-6)
    labels = crf.predict(batch_logits, np.stack([intensity, intensity[::-1]]), spacing=spacing)
    assert labels.shape == (2,) + intensity.shape
    # two modalities, a scalar srgb or one per modality
    two = np.stack([intensity, 255 - intensity], -1)
    for srgb in (13.0, (13.0, 13.0)):
        expected = DenseCRF(n_iter=2, bilateral_srgb=srgb).refine(logits, two, spacing=spacing)
        got = DenseCRF(n_iter=2, bilateral_srgb=srgb, backend="torch").refine(
            logits, two, spacing=spacing)
        assert (got.argmax(0) == expected.argmax(0)).mean() >= 0.995
    # a binary volume and a label volume
    p = torch.softmax(torch.from_numpy(logits[:2]), 0)[1].numpy()
    np.testing.assert_allclose(crf.refine(p, intensity, spacing=spacing),
                               crf.refine(np.stack([1 - p, p]), intensity, spacing=spacing),
                               atol=1e-6)
    votes = logits.argmax(0)
    got = crf.predict(votes, intensity, "labels", num_classes=3, gt_prob=0.6, spacing=spacing)
    assert got.shape == votes.shape and (got == votes).mean() > 0.8


@pytest.mark.parametrize("backend", BACKENDS)
def test_volume_errors(rng, backend):
    logits, intensity, _ = _volume(rng, (4, 6, 8))
    crf = DenseCRF(n_iter=1, backend=backend)
    for spacing, message in (((1.0, 0.0, 1.0), r"spacing\[1\] must be > 0"),
                             ((1.0, -2.0, 1.0), r"spacing\[1\] must be > 0"),
                             ((1.0, 1.0), r"spacing must be three numbers \(sz, sy, sx\)"),
                             ("111", "spacing must be three numbers"),
                             ((1.0, float("nan"), 1.0), r"spacing\[1\] must be finite")):
        with pytest.raises(ValueError, match=message):
            crf.refine(logits, intensity, spacing=spacing)
    with pytest.raises(TypeError, match=r"spacing\[0\] must be a real number"):
        crf.refine(logits, intensity, spacing=("a", 1, 1))
    bad = intensity.copy()
    bad[1, 2, 3] = np.nan
    with pytest.raises(ValueError, match="image contains 1 non-finite"):
        crf.refine(logits, bad, spacing=(1, 1, 1))
    bad_scores = logits.copy()
    bad_scores[0, 1, 2, 3] = np.inf
    with pytest.raises(ValueError, match="scores contains 1 non-finite"):
        crf.refine(bad_scores, intensity, spacing=(1, 1, 1))
    with pytest.raises(ValueError, match=r"same spatial size, got scores \(D, H, W\) = "
                                         r"\(4, 6, 8\) and image \(D, H, W\) = \(4, 6, 7\)"):
        crf.refine(logits, intensity[..., :7], spacing=(1, 1, 1))
    with pytest.raises(ValueError, match=r"volumes \(C, D, H, W\) need spacing=\(sz, sy, sx\)"):
        DenseCRF(n_iter=1).refine(logits, intensity)
    with pytest.raises(ValueError, match="image has K=1 channels but bilateral_srgb has 2"):
        DenseCRF(bilateral_srgb=(1.0, 2.0), backend=backend).refine(logits, intensity,
                                                                   spacing=(1, 1, 1))
    if backend == "pydensecrf":
        with pytest.raises(ValueError, match=r"batches \(N, C, D, H, W\) need backend='torch'"):
            crf.refine(logits[None], intensity[None], spacing=(1, 1, 1))
    else:
        with pytest.raises(ValueError, match="same number of images"):
            crf.refine(np.stack([logits] * 3), np.stack([intensity] * 2), spacing=(1, 1, 1))


def test_volumes_and_generic_mean_field_on_every_device(rng, device):
    logits, intensity, _ = _volume(rng, (5, 12, 14))
    crf = DenseCRF(n_iter=3, backend="torch", device=device)
    probs = crf.refine(torch.from_numpy(logits), torch.from_numpy(intensity),
                       spacing=(2.0, 1.0, 1.0))
    assert probs.device.type == device.type
    expected = DenseCRF(n_iter=3).refine(logits, intensity, spacing=(2.0, 1.0, 1.0))
    assert (probs.argmax(0).cpu().numpy() == expected.argmax(0)).mean() >= 0.995
    scores = torch.from_numpy(logits)[None].to(device)
    features = grid_features(1, intensity.shape, (2.0, 3.0, 3.0), device=device)
    refined = mean_field(scores, [(features, 3.0)], n_iter=2)
    assert refined.device.type == device.type and refined.shape == scores.shape
