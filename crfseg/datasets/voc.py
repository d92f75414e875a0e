"""Pascal VOC 2012 segmentation, with the SBD-augmented training split."""

from __future__ import annotations

from pathlib import Path

from crfseg.datasets._base import (
    SegmentationDataset,
    Transforms,
    image_label_pairs,
    label_lut,
    read_split_file,
)

__all__ = ["VOCSegmentation"]


class VOCSegmentation(SegmentationDataset):
    """Pascal VOC 2012 semantic segmentation (21 classes with background).

    Layout (``root`` is the folder holding ``VOCdevkit``, or ``VOCdevkit``, or
    ``VOC2012`` itself)::

        VOCdevkit/VOC2012/JPEGImages/2007_000032.jpg
        VOCdevkit/VOC2012/SegmentationClass/2007_000032.png      palette ("P") PNGs
        VOCdevkit/VOC2012/SegmentationClassAug/2007_000032.png   gray PNGs (SBD, "aug")
        VOCdevkit/VOC2012/ImageSets/Segmentation/{train,val,trainval,train_aug}.txt

    The ``*_aug`` splits (10,582 images for ``train_aug``) read their labels
    from ``SegmentationClassAug``; the others from ``SegmentationClass``,
    whose palette PNGs are read as indices, never as colours.  Labels 0–20 are
    the classes, 255 (object boundaries, difficult regions) is ``ignore_index``.

    Parameters
    ----------
    root : str or path-like
        See the layout above.
    split : {"train", "val", "trainval", "train_aug", "trainval_aug"}
        The list ``ImageSets/Segmentation/<split>.txt``.
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.

    References
    ----------
    M. Everingham et al., "The PASCAL Visual Object Classes Challenge", IJCV 2010;
    B. Hariharan et al., "Semantic contours from inverse detectors" (SBD), ICCV 2011.

    Examples
    --------
    >>> VOCSegmentation.SPLITS
    ('train', 'val', 'trainval', 'train_aug', 'trainval_aug')
    """

    palette_name = "voc"
    SPLITS = ("train", "val", "trainval", "train_aug", "trainval_aug")
    label_encoding = "indices 0-20, 255 void"
    lut = label_lut({**{k: k for k in range(21)}, 255: 255})

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Transforms | None = None) -> None:
        super().__init__(root, split, transforms)

    def _find_samples(self) -> list[tuple[Path, Path]]:
        candidates = (self.root / "VOCdevkit" / "VOC2012", self.root / "VOC2012", self.root)
        base = next((c for c in candidates if (c / "ImageSets").is_dir()), None)
        if base is None:
            looked = ", ".join(str(c / "ImageSets") for c in candidates)
            raise FileNotFoundError(f"VOC2012 folder not found: looked for {looked}")
        names = read_split_file(base / "ImageSets" / "Segmentation" / f"{self.split}.txt",
                                f"VOC split list {self.split!r}")
        label_dir = "SegmentationClassAug" if self.split.endswith("_aug") else "SegmentationClass"
        return image_label_pairs(base / "JPEGImages", base / label_dir, ".jpg", ".png",
                                 names=names)
