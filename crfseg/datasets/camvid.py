"""CamVid in the SegNet layout (360×480, 11 classes)."""

from __future__ import annotations

from pathlib import Path

from crfseg.datasets._base import (
    SegmentationDataset,
    Transforms,
    checked_pair,
    image_label_pairs,
    label_lut,
    read_split_file,
    require_path,
)

__all__ = ["CamVid"]


class CamVid(SegmentationDataset):
    """The Cambridge-driving Labeled Video Database as prepared for SegNet.

    Layout (``root`` is the ``CamVid`` folder, or the folder holding it)::

        CamVid/train/0001TP_006690.png      CamVid/trainannot/0001TP_006690.png
        CamVid/{val,valannot,test,testannot}/...
        CamVid/{train,val,test}.txt
            lines "/SegNet/CamVid/train/X.png /SegNet/CamVid/trainannot/X.png"

    When a split's ``.txt`` list is absent, the ``<split>`` and
    ``<split>annot`` folders are paired by file name.  Labels are gray PNGs:
    0–10 are the classes, 11 ("Unlabelled", void) becomes ``ignore_index``.

    Parameters
    ----------
    root : str or path-like
        The ``CamVid`` folder (or its parent).
    split : {"train", "val", "test", "trainval"}
        367 / 101 / 233 images in the SegNet split.
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.

    Returns
    -------
    Each item is ``(image, target)``: a ``(3, H, W)`` uint8 tensor and ``(H, W)``
    int64 labels (with the default transforms).

    References
    ----------
    G. J. Brostow, J. Fauqueur and R. Cipolla, "Semantic object classes in video:
    A high-definition ground truth database", Pattern Recognition Letters 2009;
    V. Badrinarayanan, A. Kendall and R. Cipolla, "SegNet", TPAMI 2017.

    Examples
    --------
    >>> CamVid.SPLITS
    ('train', 'val', 'test', 'trainval')
    """

    palette_name = "camvid"
    SPLITS = ("train", "val", "test", "trainval")
    label_encoding = "gray PNG, 0-10 classes, 11 void"
    lut = label_lut({**{k: k for k in range(11)}, 11: 255})

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Transforms | None = None) -> None:
        super().__init__(root, split, transforms)

    def _find_samples(self) -> list[tuple[Path, Path]]:
        base = self.root / "CamVid" if (self.root / "CamVid").is_dir() else self.root
        parts = ("train", "val") if self.split == "trainval" else (self.split,)
        pairs: list[tuple[Path, Path]] = []
        for part in parts:
            listing = base / f"{part}.txt"
            if listing.is_file():
                pairs += _pairs_from_list(base, listing)
                continue
            hint = f"and no split list {listing} either"
            images = require_path(base / part, f"CamVid {part} images", folder=True, hint=hint)
            labels = require_path(base / f"{part}annot", f"CamVid {part} labels", folder=True,
                                  hint=hint)
            pairs += image_label_pairs(images, labels, ".png", ".png")
        return pairs


def _pairs_from_list(base: Path, listing: Path) -> list[tuple[Path, Path]]:
    """Pairs from a SegNet list: only each path's last folder and file name are kept."""
    pairs = []
    for number, line in enumerate(read_split_file(listing, "CamVid split list"), 1):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(f"{listing} line {number} must hold an image path and a label "
                             f"path separated by a space, got {line!r}")
        image, label = (Path(f) for f in fields)
        pairs.append(checked_pair(base / image.parent.name / image.name,
                                  base / label.parent.name / label.name))
    return pairs
