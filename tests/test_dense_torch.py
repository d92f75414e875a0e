"""DenseCRF(backend="torch"): agreement with pydensecrf, batches, devices, return kinds, errors."""

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.transform import resize

from crfseg.crf import DenseCRF
from crfseg.crf.lattice import compiled_engine_available

PHOTOS = ("astronaut", "chelsea", "coffee")



def _photo(name, height=72, width=96):
    img = resize(getattr(data, name)(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(img).astype(np.uint8)


def _smooth_logits(rng, c, h, w, sigma=4.0, scale=4.0):
    raw = np.stack([gaussian_filter(x, sigma) for x in rng.normal(size=(c, h, w))])
    return (scale * raw / raw.std()).astype(np.float32)


@pytest.fixture
def photo_and_logits(rng):
    image = _photo("astronaut", 40, 50)
    return image, _smooth_logits(rng, 4, 40, 50)


@pytest.mark.parametrize("name", PHOTOS)
def test_agrees_with_pydensecrf_on_photos(rng, name):
    image = _photo(name)
    logits = _smooth_logits(rng, 6, *image.shape[:2])
    expected = DenseCRF().refine(logits, image)
    probs = DenseCRF(backend="torch", device="cpu").refine(logits, image)
    assert isinstance(probs, np.ndarray) and probs.dtype == np.float32
    assert probs.shape == expected.shape
    agreement = (probs.argmax(0) == expected.argmax(0)).mean()
    assert agreement >= 0.995
    assert np.abs(probs - expected).mean() <= 1e-3
    # both run densecrf's lattice, so in fact they agree to float rounding
    assert np.abs(probs - expected).mean() < 1e-5


def test_compatibility_forms_agree_with_pydensecrf(rng, photo_and_logits):
    image, logits = photo_and_logits
    matrix = rng.random((4, 4)) * 4
    for options in ({"gaussian_compat": np.array([1.0, 2.0, 3.0, 4.0])},
                    {"bilateral_compat": matrix, "gaussian_sxy": 2.0, "bilateral_srgb": 20.0}):
        expected = DenseCRF(**options).refine(logits, image)
        probs = DenseCRF(backend="torch", **options).refine(logits, image)
        np.testing.assert_allclose(probs, expected, atol=1e-4)


def test_float_image_agrees_with_pydensecrf(photo_and_logits):
    image, logits = photo_and_logits
    float_image = image.astype(np.float32) + 0.25
    expected = DenseCRF().refine(logits, float_image)
    np.testing.assert_allclose(DenseCRF(backend="torch").refine(logits, float_image), expected,
                               atol=1e-4)


def test_batch_runs_in_one_call_and_matches_single_images(rng):
    images = np.stack([_photo(name, 40, 50) for name in PHOTOS])
    logits = np.stack([_smooth_logits(rng, 3, 40, 50) for _ in PHOTOS])
    crf = DenseCRF(backend="torch")
    batch = crf.refine(torch.from_numpy(logits), torch.from_numpy(images).permute(0, 3, 1, 2))
    assert isinstance(batch, torch.Tensor) and batch.shape == (3, 3, 40, 50)
    assert batch.dtype == torch.float32
    channels_last = crf.refine(logits, images)  # (N, H, W, 3) uint8 numpy: numpy back
    assert isinstance(channels_last, np.ndarray) and channels_last.dtype == np.float32
    assert torch.equal(batch, torch.from_numpy(channels_last))
    for i in range(3):
        single = crf.refine(logits[i], images[i])
        np.testing.assert_allclose(batch[i].numpy(), single, atol=1e-6)
    labels = crf.predict(logits, images)
    assert labels.shape == (3, 40, 50) and labels.dtype == np.int64
    np.testing.assert_array_equal(labels, batch.argmax(1).numpy())
    assert torch.equal(crf.predict(torch.from_numpy(logits), images), batch.argmax(1))


def test_return_kinds(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(backend="torch")
    as_array = crf.refine(logits, image)
    as_tensor = crf.refine(torch.from_numpy(logits), torch.from_numpy(image))
    assert isinstance(as_tensor, torch.Tensor) and as_tensor.shape == (4, 40, 50)
    np.testing.assert_allclose(as_tensor.numpy(), as_array, atol=1e-6)
    labels = crf.predict(logits, image)
    assert isinstance(labels, np.ndarray) and labels.shape == (40, 50)
    np.testing.assert_array_equal(labels, as_array.argmax(0))
    flipped = crf.refine(logits[:, ::-1], image[::-1])  # negative strides
    np.testing.assert_array_equal(flipped, crf.refine(logits[:, ::-1].copy(), image[::-1].copy()))
    double = crf.refine(torch.from_numpy(logits).double(), torch.from_numpy(image))
    assert double.dtype == torch.float64
    np.testing.assert_allclose(double.numpy(), as_array, atol=1e-5)


def test_input_types_agree(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(backend="torch")
    logits_t = torch.from_numpy(logits)
    probs = torch.softmax(logits_t, 0)
    unary = -torch.log_softmax(logits_t, 0)
    expected = crf.refine(logits_t, image, input_type="logits")
    torch.testing.assert_close(crf.refine(probs, image), expected, atol=1e-5, rtol=0)
    torch.testing.assert_close(crf.refine(unary, image, input_type="unary"), expected,
                               atol=1e-5, rtol=0)
    # logits go to mean field as they are: a shift per pixel changes nothing (to float32 rounding)
    shift = torch.linspace(-40.0, 40.0, logits_t[0].numel()).reshape(logits_t[0].shape)
    torch.testing.assert_close(crf.refine(logits_t + shift, image, input_type="logits"),
                               expected, atol=1e-5, rtol=0)


def test_zero_iterations_give_the_input_softmax(photo_and_logits):
    image, logits = photo_and_logits
    probs = DenseCRF(n_iter=0, backend="torch").refine(logits, image)
    np.testing.assert_allclose(probs, torch.softmax(torch.from_numpy(logits), 0).numpy(),
                               atol=1e-6)


def test_deterministic_mode_matches_and_repeats(photo_and_logits):
    image, logits = photo_and_logits
    fast = DenseCRF(backend="torch").refine(logits, image)
    ordered = DenseCRF(backend="torch", deterministic=True)
    first = ordered.refine(logits, image)
    np.testing.assert_allclose(first, fast, atol=1e-5)
    assert np.array_equal(first, ordered.refine(logits, image))
    assert np.array_equal(fast, DenseCRF(backend="torch").refine(logits, image))


def test_auto_backend_and_devices(device, photo_and_logits):
    image, logits = photo_and_logits
    auto = DenseCRF(backend="auto")
    # the compiled lattice is faster than pydensecrf on the CPU, on one thread too
    assert auto.backend == ("torch" if torch.cuda.is_available() or compiled_engine_available()
                            else "pydensecrf")
    assert DenseCRF(backend="auto", device="cpu").backend == (
        "torch" if compiled_engine_available() else "pydensecrf")
    with pytest.raises(ValueError, match="device must be a torch device"):
        DenseCRF(backend="auto", device="tpu:x")
    crf = DenseCRF(backend="torch", device=device)
    assert crf.device == device and f"device='{device}'" in repr(crf)
    batch = crf.refine(torch.from_numpy(logits)[None], torch.from_numpy(image)[None])
    assert batch.device.type == device.type
    np.testing.assert_allclose(batch[0].cpu().numpy(), DenseCRF().refine(logits, image),
                               atol=1e-4)
    # without a device the scores' device is used
    on_device = DenseCRF(backend="torch").refine(torch.from_numpy(logits).to(device),
                                                 torch.from_numpy(image))
    assert on_device.device.type == device.type


def test_float_image_outside_range_warns(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(backend="torch")
    batch = torch.from_numpy(image).permute(2, 0, 1)[None].float()
    with pytest.warns(UserWarning, match="outside 0-255"):
        crf.refine(logits[None], batch * 2)
    with pytest.warns(UserWarning, match=r"lie in \[0, 1\]"):
        crf.refine(logits[None], batch / 255)


def test_errors(photo_and_logits):
    image, logits = photo_and_logits
    crf = DenseCRF(backend="torch")
    batch_image = torch.from_numpy(image).permute(2, 0, 1)[None]
    # what every backend rejects is tested in test_dense.py::test_errors_of_every_backend
    with pytest.raises(ValueError, match=r"scores must be \(C, H, W\) or \(N, C, H, W\)"):
        crf.refine(logits[0], image)
    # batches: sizes must match
    with pytest.raises(ValueError, match="same number of images"):
        crf.refine(np.stack([logits, logits]), batch_image)
    with pytest.raises(ValueError, match=r"image must be \(N, 3, H, W\) or \(N, H, W, 3\)"):
        crf.refine(logits[None], batch_image[:, :, :-1])
    with pytest.raises(ValueError, match=r"image must be \(N, 3, H, W\) or \(N, H, W, 3\) for"):
        crf.refine(logits[None], image)
    with pytest.raises(TypeError, match="image must be uint8 or a float"):
        crf.refine(logits[None], batch_image.bool())
    with pytest.raises(TypeError, match="image must be uint8 or a float"):
        crf.refine(logits[None], batch_image.numpy().astype(object))
    nan_image = batch_image.float()
    nan_image[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="image contains 1 non-finite"):
        crf.refine(logits[None], nan_image)
    # settings
    with pytest.raises(ValueError, match="batches .* need backend='torch'"):
        DenseCRF().refine(logits[None], batch_image)
    with pytest.raises(ValueError, match="backend must be one of"):
        DenseCRF(backend="cuda")
    with pytest.raises(ValueError, match="device must be a torch device"):
        DenseCRF(backend="torch", device="gpu0")
    with pytest.raises(ValueError, match="runs on the CPU only"):
        DenseCRF(device="meta")
    with pytest.raises(TypeError, match="deterministic must be a bool"):
        DenseCRF(backend="torch", deterministic=1)
    with pytest.raises(ValueError, match="bilateral_srgb must be finite"):
        DenseCRF(backend="torch", bilateral_srgb=float("nan"))
    with pytest.raises(ValueError, match="gaussian_compat contains 1 non-finite"):
        DenseCRF(backend="torch", gaussian_compat=np.array([1.0, np.inf]))
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            DenseCRF(backend="torch", device="cuda")


def test_cli_refine_with_the_torch_backend(tmp_path, capsys, photo_and_logits):
    from crfseg import io
    from crfseg.cli import main

    image, logits = photo_and_logits
    io.write_image(tmp_path / "a.png", image)
    np.save(tmp_path / "a.npy", logits)
    args = ["refine", "--unary", str(tmp_path / "a.npy"), "--image", str(tmp_path / "a.png"),
            "--iterations", "3"]
    assert main(args + ["--save-probs", str(tmp_path / "t.npy"), "--backend", "torch",
                        "--device", "cpu"]) == 0
    assert main(args + ["--save-probs", str(tmp_path / "p.npy")]) == 0
    torch_probs, reference = np.load(tmp_path / "t.npy"), np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(torch_probs, reference, atol=1e-4)
    np.testing.assert_allclose(
        torch_probs, DenseCRF(n_iter=3, backend="torch").refine(logits, image), atol=1e-6)
    capsys.readouterr()
    assert main(args + ["--device", "cuda:7" if torch.cuda.is_available() else "cuda"]) == 2
    assert "device" in capsys.readouterr().err
    assert main(args + ["--backend", "pydensecrf", "--device", "meta"]) == 2
    assert "runs on the CPU only" in capsys.readouterr().err
