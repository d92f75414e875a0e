"""DenseCRF on every 2-D input users bring: label maps, binary maps, any channel count.

pydensecrf's own example (``examples/inference.py``: a photo, a colour-coded
annotation whose black is unknown, ``unary_from_labels(gt_prob=0.7)``) is
rebuilt here from pydensecrf's public API and compared with crfseg.
"""

import numpy as np
import pydensecrf.densecrf as dcrf
import pydensecrf.utils as dutils
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.transform import resize

from crfseg.crf import DenseCRF, labels_to_unary, mean_field
from crfseg.crf.dense import prepare_image

BACKENDS = ["pydensecrf", "torch"]


def _photo(name="chelsea", height=60, width=90):
    img = resize(getattr(data, name)(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(img).astype(np.uint8)


def scribble_annotation(height, width):
    """A colour-coded annotation of the chelsea photo: three coloured boxes, black elsewhere."""
    anno = np.zeros((height, width, 3), np.uint8)
    h, w = height / 60, width / 90
    anno[int(20 * h):int(40 * h), int(25 * w):int(50 * w)] = (255, 0, 0)   # the cat's face
    anno[int(48 * h):int(58 * h), int(3 * w):int(15 * w)] = (0, 255, 0)    # its white chest
    anno[int(15 * h):int(35 * h), int(78 * w):int(88 * w)] = (0, 0, 255)   # the background
    return anno


def pydensecrf_example(image, anno_rgb, use_2d, n_iter=5):
    """The recipe of pydensecrf's examples/inference.py, written against its public API."""
    code = (anno_rgb[..., 0].astype(np.uint32) | (anno_rgb[..., 1].astype(np.uint32) << 8)
            | (anno_rgb[..., 2].astype(np.uint32) << 16))
    colours, labels = np.unique(code, return_inverse=True)
    has_unknown = bool(colours[0] == 0)
    n_labels = len(colours) - int(has_unknown)
    unary = dutils.unary_from_labels(labels.ravel(), n_labels, gt_prob=0.7,
                                     zero_unsure=has_unknown)
    h, w = image.shape[:2]
    if use_2d:
        crf = dcrf.DenseCRF2D(w, h, n_labels)
        crf.setUnaryEnergy(unary)
        crf.addPairwiseGaussian(sxy=(3, 3), compat=3)
        crf.addPairwiseBilateral(sxy=(80, 80), srgb=(13, 13, 13), rgbim=image, compat=10)
    else:
        crf = dcrf.DenseCRF(h * w, n_labels)
        crf.setUnaryEnergy(unary)
        crf.addPairwiseEnergy(dutils.create_pairwise_gaussian(sdims=(3, 3), shape=(h, w)),
                              compat=3)
        crf.addPairwiseEnergy(dutils.create_pairwise_bilateral(
            sdims=(80, 80), schan=(13, 13, 13), img=image, chdim=2), compat=10)
    labels_out = np.argmax(crf.inference(n_iter), axis=0).reshape(h, w)
    kept = colours[1:] if has_unknown else colours
    palette = np.stack([kept & 0xFF, (kept >> 8) & 0xFF, (kept >> 16) & 0xFF], 1)
    return palette[labels_out].astype(np.uint8)


def _annotation_as_labels(anno_rgb):
    """Class indices 0, 1, 2 for red, green, blue and 255 for black (unknown)."""
    labels = np.full(anno_rgb.shape[:2], 255, np.int64)
    for index, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)]):
        labels[(anno_rgb == colour).all(-1)] = index
    return labels


def _smooth_logits(rng, c, h, w, sigma=3.0, scale=3.0):
    raw = np.stack([gaussian_filter(x, sigma) for x in rng.normal(size=(c, h, w))])
    return (scale * raw / raw.std()).astype(np.float32)


@pytest.fixture(scope="module")
def example():
    image = _photo()
    anno = scribble_annotation(*image.shape[:2])
    return image, anno, _annotation_as_labels(anno)


# ---------------------------------------------------------------- label maps


def test_labels_to_unary_is_pydensecrfs_unary_from_labels(rng):
    labels = rng.integers(0, 4, (7, 9))
    # pydensecrf's zero_unsure=True: value 0 is unknown and class k is stored as k + 1
    shifted = labels.copy()
    shifted[labels == 3] = 0
    expected = dutils.unary_from_labels(shifted.ravel(), 3, 0.7, zero_unsure=True)
    ours = labels_to_unary(np.where(labels == 3, -1, labels - 1).clip(-1), 3, 0.7,
                           unknown_label=-1)
    np.testing.assert_allclose(ours.reshape(3, -1), expected, rtol=1e-6)
    plain = dutils.unary_from_labels(labels.ravel(), 4, 0.6, zero_unsure=False)
    np.testing.assert_allclose(labels_to_unary(labels, 4, 0.6).reshape(4, -1), plain, rtol=1e-6)
    as_tensor = labels_to_unary(torch.from_numpy(labels), 4, 0.6)
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.dtype == torch.float32
    np.testing.assert_array_equal(as_tensor.numpy(), labels_to_unary(labels, 4, 0.6))
    probs = np.exp(-labels_to_unary(np.array([[0, 2, 5]]), 3, 0.8, unknown_label=5))
    np.testing.assert_allclose(probs[:, 0, 0], [0.8, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(probs[:, 0, 1], [0.1, 0.1, 0.8], rtol=1e-6)
    np.testing.assert_allclose(probs[:, 0, 2], [1 / 3] * 3, rtol=1e-6)


def test_pydensecrf_example_gives_the_same_result(example):
    image, anno, labels = example
    crf = DenseCRF(n_iter=5)
    ours = crf.predict(labels, image, "labels", num_classes=3, gt_prob=0.7, unknown_label=255)
    palette = np.array([(255, 0, 0), (0, 255, 0), (0, 0, 255)], np.uint8)
    # the example's 2-D path runs the same calls: the same labels exactly
    np.testing.assert_array_equal(palette[ours], pydensecrf_example(image, anno, use_2d=True))
    # Its generic path orders the features (y, x) instead of (x, y), and the lattice is not
    # invariant to that order: pydensecrf's two paths disagree on ~1 % of this annotation's
    # pixels.  crfseg's generic mean_field on the generic path's own features reproduces it.
    generic = pydensecrf_example(image, anno, use_2d=False)
    features = [dutils.create_pairwise_gaussian(sdims=(3, 3), shape=labels.shape),
                dutils.create_pairwise_bilateral(sdims=(80, 80), schan=(13, 13, 13), img=image,
                                                 chdim=2)]
    unary = torch.from_numpy(labels_to_unary(labels, 3, 0.7, unknown_label=255))[None]
    kernels = [(torch.from_numpy(f).reshape(1, -1, *labels.shape), w)
               for f, w in zip(features, (3.0, 10.0))]
    refined = mean_field(-unary, kernels, n_iter=5)
    assert (palette[refined[0].argmax(0).numpy()] == generic).all(-1).mean() >= 0.995
    torch_labels = DenseCRF(n_iter=5, backend="torch").predict(
        labels, image, "labels", num_classes=3, gt_prob=0.7, unknown_label=255)
    assert (torch_labels == ours).mean() >= 0.995
    # the CRF labels pixels the annotation left unknown, and keeps most of what it gave
    known = labels != 255
    assert (ours[known] == labels[known]).mean() > 0.8
    assert len(np.unique(ours[~known])) == 3


@pytest.mark.parametrize("backend", BACKENDS)
def test_labels_forms_and_batches(example, backend):
    image, _, labels = example
    crf = DenseCRF(n_iter=2, backend=backend)
    options = {"num_classes": 3, "gt_prob": 0.7, "unknown_label": 255}
    probs = crf.refine(labels, image, "labels", **options)
    unary = labels_to_unary(labels, 3, 0.7, unknown_label=255)
    np.testing.assert_allclose(probs, crf.refine(unary, image, "unary"), atol=1e-6)
    assert probs.dtype == np.float32 and probs.shape == (3,) + labels.shape
    as_tensor = crf.refine(torch.from_numpy(labels.astype(np.uint8)), image, "labels", **options)
    assert isinstance(as_tensor, torch.Tensor)
    np.testing.assert_allclose(as_tensor.numpy(), probs, atol=1e-6)
    if backend == "torch":
        batch = crf.refine(np.stack([labels, labels]), np.stack([image, image]), "labels",
                           **options)
        assert isinstance(batch, np.ndarray) and batch.shape == (2, 3) + labels.shape
        np.testing.assert_allclose(batch[1], probs, atol=1e-6)


# ---------------------------------------------------------------- binary maps


@pytest.mark.parametrize("backend", BACKENDS)
def test_binary_maps_equal_two_stacked_classes(rng, backend):
    image = _photo("coffee", 40, 50)
    logit = _smooth_logits(rng, 1, 40, 50)[0]
    p = 1 / (1 + np.exp(-logit))
    crf = DenseCRF(n_iter=3, backend=backend)
    stacked = crf.refine(np.stack([1 - p, p]), image)
    np.testing.assert_allclose(crf.refine(p, image), stacked, atol=1e-6)
    np.testing.assert_allclose(crf.refine(p[None], image), stacked, atol=1e-6)
    np.testing.assert_allclose(crf.refine(logit, image, "logits"), stacked, atol=2e-5)
    labels = crf.predict(torch.from_numpy(p), image)
    assert isinstance(labels, torch.Tensor) and labels.shape == (40, 50)
    np.testing.assert_array_equal(labels.numpy(), stacked.argmax(0))
    if backend == "torch":
        batch = crf.refine(torch.from_numpy(np.stack([p, p]))[:, None],
                           torch.from_numpy(np.stack([image, image])))
        assert batch.shape == (2, 2, 40, 50)
        np.testing.assert_allclose(batch[0].numpy(), stacked, atol=1e-6)


# ---------------------------------------------------------------- any features


def _brute_force_mean_field(unary, features, compat, n_iter):
    """Exact dense mean field (no lattice) with symmetric normalisation; features (d, P)."""
    from crfseg.crf._reference import gaussian_filter_reference

    f = torch.from_numpy(features.T.astype(np.float64))
    u = torch.from_numpy(unary.reshape(unary.shape[0], -1).T.astype(np.float64))
    q = torch.softmax(-u, 1)
    for _ in range(n_iter):
        q = torch.softmax(-u + compat * gaussian_filter_reference(f, q, "symmetric"), 1)
    return q.T.numpy().reshape(unary.shape)


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_channel_count_with_per_channel_srgb(rng, backend):
    h, w = 16, 20
    image = np.concatenate([_photo("astronaut", h, w),
                            rng.integers(0, 256, (h, w, 2), dtype=np.uint8)], axis=2)
    logits = _smooth_logits(rng, 3, h, w, sigma=2.0)
    srgb = (13.0, 20.0, 10.0, 30.0, 5.0)
    crf = DenseCRF(n_iter=3, gaussian_compat=0.0, bilateral_sxy=5.0, bilateral_srgb=srgb,
                   backend=backend)
    probs = crf.refine(logits, image)
    assert probs.shape == (3, h, w)
    yy, xx = np.mgrid[0:h, 0:w]
    features = np.concatenate([np.stack([xx, yy]) / 5.0,
                               np.moveaxis(image, 2, 0) / np.array(srgb)[:, None, None]])
    unary = -np.log(np.exp(logits) / np.exp(logits).sum(0))
    exact = _brute_force_mean_field(unary, features.reshape(7, -1), 10.0, 3)
    assert (probs.argmax(0) == exact.argmax(0)).mean() >= 0.97
    # a per-channel srgb of equal values is the scalar one (float image: no 0-255 warning)
    same = DenseCRF(n_iter=3, bilateral_srgb=(13.0,) * 3, backend=backend)
    rgb = image[..., :3]
    np.testing.assert_allclose(same.refine(logits, rgb.astype(np.float32)),
                               DenseCRF(n_iter=3, backend=backend).refine(logits, rgb), atol=1e-4)
    gray = DenseCRF(n_iter=3, bilateral_srgb=[13.0], backend=backend)
    assert gray.refine(logits, rgb[..., 0]).shape == (3, h, w)
    if backend == "torch":
        batch = np.stack([image, image])
        channels_first = crf.refine(torch.from_numpy(np.stack([logits, logits])),
                                    torch.from_numpy(batch).permute(0, 3, 1, 2))
        np.testing.assert_allclose(channels_first[0], probs, atol=1e-6)
        np.testing.assert_allclose(crf.refine(np.stack([logits, logits]), batch)[1], probs,
                                   atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("channels", [2, 5])
def test_one_srgb_for_any_channel_count_is_that_width_on_every_channel(rng, backend, channels):
    h, w = 16, 20
    image = rng.integers(0, 256, (h, w, channels)).astype(np.float32)
    logits = _smooth_logits(rng, 3, h, w, sigma=2.0)
    scalar = DenseCRF(n_iter=3, bilateral_srgb=20.0, backend=backend).refine(logits, image)
    per_channel = DenseCRF(n_iter=3, bilateral_srgb=(20.0,) * channels,
                           backend=backend).refine(logits, image)
    np.testing.assert_allclose(scalar, per_channel, atol=1e-6)
    narrower = DenseCRF(n_iter=3, bilateral_srgb=(20.0,) * (channels - 1) + (2.0,),
                        backend=backend).refine(logits, image)
    assert np.abs(narrower - scalar).max() > 1e-3


def test_torch_and_pydensecrf_agree_on_rgb_depth(rng):
    image = _photo("astronaut", 48, 64)
    depth = (gaussian_filter(rng.random((48, 64)), 4) * 4000).astype(np.float32)  # millimetres
    rgbd = np.concatenate([image.astype(np.float32), depth[..., None]], axis=2)
    logits = _smooth_logits(rng, 4, 48, 64)
    options = {"n_iter": 5, "bilateral_srgb": (13.0, 13.0, 13.0, 100.0)}
    expected = DenseCRF(**options).refine(logits, rgbd)
    probs = DenseCRF(backend="torch", **options).refine(logits, rgbd)
    assert (probs.argmax(0) == expected.argmax(0)).mean() >= 0.995
    assert np.abs(probs - expected).mean() < 1e-4


def test_prepare_image_serves_both_layers():
    assert prepare_image(np.zeros((2, 2, 3), np.uint8)).dtype == torch.uint8
    assert prepare_image(np.full((2, 2), 300, np.uint16), warn_units=False).dtype == torch.float32
    flipped = np.arange(12, dtype=np.float32).reshape(3, 4)[::-1] + 10
    np.testing.assert_array_equal(prepare_image(flipped).numpy(), flipped)
    swapped = np.arange(4, dtype=">f4").reshape(2, 2) + 10
    np.testing.assert_array_equal(prepare_image(swapped).numpy(), swapped)
    with pytest.raises(TypeError, match="uint8 or a float tensor.*int64"):
        prepare_image(torch.zeros(2, 2, dtype=torch.int64), integers=False)
    with pytest.raises(TypeError, match="uint8 or a float array.*complex"):
        prepare_image(np.zeros((2, 2), np.complex64))
    with pytest.raises(ValueError, match="image contains 1 non-finite"):
        prepare_image(np.array([[1.0, np.nan]]))
    with pytest.warns(UserWarning, match="outside 0-255"):
        prepare_image(np.array([[-1.0, 2.0]]))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize("backend", BACKENDS)
def test_bad_inputs_raise_one_clear_error(example, backend):
    image, _, labels = example
    crf = DenseCRF(n_iter=1, backend=backend)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, num_classes\) = \[0, 3\), "
                                         r"got 255; mark unlabelled pixels with unknown_label"):
        crf.refine(labels, image, "labels", num_classes=3)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 2\)|\[0, 2\), got 2"):
        crf.refine(labels, image, "labels", num_classes=2, unknown_label=255)
    with pytest.raises(ValueError, match="labels must lie in .* got -3"):
        crf.refine(np.full((60, 90), -3), image, "labels", num_classes=2)
    with pytest.raises(ValueError, match=r"gt_prob must be < 1, got 1\.0"):
        crf.refine(labels, image, "labels", num_classes=3, unknown_label=255, gt_prob=1.0)
    with pytest.raises(ValueError, match=r"gt_prob must be > 0, got 0\.0"):
        crf.refine(labels, image, "labels", num_classes=3, unknown_label=255, gt_prob=0.0)
    with pytest.raises(ValueError, match="num_classes is required with input_type='labels'"):
        crf.refine(labels, image, "labels")
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        crf.refine(labels * 0, image, "labels", num_classes=1)
    with pytest.raises(TypeError, match="labels must hold integer class labels"):
        crf.refine(labels.astype(np.float32), image, "labels", num_classes=3)
    with pytest.raises(ValueError, match="num_classes, unknown_label apply to input_type='labels'"):
        crf.refine(labels.astype(np.float32) / 255, image, num_classes=3, unknown_label=255)
    with pytest.raises(ValueError, match="binary map, read as the foreground's probability"):
        crf.refine(labels.astype(np.float32), image)
    with pytest.raises(ValueError, match=r"binary probability map must lie in \[0, 1\]"):
        crf.refine(labels.astype(np.float32), image, "probs")
    with pytest.raises(ValueError, match="input_type='unary' does not apply"):
        crf.refine(np.zeros((60, 90), np.float32), image, "unary")
    rgbd = np.zeros((60, 90, 4), np.float32)
    logits = np.zeros((2, 60, 90), np.float32)
    with pytest.raises(ValueError, match="image has K=4 channels but bilateral_srgb has 3 values"):
        DenseCRF(bilateral_srgb=(1, 2, 3), backend=backend).refine(logits, rgbd)
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(H, W, K\)"):
        DenseCRF(bilateral_srgb=(1, 2), backend=backend).refine(logits, np.zeros((1, 60, 90, 2)))
    assert DenseCRF(bilateral_srgb=np.array(5.0)).bilateral_srgb == 5.0
    assert DenseCRF(bilateral_srgb=torch.tensor([1.0, 2.0])).bilateral_srgb == (1.0, 2.0)
    with pytest.raises(TypeError, match="bilateral_srgb must be a real number, got str"):
        DenseCRF(bilateral_srgb="13")
    with pytest.raises(ValueError, match="bilateral_srgb must be a number or one number per"):
        DenseCRF(bilateral_srgb=[[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"bilateral_srgb\[1\] must be > 0"):
        DenseCRF(bilateral_srgb=(1.0, 0.0))
    with pytest.raises(TypeError, match="takes 1 positional argument"):
        DenseCRF(5)
    if backend == "torch":
        with pytest.raises(ValueError, match=r"image must be \(N, 2, H, W\) or \(N, H, W, 2\)"):
            DenseCRF(bilateral_srgb=(1, 2), backend=backend).refine(
                logits[None], np.zeros((1, 60, 90, 3)))
    else:
        with pytest.raises(ValueError, match=r"batches \(N, H, W\) need backend='torch'"):
            crf.refine(labels[None], image, "labels", num_classes=3, unknown_label=255)
