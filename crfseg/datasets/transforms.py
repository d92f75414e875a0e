"""Joint image/label transforms for training and evaluating segmentation networks.

Every transform is called as ``image, target = t(image, target)`` on an
``(H, W, 3)`` uint8 RGB array and an ``(H, W)`` integer label array, and
applies the same geometry to both: the image is resampled bilinearly, the
labels by nearest neighbour (never averaged), and pixels that come from
outside the image (padding) are labelled ``ignore_index``, not 0 — padding
labels with 0 would teach the network that borders are background.

:class:`ToTensor` ends a pipeline.  It keeps the image in 0–255 units (a
``(3, H, W)`` uint8 tensor): the CNN's input normalisation (:func:`normalize`)
runs on the device, batch by batch, so the unnormalised RGB the dense CRF's
bilateral kernel needs stays available next to it.

Random draws use torch's default generator, so ``torch.manual_seed`` (and the
per-worker seeds of a ``DataLoader``) make a pipeline repeatable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from crfseg._validation import (
    check_array,
    check_floating_dtype,
    check_int,
    check_ndim,
    check_number,
    is_tensor,
    shape_of,
)

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "Compose",
    "RandomScale",
    "RandomCrop",
    "RandomHorizontalFlip",
    "ColorJitter",
    "Resize",
    "ToTensor",
    "Normalize",
    "normalize",
    "denormalize",
    "train_transforms",
    "eval_transforms",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

JointTransform = Callable[[Any, Any], tuple[Any, Any]]


def _check_pair(image: Any, target: Any) -> None:
    """Require an (H, W, 3) uint8 image and an (H, W) integer label array of its size."""
    check_array("image", image, allow_tensor=False)
    check_array("target", target, allow_tensor=False)
    check_ndim("image", image, 3, "(H, W, 3)")
    if image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be an (H, W, 3) uint8 RGB array, got {image.dtype} {shape_of(image)}"
        )
    check_ndim("target", target, 2, "(H, W)")
    if image.shape[:2] != target.shape:
        raise ValueError(
            f"image and target must have the same height and width, got image (H, W) = "
            f"{shape_of(image)[:2]} and target (H, W) = {shape_of(target)}"
        )


def _size_pair(name: str, size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as ``(height, width)``: an int is a square."""
    if isinstance(size, (int, np.integer)) and not isinstance(size, bool):
        value = check_int(name, size, low=1)
        return value, value
    if not isinstance(size, Sequence) or len(size) != 2:
        raise ValueError(f"{name} must be an int or a (height, width) pair, got {size!r}")
    height = check_int(f"{name}[0] (height)", size[0], low=1)
    width = check_int(f"{name}[1] (width)", size[1], low=1)
    return height, width


def _uniform(low: float, high: float) -> float:
    return low + (high - low) * float(torch.rand(()))


class Compose:
    """Apply joint transforms one after the other.

    Parameters
    ----------
    transforms : sequence of callables
        Each is called as ``image, target = t(image, target)``.

    Examples
    --------
    >>> import numpy as np
    >>> t = Compose([RandomHorizontalFlip(p=1.0), ToTensor()])
    >>> image, target = t(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8))
    >>> tuple(image.shape), target.dtype
    ((3, 4, 6), torch.int64)
    """

    def __init__(self, transforms: Sequence[JointTransform]) -> None:
        transforms = list(transforms)
        for i, t in enumerate(transforms):
            if not callable(t):
                raise TypeError(f"transforms[{i}] must be callable, got {type(t).__name__}")
        self.transforms = transforms

    def __call__(self, image: Any, target: Any) -> tuple[Any, Any]:
        for t in self.transforms:
            image, target = t(image, target)
        return image, target

    def __repr__(self) -> str:
        inner = ", ".join(repr(t) for t in self.transforms)
        return f"Compose([{inner}])"


class RandomScale:
    """Resize image and labels by one random factor drawn uniformly from a range.

    Parameters
    ----------
    min_scale, max_scale : float, default 0.5 and 2.0
        The range of the factor (the usual recipe of DeepLab, PSPNet, mmseg).

    Examples
    --------
    >>> import numpy as np
    >>> image, target = RandomScale(2.0, 2.0)(np.zeros((4, 6, 3), np.uint8),
    ...                                       np.zeros((4, 6), np.uint8))
    >>> image.shape, target.shape
    ((8, 12, 3), (8, 12))
    """

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        self.min_scale = check_number("min_scale", min_scale, low=0, low_inclusive=False)
        self.max_scale = check_number("max_scale", max_scale, low=self.min_scale)

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, target)
        scale = _uniform(self.min_scale, self.max_scale)
        height = max(1, int(round(image.shape[0] * scale)))
        width = max(1, int(round(image.shape[1] * scale)))
        return _resize(image, target, height, width)

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


def _resize(image: np.ndarray, target: np.ndarray, height: int,
            width: int) -> tuple[np.ndarray, np.ndarray]:
    if image.shape[:2] == (height, width):
        return image, target
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    # OpenCV's nearest neighbour works on uint8/uint16/int16/int32/float; labels
    # fit uint16 (ids up to 65535), and the original dtype is restored.
    labels = cv2.resize(target.astype(np.uint16, copy=False), (width, height),
                        interpolation=cv2.INTER_NEAREST)
    return image, labels.astype(target.dtype, copy=False)


class Resize:
    """Resize image and labels to a fixed size (bilinear image, nearest labels).

    Parameters
    ----------
    size : int or (height, width)
        Output size; an int gives a square.

    Examples
    --------
    >>> import numpy as np
    >>> image, target = Resize((3, 5))(np.zeros((6, 10, 3), np.uint8), np.zeros((6, 10), np.uint8))
    >>> image.shape, target.shape
    ((3, 5, 3), (3, 5))
    """

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = _size_pair("size", size)

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, target)
        return _resize(image, target, *self.size)

    def __repr__(self) -> str:
        return f"Resize({self.size})"


class RandomCrop:
    """Crop a random window, padding first when the image is smaller than it.

    Padding goes to the bottom and right.  The image is padded with ``fill``
    (by default the ImageNet mean colour, which normalises to 0) and the
    labels with ``ignore_index``, so padded pixels never count in the loss.

    Parameters
    ----------
    size : int or (height, width)
        Crop size.
    ignore_index : int, default 255
        Label of padded pixels.
    fill : (3,) sequence of int, default the ImageNet mean in 0–255 units
        Colour of padded image pixels.

    Examples
    --------
    >>> import numpy as np
    >>> image, target = RandomCrop(8)(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8))
    >>> image.shape, int(target[7, 7])
    ((8, 8, 3), 255)
    """

    def __init__(self, size: int | Sequence[int], ignore_index: int = 255,
                 fill: Sequence[int] = (124, 116, 104)) -> None:
        self.size = _size_pair("size", size)
        self.ignore_index = check_int("ignore_index", ignore_index, low=0, high=65535)
        fill = tuple(fill)
        if len(fill) != 3:
            raise ValueError(f"fill must have 3 values (R, G, B), got {len(fill)}")
        self.fill = tuple(check_int(f"fill[{i}]", v, low=0, high=255) for i, v in enumerate(fill))

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, target)
        crop_h, crop_w = self.size
        pad_h = max(crop_h - image.shape[0], 0)
        pad_w = max(crop_w - image.shape[1], 0)
        if pad_h or pad_w:
            if np.iinfo(target.dtype).max < self.ignore_index:
                target = target.astype(np.int64)
            image = cv2.copyMakeBorder(image, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT,
                                       value=self.fill)
            target = np.pad(target, ((0, pad_h), (0, pad_w)), constant_values=self.ignore_index)
        top = int(torch.randint(0, image.shape[0] - crop_h + 1, ()))
        left = int(torch.randint(0, image.shape[1] - crop_w + 1, ()))
        window = (slice(top, top + crop_h), slice(left, left + crop_w))
        return np.ascontiguousarray(image[window]), np.ascontiguousarray(target[window])

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, ignore_index={self.ignore_index})"


class RandomHorizontalFlip:
    """Mirror image and labels left–right with probability ``p``.

    Parameters
    ----------
    p : float, default 0.5
        Probability of flipping.

    Examples
    --------
    >>> import numpy as np
    >>> target = np.array([[0, 1, 2]], np.uint8)
    >>> RandomHorizontalFlip(p=1.0)(np.zeros((1, 3, 3), np.uint8), target)[1].tolist()
    [[2, 1, 0]]
    """

    def __init__(self, p: float = 0.5) -> None:
        self.p = check_number("p", p, low=0, high=1)

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, target)
        if float(torch.rand(())) < self.p:
            return np.ascontiguousarray(image[:, ::-1]), np.ascontiguousarray(target[:, ::-1])
        return image, target

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Random photometric changes of the image; labels are untouched.

    Brightness, contrast and saturation factors are drawn from
    ``[1 - x, 1 + x]``; the hue is rotated by up to ``hue`` of a full turn.

    Parameters
    ----------
    brightness, contrast, saturation : float, default 0.25
        Strength of each change (0 disables it).
    hue : float, default 0.0
        Largest hue rotation as a fraction of the colour circle (≤ 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> image = np.full((2, 2, 3), 100, np.uint8)
    >>> out, _ = ColorJitter(0, 0, 0, 0)(image, np.zeros((2, 2), np.uint8))
    >>> bool((out == image).all())
    True
    """

    def __init__(self, brightness: float = 0.25, contrast: float = 0.25,
                 saturation: float = 0.25, hue: float = 0.0) -> None:
        self.brightness = check_number("brightness", brightness, low=0, high=1)
        self.contrast = check_number("contrast", contrast, low=0, high=1)
        self.saturation = check_number("saturation", saturation, low=0, high=1)
        self.hue = check_number("hue", hue, low=0, high=0.5)

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        _check_pair(image, target)
        if not (self.brightness or self.contrast or self.saturation or self.hue):
            return image, target
        out = image.astype(np.float32)
        if self.brightness:
            out *= _uniform(1 - self.brightness, 1 + self.brightness)
        if self.contrast:
            mean = float(_gray(out).mean())
            out = (out - mean) * _uniform(1 - self.contrast, 1 + self.contrast) + mean
        if self.saturation:
            gray = _gray(out)[:, :, None]
            out = (out - gray) * _uniform(1 - self.saturation, 1 + self.saturation) + gray
        out = np.clip(np.round(out), 0, 255).astype(np.uint8)
        if self.hue:
            hsv = cv2.cvtColor(out, cv2.COLOR_RGB2HSV)
            # OpenCV stores the hue of uint8 images in 0-179 (degrees / 2).
            shift = int(round(_uniform(-self.hue, self.hue) * 180))
            hsv[:, :, 0] = ((hsv[:, :, 0].astype(np.int32) + shift) % 180).astype(np.uint8)
            out = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
        return out, target

    def __repr__(self) -> str:
        return (f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
                f"saturation={self.saturation}, hue={self.hue})")


def _gray(image: np.ndarray) -> np.ndarray:
    """ITU-R 601 luma of a float RGB image."""
    return image @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


class ToTensor:
    """Turn the arrays into tensors: a ``(3, H, W)`` uint8 image and ``(H, W)`` int64 labels.

    The image stays in 0–255 units; normalise it on the device with
    :func:`normalize` (the training engine does), which keeps the RGB for
    the CRF.

    Examples
    --------
    >>> import numpy as np
    >>> image, target = ToTensor()(np.zeros((4, 6, 3), np.uint8), np.zeros((4, 6), np.uint8))
    >>> image.dtype, tuple(image.shape), target.dtype
    (torch.uint8, (3, 4, 6), torch.int64)
    """

    def __call__(self, image: np.ndarray, target: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        _check_pair(image, target)
        image_t = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1)))
        target_t = torch.from_numpy(np.ascontiguousarray(target).astype(np.int64))
        return image_t, target_t

    def __repr__(self) -> str:
        return "ToTensor()"


def _check_stats(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], ...]:
    """Validate per-channel statistics: 3 finite means and 3 positive deviations."""
    for name, values in (("mean", mean), ("std", std)):
        if len(values) != 3:
            raise ValueError(f"{name} must have 3 values (R, G, B), got {len(values)}")
    mean = tuple(check_number(f"mean[{i}]", v) for i, v in enumerate(mean))
    std = tuple(check_number(f"std[{i}]", v, low=0, low_inclusive=False)
                for i, v in enumerate(std))
    return mean, std


def _as_channels(values: Sequence[float], like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(values, dtype=like.dtype, device=like.device).reshape(3, 1, 1)


def _check_images(images: Any) -> None:
    check_array("images", images)
    if not is_tensor(images):
        raise TypeError(f"images must be a torch tensor, got {type(images).__name__}")
    check_ndim("images", images, (3, 4), "(3, H, W) or (N, 3, H, W)")
    if images.shape[-3] != 3:
        raise ValueError(f"images must have 3 channels (RGB) in dimension -3, "
                         f"got shape {shape_of(images)}")


def normalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
              std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Standardise RGB images in 0–255 units for a CNN: ``(x / 255 - mean) / std``.

    Parameters
    ----------
    images : (3, H, W) or (N, 3, H, W) Tensor
        uint8 or float, 0–255 units, on any device.
    mean, std : (3,) sequence of float
        Per-channel statistics in 0–1 units (ImageNet's by default).

    Returns
    -------
    (3, H, W) or (N, 3, H, W) float Tensor
        float32 for integer input, else the input's float dtype.

    Examples
    --------
    >>> import torch
    >>> x = normalize(torch.full((1, 3, 1, 1), 255, dtype=torch.uint8))
    >>> [round(v, 3) for v in x.flatten().tolist()]
    [2.249, 2.429, 2.64]
    """
    _check_images(images)
    mean, std = _check_stats(mean, std)
    x = images if images.is_floating_point() else images.float()
    return (x / 255.0 - _as_channels(mean, x)) / _as_channels(std, x)


def denormalize(images: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> torch.Tensor:
    """Undo :func:`normalize`: float images back to 0–255 units.

    Parameters
    ----------
    images : (3, H, W) or (N, 3, H, W) float Tensor
        Normalised images.
    mean, std : (3,) sequence of float
        The statistics :func:`normalize` used.

    Returns
    -------
    (3, H, W) or (N, 3, H, W) float Tensor
        0–255 units (not rounded, not clipped).

    Examples
    --------
    >>> import torch
    >>> x = torch.tensor([[[10.0]], [[20.0]], [[30.0]]])
    >>> [round(v, 3) for v in denormalize(normalize(x)).flatten().tolist()]
    [10.0, 20.0, 30.0]
    """
    _check_images(images)
    check_floating_dtype("images", images)
    mean, std = _check_stats(mean, std)
    return (images * _as_channels(std, images) + _as_channels(mean, images)) * 255.0


class Normalize:
    """Joint-transform form of :func:`normalize` for pipelines that want normalised tensors.

    Parameters
    ----------
    mean, std : (3,) sequence of float
        Per-channel statistics in 0–1 units (ImageNet's by default).

    Examples
    --------
    >>> import torch
    >>> image, target = Normalize()(torch.zeros(3, 2, 2, dtype=torch.uint8),
    ...                             torch.zeros(2, 2, dtype=torch.int64))
    >>> image.dtype
    torch.float32
    """

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD) -> None:
        self.mean, self.std = _check_stats(mean, std)

    def __call__(self, image: torch.Tensor, target: Any) -> tuple[torch.Tensor, Any]:
        return normalize(image, self.mean, self.std), target

    def __repr__(self) -> str:
        return f"Normalize(mean={self.mean}, std={self.std})"


def train_transforms(crop_size: int | Sequence[int], *, scale_range: Sequence[float] = (0.5, 2.0),
                     flip: float = 0.5, jitter: float = 0.25,
                     ignore_index: int = 255) -> Compose:
    """The usual training pipeline: random scale, crop, flip, photometric jitter, tensor.

    Parameters
    ----------
    crop_size : int or (height, width)
        Size of the training crops (every sample of a batch has it).
    scale_range : (float, float), default (0.5, 2.0)
        Range of the random scale factor.
    flip : float, default 0.5
        Probability of a horizontal flip.
    jitter : float, default 0.25
        Brightness, contrast and saturation strength (0 disables jitter).
    ignore_index : int, default 255
        Label of padded pixels.

    Returns
    -------
    Compose
        Ends with :class:`ToTensor`: the image stays uint8 0–255.

    Examples
    --------
    >>> import numpy as np
    >>> image, target = train_transforms(16)(np.zeros((10, 12, 3), np.uint8),
    ...                                      np.zeros((10, 12), np.uint8))
    >>> tuple(image.shape), tuple(target.shape)
    ((3, 16, 16), (16, 16))
    """
    if len(scale_range) != 2:
        raise ValueError(f"scale_range must be a (min, max) pair, got {scale_range!r}")
    steps: list[JointTransform] = [
        RandomScale(*scale_range),
        RandomCrop(crop_size, ignore_index=ignore_index),
        RandomHorizontalFlip(flip),
    ]
    if check_number("jitter", jitter, low=0, high=1):
        steps.append(ColorJitter(jitter, jitter, jitter))
    steps.append(ToTensor())
    return Compose(steps)


def eval_transforms(size: int | Sequence[int] | None = None) -> Compose:
    """The evaluation pipeline: the image at its own size (or resized), as tensors.

    Parameters
    ----------
    size : int or (height, width), optional
        Resize to this size first; by default images are evaluated as they are.

    Returns
    -------
    Compose

    Examples
    --------
    >>> import numpy as np
    >>> image, _ = eval_transforms()(np.zeros((5, 7, 3), np.uint8), np.zeros((5, 7), np.uint8))
    >>> tuple(image.shape)
    (3, 5, 7)
    """
    steps: list[JointTransform] = [] if size is None else [Resize(size)]
    return Compose([*steps, ToTensor()])
