"""ADE20K as released for the MIT Scene Parsing benchmark (150 classes)."""

from __future__ import annotations

from pathlib import Path

from crfseg.datasets._base import (
    SegmentationDataset,
    Transforms,
    image_label_pairs,
    label_lut,
    require_path,
)

__all__ = ["ADE20K"]

_FOLDERS = {"training": "training", "train": "training",
            "validation": "validation", "val": "validation"}


class ADE20K(SegmentationDataset):
    """ADE20K SceneParsing (ADEChallengeData2016), 150 classes.

    Layout (``root`` is ``ADEChallengeData2016`` or the folder holding it)::

        ADEChallengeData2016/images/{training,validation}/ADE_train_00000001.jpg
        ADEChallengeData2016/annotations/{training,validation}/ADE_train_00000001.png

    Labels are "reduced": 0 ("other") becomes ``ignore_index`` and class ``k``
    (1–150) becomes ``k − 1``.  A plain ``label − 1`` would leave −1 for
    "other", which crashes cross-entropy; the lookup table maps 0 to 255.

    Parameters
    ----------
    root : str or path-like
        See the layout above.
    split : {"training", "validation", "train", "val"}
        20,210 / 2,000 images.
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.

    References
    ----------
    B. Zhou et al., "Scene Parsing through ADE20K Dataset", CVPR 2017.

    Examples
    --------
    >>> ADE20K.lut[[0, 1, 150]].tolist()
    [255, 0, 149]
    """

    palette_name = "ade20k"
    SPLITS = tuple(_FOLDERS)
    label_encoding = "0 other, 1-150 classes"
    lut = label_lut({0: 255, **{k: k - 1 for k in range(1, 151)}})

    def __init__(self, root: str | Path, split: str = "training",
                 transforms: Transforms | None = None) -> None:
        super().__init__(root, split, transforms)

    def _find_samples(self) -> list[tuple[Path, Path]]:
        nested = self.root / "ADEChallengeData2016"
        base = nested if nested.is_dir() else self.root
        folder = _FOLDERS[self.split]
        images = require_path(base / "images" / folder, "ADE20K images", folder=True)
        labels = require_path(base / "annotations" / folder, "ADE20K annotations", folder=True)
        return image_label_pairs(images, labels, ".jpg", ".png")
