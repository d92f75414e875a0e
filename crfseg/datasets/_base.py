"""What every dataset reader shares: file pairs, label encoding through a lookup
table, checks that name the offending file, and the transforms."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from crfseg import io
from crfseg._validation import check_int
from crfseg.datasets.transforms import ToTensor
from crfseg.palettes import get_class_names, get_palette

__all__ = ["SegmentationDataset", "label_lut"]

PathLike = str | os.PathLike
Transforms = Callable[[np.ndarray, np.ndarray], tuple[Any, Any]]

# Raw values a lookup table rejects.
INVALID = -1


def label_lut(mapping: dict[int, int], size: int = 256) -> np.ndarray:
    """A ``(size,)`` int16 table from raw label values to training ids.

    Raw values missing from ``mapping`` map to ``-1`` (invalid); the dataset
    reader reports them with the file name.
    """
    lut = np.full(size, INVALID, dtype=np.int16)
    for raw, train_id in mapping.items():
        lut[raw] = train_id
    return lut


def require_path(path: Path, what: str, *, folder: bool = False, hint: str = "") -> Path:
    """Return ``path`` if it is a file (a folder when ``folder``), else raise
    FileNotFoundError saying what was looked for and where."""
    if not (path.is_dir() if folder else path.is_file()):
        extra = f"; {hint}" if hint else ""
        kind = "folder" if folder else "file"
        raise FileNotFoundError(f"{what} not found: looked for the {kind} {path}{extra}")
    return path


def read_split_file(path: Path, what: str) -> list[str]:
    """Non-empty, stripped lines of a split list (a missing file names what was expected)."""
    require_path(path, what)
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in handle if line.strip()]


def check_index(index: int, length: int) -> int:
    """A sample index in ``[-length, length)`` as a non-negative int (IndexError otherwise)."""
    index = check_int("index", index)
    if not -length <= index < length:
        raise IndexError(f"index {index} is out of range for {length} samples")
    return index % length


class SegmentationDataset(Dataset):
    """Base of crfseg's dataset readers: ``(image, target)`` pairs from image/label files.

    A subclass lists its files in :meth:`_find_samples` and says how raw label
    values become training ids through ``self.lut`` (a table from raw value to
    id, ``-1`` for values the dataset never uses) or by overriding
    :meth:`encode_target`.

    Parameters
    ----------
    root : str or path-like
        The dataset's folder.
    split : str
        Which split to read; each dataset lists its own in ``SPLITS``.
    transforms : callable, optional
        Joint transform ``(image, target) -> (image, target)`` applied to the
        ``(H, W, 3)`` uint8 image and ``(H, W)`` uint8 labels; by default
        :class:`~crfseg.datasets.transforms.ToTensor`.

    Attributes
    ----------
    classes : tuple of str
        Class names in training-id order.
    palette : (num_classes, 3) uint8 ndarray
        Class colours.
    num_classes : int
    ignore_index : int
        Label of pixels to leave out (255).
    samples : list of tuple of pathlib.Path
        ``(image_file, label_file)`` per sample.
    """

    palette_name: str = ""
    SPLITS: tuple[str, ...] = ()
    ignore_index: int = 255
    label_encoding: str = ""
    lut: np.ndarray | None = None

    def __init__(self, root: PathLike, split: str, transforms: Transforms | None = None) -> None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path, got {type(root).__name__}")
        if split not in self.SPLITS:
            listed = ", ".join(repr(s) for s in self.SPLITS)
            raise ValueError(f"split must be one of {listed} for {type(self).__name__}; "
                             f"got {split!r}")
        if transforms is not None and not callable(transforms):
            raise TypeError(f"transforms must be callable, got {type(transforms).__name__}")
        self.root = Path(root)
        require_path(self.root, f"{type(self).__name__} root", folder=True)
        self.split = split
        self.transforms = transforms if transforms is not None else ToTensor()
        self.classes = get_class_names(self.palette_name)
        self.palette = get_palette(self.palette_name)
        self.num_classes = len(self.classes)
        self.samples = self._find_samples()
        if not self.samples:
            raise ValueError(f"{type(self).__name__} split {split!r} under {self.root} lists no "
                             "images; check root and split")

    def _find_samples(self) -> list[tuple[Path, Path]]:
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, "
                f"{len(self)} images, {self.num_classes} classes)")

    def files(self, index: int) -> tuple[str, ...]:
        """The files sample ``index`` is read from (image first)."""
        return tuple(str(p) for p in self.samples[self._index(index)])

    def _index(self, index: int) -> int:
        return check_index(index, len(self))

    def read_target(self, path: Path) -> np.ndarray:
        """Raw label values of one file, before encoding."""
        return io.read_labels(path)

    def encode_target(self, raw: np.ndarray, path: Path) -> np.ndarray:
        """Training ids (``(H, W)`` uint8, ``ignore_index`` for void) from raw values.

        Raises ValueError naming ``path`` for a value outside the encoding.
        """
        lut = self.lut
        if lut is None:
            raise NotImplementedError(f"{type(self).__name__} defines no label lookup table")
        if raw.size and int(raw.max()) >= len(lut):
            encoded, bad = None, raw >= len(lut)
        else:
            encoded = lut[raw]
            bad = encoded == INVALID
        if encoded is None or bad.any():
            row, col = (int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"label file {path} holds value {int(raw[row, col])} at (row {row}, col {col}), "
                f"outside {type(self).__name__}'s encoding ({self.label_encoding}); check that "
                "the file belongs to this dataset and is not colour-coded or already converted"
            )
        return encoded.astype(np.uint8)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample ``index`` before transforms, checked.

        Returns
        -------
        image : (H, W, 3) uint8 ndarray
            RGB.
        target : (H, W) uint8 ndarray
            Training ids, ``ignore_index`` for void pixels.

        Raises
        ------
        FileNotFoundError
            A listed file is missing.
        ValueError
            A corrupt file, a label image whose size differs from its image, or a
            label value outside the dataset's encoding (each names the file).
        """
        image_path, label_path = self.samples[self._index(index)]
        image = io.read_image(image_path)
        raw = self.read_target(label_path)
        if raw.shape != image.shape[:2]:
            raise ValueError(
                f"label file {label_path} is {raw.shape[0]}x{raw.shape[1]} (H x W) but its "
                f"image {image_path} is {image.shape[0]}x{image.shape[1]}; the pair must match"
            )
        return image, self.encode_target(raw, label_path)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        image, target = self.load(index)
        return self.transforms(image, target)


def image_label_pairs(image_dir: Path, label_dir: Path, image_suffix: str,
                      label_suffix: str, names: Sequence[str] | None = None,
                      recursive: bool = False) -> list[tuple[Path, Path]]:
    """Pair every image in ``image_dir`` (or the listed ``names``) with its label file.

    ``names`` are stems without suffix; without them the folder is listed
    (sorted, with sub-folders when ``recursive``).  A missing label file
    raises FileNotFoundError naming it.
    """
    if names is None:
        pattern = f"**/*{image_suffix}" if recursive else f"*{image_suffix}"
        images = sorted(image_dir.glob(pattern))
        stems = [str(p.relative_to(image_dir))[: -len(image_suffix)] for p in images]
    else:
        stems = list(names)
    return [checked_pair(image_dir / f"{stem}{image_suffix}", label_dir / f"{stem}{label_suffix}")
            for stem in stems]


def checked_pair(image: Path, label: Path) -> tuple[Path, Path]:
    """``(image, label)`` after checking both files exist (the error names the missing one)."""
    return (require_path(image, "image file"),
            require_path(label, f"label file for image {image.name}"))
