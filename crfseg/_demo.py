"""The built-in scene behind ``crfseg demo``: an image with exact ground truth
and coarse, noisy CNN-like scores for it."""

from __future__ import annotations

import cv2
import numpy as np

DEMO_CLASSES = ("background", "disc", "box", "triangle", "ring")
DEMO_COLORS = np.array(
    [[96, 120, 80], [200, 60, 50], [60, 90, 190], [180, 150, 70], [150, 80, 150]], dtype=np.uint8
)


def make_scene(height: int = 240, width: int = 320, seed: int = 0,
               noise: float = 16.0) -> tuple[np.ndarray, np.ndarray]:
    """A textured scene of coloured shapes and its exact labels.

    Returns
    -------
    image : (H, W, 3) uint8 ndarray
    labels : (H, W) int64 ndarray
        Classes of :data:`DEMO_CLASSES`.
    """
    rng = np.random.default_rng(seed)
    labels = np.zeros((height, width), dtype=np.uint8)
    s = min(height, width)
    cx, cy = int(0.28 * width), int(0.35 * height)
    cv2.circle(labels, (cx, cy), int(0.2 * s), 1, -1)
    x0, y0 = int(0.55 * width), int(0.15 * height)
    cv2.rectangle(labels, (x0, y0), (x0 + int(0.3 * width), y0 + int(0.35 * height)), 2, -1)
    triangle = np.array([[int(0.1 * width), int(0.95 * height)],
                         [int(0.45 * width), int(0.95 * height)],
                         [int(0.3 * width), int(0.6 * height)]], dtype=np.int32)
    cv2.fillPoly(labels, [triangle], 3)
    centre = (int(0.72 * width), int(0.75 * height))
    cv2.circle(labels, centre, int(0.17 * s), 4, -1)
    cv2.circle(labels, centre, int(0.08 * s), 0, -1)
    image = DEMO_COLORS[labels].astype(np.float64)
    yy, xx = np.mgrid[0:height, 0:width]
    image += 12.0 * np.sin(xx / 7.0)[:, :, None] * (labels == 0)[:, :, None]
    image += rng.normal(0.0, noise, image.shape)
    return np.clip(np.round(image), 0, 255).astype(np.uint8), labels.astype(np.int64)


def coarse_logits(labels: np.ndarray, num_classes: int, factor: int = 8, noise: float = 1.2,
                  seed: int = 0) -> np.ndarray:
    """CNN-like logits: one-hot labels seen at ``1/factor`` resolution, blurred, noisy, upsampled.

    Returns
    -------
    logits : (C, H, W) float32 ndarray
    """
    rng = np.random.default_rng(seed + 1)
    height, width = labels.shape
    small = (max(1, width // factor), max(1, height // factor))
    channels = []
    for c in range(num_classes):
        onehot = (labels == c).astype(np.float32)
        low = cv2.resize(onehot, small, interpolation=cv2.INTER_AREA)
        low = cv2.GaussianBlur(low, (0, 0), 1.0)
        low = 4.0 * low + rng.normal(0.0, noise, low.shape).astype(np.float32)
        channels.append(cv2.resize(low, (width, height), interpolation=cv2.INTER_LINEAR))
    return np.stack(channels).astype(np.float32)
