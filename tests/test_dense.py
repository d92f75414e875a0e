"""DenseCRF, pydensecrf backend: exact agreement with a hand-written call, conversions, errors."""

import numpy as np
import pydensecrf.densecrf as dcrf
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.transform import resize

from crfseg.crf import DenseCRF, scores_to_unary
from crfseg.crf.dense import compat_matrix


def _photo(height=60, width=80):
    img = resize(data.astronaut(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(img).astype(np.uint8)


def _smooth_logits(rng, c, h, w, sigma=4.0, scale=3.0):
    raw = rng.normal(size=(c, h, w))
    return (scale * np.stack([gaussian_filter(x, sigma) for x in raw]) /
            np.stack([gaussian_filter(x, sigma) for x in raw]).std()).astype(np.float32)


@pytest.fixture
def photo_and_logits(rng):
    image = _photo()
    return image, _smooth_logits(rng, 5, *image.shape[:2])


def _hand_written(logits, image, n_iter=5):
    c, h, w = logits.shape
    shifted = logits - logits.max(0, keepdims=True)
    unary = -(shifted - np.log(np.exp(shifted).sum(0, keepdims=True)))
    d = dcrf.DenseCRF2D(w, h, c)
    d.setUnaryEnergy(np.ascontiguousarray(unary.reshape(c, -1), dtype=np.float32))
    d.addPairwiseGaussian(sxy=3, compat=3)
    d.addPairwiseBilateral(sxy=80, srgb=13, rgbim=np.ascontiguousarray(image), compat=10)
    return np.array(d.inference(n_iter), dtype=np.float32).reshape(c, h, w)


def test_refine_equals_hand_written_pydensecrf(photo_and_logits):
    image, logits = photo_and_logits
    probs = DenseCRF().refine(logits, image)
    assert probs.dtype == np.float32 and probs.shape == logits.shape
    np.testing.assert_array_equal(probs, _hand_written(logits, image))
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-5)


def test_every_input_form_gives_the_same_answer(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(n_iter=3)
    expected = crf.refine(logits, image)
    probs = np.exp(-scores_to_unary(logits.astype(np.float64), "logits"))
    forms = {
        "float64": (logits.astype(np.float64), "auto"),
        "fortran": (np.asfortranarray(logits), "logits"),
        "torch": (torch.from_numpy(logits), "auto"),
        "probs": (probs, "auto"),
        "unary": (-np.log(probs), "unary"),
    }
    for name, (scores, kind) in forms.items():
        got = crf.refine(scores, image, input_type=kind)
        np.testing.assert_allclose(got, expected, atol=2e-5, err_msg=name)
    np.testing.assert_array_equal(crf.predict(logits, image), expected.argmax(0))


def test_auto_recognises_probabilities():
    probs = np.full((2, 3, 3), 0.5, dtype=np.float32)
    np.testing.assert_allclose(scores_to_unary(probs), -np.log(0.5), rtol=1e-6)
    logits = np.zeros((2, 3, 3), dtype=np.float32) + 0.3  # sums to 0.6: logits
    np.testing.assert_allclose(scores_to_unary(logits), np.log(2), rtol=1e-6)


def test_image_forms(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(n_iter=2)
    rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(crf.refine(logits, rgba), crf.refine(logits, image))
    gray = image[:, :, 0]
    np.testing.assert_array_equal(crf.refine(logits, gray), crf.refine(logits, gray[:, :, None]))
    as_float = crf.refine(logits, image.astype(np.float32))
    np.testing.assert_allclose(as_float, crf.refine(logits, image), atol=1e-4)


def test_crf_follows_image_edges():
    h, w = 40, 60
    image = np.zeros((h, w, 3), dtype=np.uint8)
    image[:, 30:] = 220
    target = (np.arange(w) >= 30).astype(int)[None].repeat(h, 0)
    ramp = np.clip((np.arange(w) - 24) / 3.0, -3, 3)  # the CNN's boundary is 6 px off
    logits = np.stack([np.zeros((h, w)), np.broadcast_to(ramp, (h, w))]).astype(np.float32)
    before = logits.argmax(0)
    after = DenseCRF().predict(logits, image)
    assert (after == target).mean() > (before == target).mean()
    assert (after == target).mean() > 0.99


def test_compatibility_forms_agree(photo_and_logits):
    image, logits = photo_and_logits
    c = logits.shape[0]
    scalar = DenseCRF(n_iter=3, gaussian_compat=3, bilateral_compat=10).refine(logits, image)
    vector = DenseCRF(n_iter=3, gaussian_compat=np.full(c, 3.0),
                      bilateral_compat=np.full(c, 10.0)).refine(logits, image)
    matrix = DenseCRF(n_iter=3, gaussian_compat=3 * (1 - np.eye(c)),
                      bilateral_compat=10 * (1 - np.eye(c))).refine(logits, image)
    np.testing.assert_allclose(vector, scalar, atol=1e-5)
    np.testing.assert_allclose(matrix, scalar, atol=1e-4)
    np.testing.assert_allclose(compat_matrix(2.0, 3), -2 * np.eye(3))
    np.testing.assert_allclose(compat_matrix(np.array([1.0, 2.0]), 2), -np.diag([1.0, 2.0]))
    np.testing.assert_allclose(compat_matrix(np.array([[0, 1], [3, 0.0]]), 2), [[0, 2], [2, 0]])


def test_zero_iterations_return_the_input_softmax(photo_and_logits):
    image, logits = photo_and_logits
    expected = np.exp(-scores_to_unary(logits))
    np.testing.assert_allclose(DenseCRF(n_iter=0).refine(logits, image), expected, atol=1e-6)


def test_float_image_outside_range_warns(photo_and_logits):
    image, logits = photo_and_logits
    with pytest.warns(UserWarning, match="outside 0-255"):
        DenseCRF(n_iter=1).refine(logits, image.astype(np.float32) * 2)
    with pytest.warns(UserWarning, match=r"lie in \[0, 1\]"):
        DenseCRF(n_iter=1).refine(logits, image.astype(np.float32) / 255)


@pytest.mark.parametrize("backend", ["pydensecrf", "torch"])
def test_errors_of_every_backend(photo_and_logits, backend):
    image, logits = photo_and_logits
    crf = DenseCRF(n_iter=1, backend=backend)
    bad = logits.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="scores contains 1 non-finite"):
        crf.refine(bad, image)
    with pytest.raises(ValueError, match="at least 2 classes"):
        crf.refine(logits[:1], image)
    with pytest.raises(ValueError, match=r"same spatial size.*\(60, 80\).*\(60, 79\)"):
        crf.refine(logits, image[:, :79])
    with pytest.raises(ValueError, match="negative values"):
        crf.refine(logits, image, input_type="probs")
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(H, W, K\)"):
        crf.refine(logits, np.zeros((1, 60, 80, 2), np.uint8))
    with pytest.raises(TypeError, match="floating-point"):
        crf.refine(logits.astype(np.int64), image)
    with pytest.raises(TypeError, match="scores must be a numpy array"):
        crf.refine(logits.tolist(), image)
    with pytest.raises(ValueError, match="input_type must be one of"):
        crf.refine(logits, image, input_type="energy")
    with pytest.raises(ValueError, match="bilateral_compat has shape"):
        DenseCRF(bilateral_compat=np.ones(3), backend=backend).refine(logits, image)
    with pytest.raises(TypeError, match="uint8 or a float"):
        crf.refine(logits, image.astype(bool))


def test_errors_of_the_pydensecrf_backend(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(n_iter=1)
    with pytest.raises(ValueError, match="image must be"):
        crf.refine(logits, np.zeros((1, 60, 80, 3), np.uint8))
    with pytest.raises(ValueError, match=r"scores must be \(C, H, W\)"):
        crf.refine(logits[None], image)
    with pytest.raises(ValueError, match="square"):
        DenseCRF(gaussian_compat=np.ones((2, 3)))
    with pytest.raises(ValueError, match="gaussian_sxy must be > 0"):
        DenseCRF(gaussian_sxy=0)
    with pytest.raises(ValueError, match="n_iter must be >= 0"):
        DenseCRF(n_iter=-1)
    with pytest.raises(ValueError, match="backend must be one of"):
        DenseCRF(backend="gco")
