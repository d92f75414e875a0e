"""Colour palettes and class names of the datasets crfseg knows.

``get_palette(name)`` gives a ``(K, 3)`` uint8 array; row ``k`` is the colour
of class ``k``.  These are the colours each dataset's own tools use, so label
PNGs written with them look like the dataset's ground truth.
"""

from __future__ import annotations

import numpy as np

__all__ = ["get_palette", "get_class_names", "voc_colormap", "PALETTE_NAMES"]


def voc_colormap(num_colors: int = 256) -> np.ndarray:
    """The Pascal VOC bit-interleaved colour map.

    Class ``k``'s colour takes the bits of ``k`` three at a time, spreading
    them from the most significant bit of R, G and B downwards.

    Parameters
    ----------
    num_colors : int, default 256
        Number of rows (1–256).

    Returns
    -------
    (num_colors, 3) uint8 ndarray

    Examples
    --------
    >>> voc_colormap(3).tolist()
    [[0, 0, 0], [128, 0, 0], [0, 128, 0]]
    """
    if not 1 <= int(num_colors) <= 256:
        raise ValueError(f"num_colors must be in [1, 256], got {num_colors}")
    cmap = np.zeros((num_colors, 3), dtype=np.uint8)
    for k in range(num_colors):
        r = g = b = 0
        c = k
        for shift in range(7, -1, -1):
            r |= (c & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        cmap[k] = (r, g, b)
    return cmap


VOC_CLASSES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor",
)

CITYSCAPES_CLASSES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)
CITYSCAPES_COLORS = (
    (128, 64, 128), (244, 35, 232), (70, 70, 70), (102, 102, 156), (190, 153, 153),
    (153, 153, 153), (250, 170, 30), (220, 220, 0), (107, 142, 35), (152, 251, 152),
    (70, 130, 180), (220, 20, 60), (255, 0, 0), (0, 0, 142), (0, 0, 70), (0, 60, 100),
    (0, 80, 100), (0, 0, 230), (119, 11, 32),
)

CAMVID_CLASSES = (
    "Sky", "Building", "Pole", "Road", "Pavement", "Tree", "SignSymbol", "Fence", "Car",
    "Pedestrian", "Bicyclist",
)
CAMVID_COLORS = (
    (128, 128, 128), (128, 0, 0), (192, 192, 128), (128, 64, 128), (60, 40, 222),
    (128, 128, 0), (192, 128, 128), (64, 64, 128), (64, 0, 128), (64, 64, 0), (0, 128, 192),
)


def _table() -> dict[str, tuple[np.ndarray, tuple[str, ...]]]:
    return {
        "voc": (voc_colormap(256)[: len(VOC_CLASSES)], VOC_CLASSES),
        "cityscapes": (np.array(CITYSCAPES_COLORS, dtype=np.uint8), CITYSCAPES_CLASSES),
        "camvid": (np.array(CAMVID_COLORS, dtype=np.uint8), CAMVID_CLASSES),
    }


PALETTE_NAMES = tuple(_table())


def _lookup(name: str) -> tuple[np.ndarray, tuple[str, ...]]:
    table = _table()
    if name not in table:
        raise KeyError(f"unknown palette {name!r}; choose one of {', '.join(sorted(table))}")
    return table[name]


def get_palette(name: str) -> np.ndarray:
    """Colours of a dataset's classes.

    Parameters
    ----------
    name : str
        One of ``PALETTE_NAMES``.

    Returns
    -------
    (K, 3) uint8 ndarray
        Row ``k`` is the RGB colour of class ``k``.

    Raises
    ------
    KeyError
        For an unknown name; the message lists the choices.

    Examples
    --------
    >>> get_palette("cityscapes")[0].tolist()
    [128, 64, 128]
    """
    return _lookup(name)[0].copy()


def get_class_names(name: str) -> tuple[str, ...]:
    """Class names of a dataset, in label order (same names as :func:`get_palette`)."""
    return _lookup(name)[1]
