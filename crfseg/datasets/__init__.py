"""Dataset readers, joint transforms, palettes and procedural scenes.

Every reader returns ``(image, target)``: a ``(3, H, W)`` uint8 RGB tensor in
0–255 units and ``(H, W)`` int64 training ids (with the default transforms),
and exposes ``classes``, ``palette``, ``num_classes`` and ``ignore_index``.
"""

from __future__ import annotations

from typing import Any

from crfseg.datasets._base import SegmentationDataset
from crfseg.datasets.ade20k import ADE20K
from crfseg.datasets.camvid import CamVid
from crfseg.datasets.cityscapes import Cityscapes
from crfseg.datasets.coco_stuff import COCOStuff
from crfseg.datasets.synthetic import SyntheticShapes
from crfseg.datasets.voc import VOCSegmentation
from crfseg.palettes import get_class_names, get_palette

__all__ = [
    "ADE20K",
    "CamVid",
    "Cityscapes",
    "COCOStuff",
    "SegmentationDataset",
    "SyntheticShapes",
    "VOCSegmentation",
    "DATASETS",
    "get_dataset",
    "get_class_names",
    "get_palette",
]

DATASETS: dict[str, type] = {
    "camvid": CamVid,
    "voc": VOCSegmentation,
    "cityscapes": Cityscapes,
    "ade20k": ADE20K,
    "coco_stuff": COCOStuff,
    "synthetic": SyntheticShapes,
}


def get_dataset(name: str, **kwargs: Any) -> Any:
    """Build a dataset by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``camvid``, ``voc``, ``cityscapes``,
        ``ade20k``, ``coco_stuff``, ``synthetic``.
    **kwargs
        The dataset's own arguments (``root``, ``split``, ``transforms``, …).

    Returns
    -------
    torch.utils.data.Dataset

    Raises
    ------
    KeyError
        For an unknown name; the message lists the choices.

    Examples
    --------
    >>> len(get_dataset("synthetic", num_images=3, size=16))
    3
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](**kwargs)
