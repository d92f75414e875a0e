"""Procedural scenes with exact ground truth, so the whole pipeline runs anywhere."""

from __future__ import annotations

import colorsys
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from crfseg._validation import check_int, check_number
from crfseg.datasets._base import Transforms, check_index
from crfseg.datasets.transforms import ToTensor, _size_pair

__all__ = ["SyntheticShapes", "TEXTURES"]

TEXTURES = ("flat", "stripes", "checker", "dots", "grain")
_TEXTURE_AMPLITUDE = 28.0


def class_colors(num_classes: int) -> np.ndarray:
    """Base colour of each class: hues spread around the circle, background a muted olive."""
    colors = [(110, 118, 96)]
    for k in range(1, num_classes):
        hue = ((k - 1) * 0.618034) % 1.0  # golden-ratio steps keep neighbours' hues apart
        value = 0.85 if k % 2 else 0.6
        r, g, b = colorsys.hsv_to_rgb(hue, 0.65, value)
        colors.append((round(255 * r), round(255 * g), round(255 * b)))
    return np.array(colors, dtype=np.uint8)


def _texture(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A ``(H, W)`` pattern in [-1, 1] with a random phase, scale and orientation."""
    if kind == "flat":
        return np.zeros((height, width), dtype=np.float32)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    period = rng.uniform(4.0, 8.0)
    if kind == "stripes":
        angle = rng.uniform(0, np.pi)
        u = xx * np.cos(angle) + yy * np.sin(angle)
        return np.sin(2 * np.pi * u / period + rng.uniform(0, 2 * np.pi)).astype(np.float32)
    if kind == "checker":
        wave = np.sin(np.pi * (xx + rng.uniform(0, period)) / period) * np.sin(
            np.pi * (yy + rng.uniform(0, period)) / period)
        return np.sign(wave).astype(np.float32)
    if kind == "dots":
        wave = np.cos(2 * np.pi * xx / period) * np.cos(2 * np.pi * yy / period)
        return np.where(wave > 0.5, 1.0, -0.4).astype(np.float32)
    grain = rng.normal(size=(height, width)).astype(np.float32)
    grain = cv2.GaussianBlur(grain, (0, 0), 1.5)
    return np.clip(grain / (grain.std() + 1e-6), -1, 1)


def _draw_shape(labels: np.ndarray, rng: np.random.Generator, label: int) -> None:
    """Fill one random ellipse, rotated rectangle or triangle with ``label`` (in place)."""
    height, width = labels.shape
    s = min(height, width)
    cx, cy = rng.uniform(0.1, 0.9) * width, rng.uniform(0.1, 0.9) * height
    r1, r2 = rng.uniform(0.1, 0.3, size=2) * s
    angle = rng.uniform(0, 180)
    kind = rng.integers(3)
    if kind == 0:
        cv2.ellipse(labels, (round(cx), round(cy)), (max(1, round(r1)), max(1, round(r2))),
                    angle, 0, 360, int(label), -1)
        return
    if kind == 1:
        corners = cv2.boxPoints(((cx, cy), (2 * r1, 2 * r2), angle))
    else:
        phases = np.sort(rng.uniform(0, 2 * np.pi, size=3))
        radius = rng.uniform(0.6, 1.0, size=3) * max(r1, r2) * 1.3
        corners = np.stack([cx + radius * np.cos(phases), cy + radius * np.sin(phases)], 1)
    cv2.fillPoly(labels, [np.round(corners).astype(np.int32)], int(label))


class SyntheticShapes(Dataset):
    """Scenes of textured shapes on a textured background, with exact labels.

    Each class has a fixed base colour and texture (flat, stripes, checker,
    dots, grain); class 0 is the background.  Every image holds a few
    ellipses, rotated rectangles and triangles of random classes (later ones
    occlude earlier ones); each image varies the colours a little, then is
    blurred and given Gaussian noise.  The labels are the drawn regions, exact
    to the pixel, so a CNN that sees the scene at a coarse output stride makes
    blobby boundaries that the image's edges can correct.

    Image ``i`` depends only on ``(seed, i)``: any subset, in any order, in
    any process, is the same.  Class appearances depend only on
    ``num_classes``, so training and validation sets drawn with different
    seeds share them.

    Parameters
    ----------
    num_images : int, default 100
        Length of the dataset.
    size : int or (height, width), default 64
        Image size.
    num_classes : int, default 5
        Number of classes including the background (2–32).
    seed : int, default 0
        Seed of the scenes.
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.
    noise : float, default 12.0
        Standard deviation of the pixel noise, in 0–255 units.
    blur : float, default 0.8
        Standard deviation of the Gaussian blur, in pixels (0 disables it).
    max_objects : int, default 5
        Each image holds 1 to ``max_objects`` shapes.

    Attributes
    ----------
    classes : tuple of str
    palette : (num_classes, 3) uint8 ndarray
        The classes' base colours.
    num_classes : int
    ignore_index : int
        255 (no pixel is void; the value is what padding uses).

    Examples
    --------
    >>> data = SyntheticShapes(num_images=2, size=(24, 32), num_classes=3, seed=1)
    >>> image, target = data[0]
    >>> image.dtype, tuple(image.shape), tuple(target.shape)
    (torch.uint8, (3, 24, 32), (24, 32))
    >>> bool(torch.equal(target, data[0][1]))
    True
    """

    ignore_index = 255

    def __init__(self, num_images: int = 100, size: int | Sequence[int] = 64,
                 num_classes: int = 5, seed: int = 0, transforms: Transforms | None = None,
                 noise: float = 12.0, blur: float = 0.8, max_objects: int = 5) -> None:
        self.num_images = check_int("num_images", num_images, low=1)
        self.size = _size_pair("size", size)
        self.num_classes = check_int("num_classes", num_classes, low=2, high=32)
        self.seed = check_int("seed", seed, low=0)
        self.noise = check_number("noise", noise, low=0)
        self.blur = check_number("blur", blur, low=0)
        self.max_objects = check_int("max_objects", max_objects, low=1)
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable, got {type(transforms).__name__}")
        self.transforms = transforms if transforms is not None else ToTensor()
        self.palette = class_colors(self.num_classes)
        self.textures = tuple(TEXTURES[k % len(TEXTURES)] for k in range(self.num_classes))
        self.classes = ("background",) + tuple(
            f"class {k} ({self.textures[k]})" for k in range(1, self.num_classes))

    def __len__(self) -> int:
        return self.num_images

    def __repr__(self) -> str:
        return (f"SyntheticShapes(num_images={self.num_images}, size={self.size}, "
                f"num_classes={self.num_classes}, seed={self.seed})")

    def files(self, index: int) -> tuple[str, ...]:
        """A name for sample ``index`` (there is no file): ``synthetic:seed=S:index=I``."""
        return (f"synthetic:seed={self.seed}:index={check_index(index, len(self))}",)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Scene ``index`` before transforms.

        Returns
        -------
        image : (H, W, 3) uint8 ndarray
        target : (H, W) uint8 ndarray
            Class ids ``0 … num_classes - 1``.
        """
        rng = np.random.default_rng([self.seed, check_index(index, len(self))])
        height, width = self.size
        labels = np.zeros((height, width), dtype=np.uint8)
        for _ in range(int(rng.integers(1, self.max_objects + 1))):
            _draw_shape(labels, rng, int(rng.integers(1, self.num_classes)))
        image = np.zeros((height, width, 3), dtype=np.float32)
        for k in range(self.num_classes):
            mask = labels == k
            if not mask.any():
                continue
            color = self.palette[k].astype(np.float32) + rng.uniform(-12, 12, size=3)
            pattern = _TEXTURE_AMPLITUDE * _texture(self.textures[k], rng, height, width)
            image[mask] = color + pattern[mask, None]
        if self.blur:
            image = cv2.GaussianBlur(image, (0, 0), self.blur)
        if self.noise:
            image += rng.normal(0.0, self.noise, image.shape).astype(np.float32)
        return np.clip(np.round(image), 0, 255).astype(np.uint8), labels

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.load(index)
        return self.transforms(image, target)
