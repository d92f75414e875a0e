"""Joint transforms: the same geometry on image and labels, void padding, tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crfseg.datasets.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    ColorJitter,
    Compose,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    ToTensor,
    denormalize,
    eval_transforms,
    normalize,
    train_transforms,
)


def _coded_pair(rng, height=20, width=30, num_classes=5, block=5):
    """Labels in blocks and an image whose red channel is a function of the label."""
    blocks = rng.integers(0, num_classes, (height // block + 1, width // block + 1))
    target = np.kron(blocks, np.ones((block, block), np.int64))[:height, :width].astype(np.uint8)
    image = np.zeros((height, width, 3), np.uint8)
    image[:, :, 0] = 40 * target
    image[:, :, 1] = np.arange(width)[None, :] * 8 % 256
    image[:, :, 2] = np.arange(height)[:, None] * 12 % 256
    return image, target


def test_random_scale_resizes_both_and_keeps_label_values(rng):
    image, target = _coded_pair(rng)
    torch.manual_seed(0)
    seen = set()
    for _ in range(10):
        out_image, out_target = RandomScale(0.5, 2.0)(image, target)
        scale = out_image.shape[0] / image.shape[0]
        assert 0.45 <= scale <= 2.05
        assert out_target.shape == out_image.shape[:2]
        assert abs(out_image.shape[1] / image.shape[1] - scale) < 0.1
        assert out_target.dtype == target.dtype
        # Nearest neighbour: no label is ever averaged into a new value.
        assert set(np.unique(out_target)) <= set(np.unique(target))
        seen.add(out_image.shape[:2])
    assert len(seen) > 3


def test_scale_by_two_is_nearest_for_labels(rng):
    image, target = _coded_pair(rng)
    out_image, out_target = RandomScale(2.0, 2.0)(image, target)
    np.testing.assert_array_equal(out_target, np.kron(target, np.ones((2, 2), np.uint8)))
    assert out_image.shape == (40, 60, 3)


def test_random_crop_pads_labels_with_ignore_index(rng):
    image, target = _coded_pair(rng, 10, 12)
    out_image, out_target = RandomCrop((16, 20), ignore_index=255)(image, target)
    assert out_image.shape == (16, 20, 3) and out_target.shape == (16, 20)
    np.testing.assert_array_equal(out_target[:10, :12], target)
    assert (out_target[10:] == 255).all() and (out_target[:, 12:] == 255).all()
    assert (out_image[10:] == (124, 116, 104)).all()
    np.testing.assert_array_equal(out_image[:10, :12], image)


def test_random_crop_is_a_window_of_the_input(rng):
    image, target = _coded_pair(rng, 20, 30)
    torch.manual_seed(1)
    offsets = set()
    for _ in range(12):
        out_image, out_target = RandomCrop(8)(image, target)
        # The blue and green channels encode the row and the column.
        top = int(np.flatnonzero(image[:, 0, 2] == out_image[0, 0, 2])[0])
        left = int(np.flatnonzero(image[0, :, 1] == out_image[0, 0, 1])[0])
        np.testing.assert_array_equal(out_image, image[top:top + 8, left:left + 8])
        np.testing.assert_array_equal(out_target, target[top:top + 8, left:left + 8])
        offsets.add((top, left))
    assert len(offsets) > 6


def test_crop_widens_a_narrow_label_dtype_for_a_large_ignore_index():
    image = np.zeros((2, 2, 3), np.uint8)
    target = np.zeros((2, 2), np.uint8)
    _, out = RandomCrop(3, ignore_index=300)(image, target)
    assert out[2, 2] == 300


def test_flip_mirrors_both(rng):
    image, target = _coded_pair(rng)
    flipped = RandomHorizontalFlip(p=1.0)(image, target)
    np.testing.assert_array_equal(flipped[0], image[:, ::-1])
    np.testing.assert_array_equal(flipped[1], target[:, ::-1])
    kept = RandomHorizontalFlip(p=0.0)(image, target)
    assert kept[0] is image and kept[1] is target


def test_joint_geometry_keeps_image_and_labels_aligned(rng):
    """After scale, crop and flip, the red channel still encodes each pixel's label."""
    image, target = _coded_pair(rng, 40, 60, block=10)
    pipeline = Compose([RandomScale(1.0, 2.0), RandomCrop(32), RandomHorizontalFlip()])
    torch.manual_seed(3)
    for _ in range(5):
        out_image, out_target = pipeline(image, target)
        valid = out_target != 255
        error = np.abs(out_image[:, :, 0][valid].astype(int) - 40 * out_target[valid])
        # Bilinear blending only touches block borders; a misaligned label map
        # (e.g. flipped alone) agrees on about half of the pixels.
        assert (error <= 20).mean() > 0.9


def test_color_jitter_changes_the_image_only(rng):
    image, target = _coded_pair(rng)
    torch.manual_seed(0)
    out_image, out_target = ColorJitter(0.5, 0.5, 0.5, 0.1)(image, target)
    assert out_target is target
    assert out_image.dtype == np.uint8 and not np.array_equal(out_image, image)
    same, _ = ColorJitter(0, 0, 0, 0)(image, target)
    assert same is image


def test_brightness_matches_the_drawn_factor(rng):
    image = rng.integers(0, 120, (6, 7, 3), dtype=np.uint8)
    torch.manual_seed(5)
    out, _ = ColorJitter(brightness=0.4, contrast=0, saturation=0)(image, np.zeros((6, 7)))
    torch.manual_seed(5)
    factor = 0.6 + 0.8 * float(torch.rand(()))
    np.testing.assert_array_equal(out, np.clip(np.round(image * np.float32(factor)), 0, 255))


def test_saturation_and_hue_leave_gray_alone():
    gray = np.full((4, 4, 3), 90, np.uint8)
    out, _ = ColorJitter(0, 0, saturation=0.8, hue=0.3)(gray, np.zeros((4, 4), np.uint8))
    np.testing.assert_array_equal(out, gray)


def test_resize_and_eval_transforms(rng):
    image, target = _coded_pair(rng)
    out_image, out_target = Resize((10, 15))(image, target)
    np.testing.assert_array_equal(out_target, target[::2, ::2])
    assert out_image.shape == (10, 15, 3)
    t_image, t_target = eval_transforms()(image, target)
    assert torch.equal(t_image, torch.from_numpy(image).permute(2, 0, 1))
    assert torch.equal(t_target, torch.from_numpy(target).long())
    assert tuple(eval_transforms(8)(image, target)[0].shape) == (3, 8, 8)


def test_to_tensor_keeps_rgb_in_0_255(rng):
    image, target = _coded_pair(rng)
    t_image, t_target = ToTensor()(image, target)
    assert t_image.dtype == torch.uint8 and tuple(t_image.shape) == (3, 20, 30)
    assert torch.equal(t_image.permute(1, 2, 0), torch.from_numpy(image))
    assert t_target.dtype == torch.int64


def test_train_transforms_is_repeatable_and_sized(rng):
    image, target = _coded_pair(rng, 30, 40)
    pipeline = train_transforms((24, 32), scale_range=(0.5, 2.0))
    torch.manual_seed(11)
    first = [pipeline(image, target) for _ in range(3)]
    torch.manual_seed(11)
    second = [pipeline(image, target) for _ in range(3)]
    for (a_img, a_tgt), (b_img, b_tgt) in zip(first, second, strict=True):
        assert torch.equal(a_img, b_img) and torch.equal(a_tgt, b_tgt)
        assert tuple(a_img.shape) == (3, 24, 32) and tuple(a_tgt.shape) == (24, 32)
    assert "ColorJitter" not in repr(train_transforms(8, jitter=0))


def test_normalize_formula_and_round_trip():
    images = torch.randint(0, 256, (2, 3, 4, 5), dtype=torch.uint8)
    out = normalize(images)
    mean = torch.tensor(IMAGENET_MEAN).reshape(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).reshape(3, 1, 1)
    torch.testing.assert_close(out, (images.float() / 255 - mean) / std)
    assert out.dtype == torch.float32
    back = denormalize(out)
    torch.testing.assert_close(back, images.float(), atol=1e-4, rtol=0)
    double = normalize(images[0].double(), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert double.dtype == torch.float64
    torch.testing.assert_close(double, (images[0].double() / 255 - 0.5) / 0.25)
    image, target = Normalize()(images[0], "labels")
    torch.testing.assert_close(image, out[0])
    assert target == "labels"


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("build, error, message", [
    (lambda: RandomScale(0, 2), ValueError, "min_scale must be > 0"),
    (lambda: RandomScale(2, 1), ValueError, "max_scale must be >= 2.0, got 1.0"),
    (lambda: RandomCrop(0), ValueError, "size must be >= 1, got 0"),
    (lambda: RandomCrop((4, 4, 4)), ValueError, r"size must be an int or a \(height, width\)"),
    (lambda: RandomCrop(4, ignore_index=-1), ValueError, "ignore_index must be >= 0"),
    (lambda: RandomCrop(4, fill=(1, 2)), ValueError, r"fill must have 3 values \(R, G, B\)"),
    (lambda: RandomCrop(4, fill=(1, 2, 300)), ValueError, r"fill\[2\] must be <= 255"),
    (lambda: RandomHorizontalFlip(1.5), ValueError, "p must be <= 1"),
    (lambda: ColorJitter(brightness=-0.1), ValueError, "brightness must be >= 0"),
    (lambda: ColorJitter(hue=0.6), ValueError, "hue must be <= 0.5"),
    (lambda: Resize("big"), ValueError, r"size must be an int or a \(height, width\) pair"),
    (lambda: Compose([ToTensor(), 3]), TypeError, r"transforms\[1\] must be callable, got int"),
    (lambda: Normalize(std=(1, 0, 1)), ValueError, r"std\[1\] must be > 0"),
    (lambda: Normalize(mean=(0.5, 0.5)), ValueError, r"mean must have 3 values \(R, G, B\)"),
    (lambda: train_transforms(8, scale_range=(1,)), ValueError,
     r"scale_range must be a \(min, max\) pair"),
    (lambda: train_transforms(8, jitter=2), ValueError, "jitter must be <= 1"),
])
def test_bad_settings(build, error, message):
    with pytest.raises(error, match=message):
        build()


@pytest.mark.parametrize("transform", [
    RandomScale(), RandomCrop(4), RandomHorizontalFlip(), ColorJitter(), Resize(4), ToTensor(),
], ids=lambda t: type(t).__name__)
def test_bad_pairs(transform):
    image = np.zeros((6, 8, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image and target must have the same height and width, "
                                         r"got image \(H, W\) = \(6, 8\) and target \(H, W\) = "
                                         r"\(6, 9\)"):
        transform(image, np.zeros((6, 9), np.uint8))
    with pytest.raises(ValueError, match=r"image must be an \(H, W, 3\) uint8 RGB array, got "
                                         r"float32"):
        transform(image.astype(np.float32), np.zeros((6, 8), np.uint8))
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\), got an array of shape "
                                         r"\(6, 8\)"):
        transform(image[:, :, 0], np.zeros((6, 8), np.uint8))
    with pytest.raises(ValueError, match=r"target must be \(H, W\), got an array of shape"):
        transform(image, np.zeros((1, 6, 8), np.uint8))
    with pytest.raises(TypeError, match="image must be a numpy array, got Tensor"):
        transform(torch.zeros(6, 8, 3), np.zeros((6, 8), np.uint8))


def test_normalize_rejects_bad_images():
    with pytest.raises(TypeError, match="images must be a torch tensor, got ndarray"):
        normalize(np.zeros((3, 2, 2)))
    with pytest.raises(ValueError, match=r"images must have 3 channels \(RGB\) in dimension -3, "
                                         r"got shape \(1, 4, 2, 2\)"):
        normalize(torch.zeros(1, 4, 2, 2))
    with pytest.raises(ValueError, match=r"images must be \(3, H, W\) or \(N, 3, H, W\)"):
        normalize(torch.zeros(3, 2))
    with pytest.raises(TypeError, match="images must be a floating-point array"):
        denormalize(torch.zeros(3, 2, 2, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"std must have 3 values"):
        normalize(torch.zeros(3, 2, 2), std=(1.0,))
