"""COCO-Stuff: the 164k release (PNG maps) and the 10k release (.mat files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from crfseg._validation import check_choice
from crfseg.datasets._base import (
    SegmentationDataset,
    Transforms,
    image_label_pairs,
    label_lut,
    read_split_file,
    require_path,
)

__all__ = ["COCOStuff", "UNUSED_IDS", "VERSIONS"]

VERSIONS = ("auto", "164k", "10k")

# COCO's 182 ids (0-based: 0 = person ... 181 = wood) leave these unused; the
# 171 remaining ids, in order, are the training ids.
UNUSED_IDS = (11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90)
_ID_TO_TRAIN_ID = {raw: train_id for train_id, raw in
                   enumerate(i for i in range(182) if i not in UNUSED_IDS)}

_SPLITS_164K = {"train": "train2017", "train2017": "train2017",
                "val": "val2017", "val2017": "val2017"}
_SPLITS_10K = ("train", "test", "all")


class COCOStuff(SegmentationDataset):
    """COCO-Stuff, 80 thing and 91 stuff classes (171 after remapping).

    Layouts (``root`` holds ``images`` and ``annotations``)::

        164k: images/{train2017,val2017}/000000000139.jpg
              annotations/{train2017,val2017}/000000000139.png   ids 0-181, 255 unlabeled
        10k:  images/COCO_train2014_000000000077.jpg
              annotations/COCO_train2014_000000000077.mat        key "S": 1-182, 0 unlabeled
              imageLists/{train,test,all}.txt

    Both releases number classes with COCO's 182 ids, 11 of which are never
    used (:data:`UNUSED_IDS`); one lookup table maps the 171 used ids to
    training ids 0–170 and unlabeled (and the unused ids) to ``ignore_index``.
    The 10k ``S`` maps are 1-based and are shifted first.

    Parameters
    ----------
    root : str or path-like
        See the layouts above.
    split : str
        164k: ``"train"``/``"train2017"`` (118,287) or ``"val"``/``"val2017"``
        (5,000); 10k: ``"train"`` (9,000), ``"test"`` (1,000) or ``"all"``.
    transforms : callable, optional
        Joint transform; default :class:`~crfseg.datasets.transforms.ToTensor`.
    version : {"auto", "164k", "10k"}, default "auto"
        ``auto`` picks 10k when ``root/imageLists`` exists.

    References
    ----------
    H. Caesar, J. Uijlings and V. Ferrari, "COCO-Stuff: Thing and Stuff Classes
    in Context", CVPR 2018.

    Examples
    --------
    >>> COCOStuff.LUT_164K[[0, 11, 12, 181, 255]].tolist()
    [0, 255, 11, 170, 255]
    """

    palette_name = "cocostuff"
    SPLITS = (*_SPLITS_164K, "test", "all")
    LUT_164K = label_lut({**{i: 255 for i in range(182)}, **_ID_TO_TRAIN_ID, 255: 255})
    LUT_10K = label_lut({0: 255, **{i + 1: 255 for i in UNUSED_IDS},
                         **{raw + 1: t for raw, t in _ID_TO_TRAIN_ID.items()}})

    def __init__(self, root: str | Path, split: str = "train",
                 transforms: Transforms | None = None, version: str = "auto") -> None:
        check_choice("version", version, VERSIONS)
        self.version = version
        super().__init__(root, split, transforms)

    def _find_samples(self) -> list[tuple[Path, Path]]:
        if self.version == "auto":
            self.version = "10k" if (self.root / "imageLists").is_dir() else "164k"
        if self.version == "10k":
            self.lut, self.label_encoding = self.LUT_10K, ".mat key S, 0 unlabeled, 1-182 ids"
            return self._find_10k()
        self.lut, self.label_encoding = self.LUT_164K, "ids 0-181, 255 unlabeled"
        if self.split not in _SPLITS_164K:
            raise ValueError(f"split must be one of {', '.join(map(repr, _SPLITS_164K))} for "
                             f"COCO-Stuff 164k; got {self.split!r}")
        folder = _SPLITS_164K[self.split]
        images = require_path(self.root / "images" / folder, "COCO-Stuff 164k images",
                              folder=True)
        labels = require_path(self.root / "annotations" / folder, "COCO-Stuff 164k annotations",
                              folder=True)
        return image_label_pairs(images, labels, ".jpg", ".png")

    def _find_10k(self) -> list[tuple[Path, Path]]:
        if self.split not in _SPLITS_10K:
            raise ValueError(f"split must be one of {', '.join(map(repr, _SPLITS_10K))} for "
                             f"COCO-Stuff 10k; got {self.split!r}")
        names = read_split_file(self.root / "imageLists" / f"{self.split}.txt",
                                f"COCO-Stuff 10k split list {self.split!r}")
        return image_label_pairs(self.root / "images", self.root / "annotations", ".jpg", ".mat",
                                 names=[Path(n).stem for n in names])

    def read_target(self, path: Path) -> np.ndarray:
        if path.suffix != ".mat":
            return super().read_target(path)
        from scipy.io import loadmat

        try:
            content = loadmat(str(path), variable_names=["S"])
        except Exception as exc:
            raise ValueError(f"could not read label file {path}: {exc}") from None
        if "S" not in content:
            raise ValueError(f"label file {path} holds no variable 'S' (the COCO-Stuff 10k "
                             "label map)")
        labels = np.asarray(content["S"])
        if labels.ndim != 2 or (labels.dtype.kind not in "iu" and not _integral(labels)):
            raise ValueError(f"label file {path}: 'S' must be a 2-D map of integer labels, got "
                             f"{labels.dtype} {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 65535):
            raise ValueError(f"label file {path}: 'S' holds values outside 0-65535")
        return labels.astype(np.uint16)


def _integral(values: np.ndarray) -> bool:
    """True for a float array whose values are all whole numbers (MATLAB stores doubles)."""
    return values.dtype.kind == "f" and bool(np.all(np.isfinite(values))) and bool(
        np.all(values == np.round(values)))
