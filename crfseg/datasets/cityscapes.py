"""Cityscapes fine annotations: 34 label ids mapped to the 19 training ids."""

from __future__ import annotations

from pathlib import Path

from crfseg.datasets._base import (
    SegmentationDataset,
    Transforms,
    image_label_pairs,
    label_lut,
    require_path,
)

__all__ = ["Cityscapes", "LABEL_ID_TO_TRAIN_ID"]

# cityscapesScripts labels.py: the 19 evaluated classes; every other id is void.
LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
    26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


class Cityscapes(SegmentationDataset):
    """Cityscapes with fine annotations (2048×1024, 19 evaluated classes).

    Layout (``root`` holds ``leftImg8bit`` and ``gtFine``)::

        leftImg8bit/{train,val,test}/<city>/<city>_<seq>_<frame>_leftImg8bit.png
        gtFine/{train,val,test}/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png

    The label ids 0–33 of ``*_labelIds.png`` become training ids through one
    lookup table (:data:`LABEL_ID_TO_TRAIN_ID`); ids of classes that are not
    evaluated, and 255 (where the license plate's id −1 ends up), become
    ``ignore_index``.

    Parameters
    ----------
    root : str or path-like
        The folder holding ``leftImg8bit`` and ``gtFine``.
    split : {"train", "val", "test"}
        2,975 / 500 / 1,525 images (test labels are withheld by the benchmark).
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.

    References
    ----------
    M. Cordts et al., "The Cityscapes Dataset for Semantic Urban Scene
    Understanding", CVPR 2016.

    Examples
    --------
    >>> Cityscapes.lut[[7, 26, 0]].tolist()
    [0, 13, 255]
    """

    palette_name = "cityscapes"
    SPLITS = ("train", "val", "test")
    label_encoding = "labelIds 0-33, 255 void"
    lut = label_lut({**{k: 255 for k in range(34)}, **LABEL_ID_TO_TRAIN_ID, 255: 255})

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Transforms | None = None) -> None:
        super().__init__(root, split, transforms)

    def _find_samples(self) -> list[tuple[Path, Path]]:
        images = require_path(self.root / "leftImg8bit" / self.split, "Cityscapes images",
                              folder=True)
        labels = require_path(self.root / "gtFine" / self.split, "Cityscapes fine labels",
                              folder=True)
        return image_label_pairs(images, labels, "_leftImg8bit.png", "_gtFine_labelIds.png",
                                 recursive=True)
