"""Tiny fake copies of the five datasets, in exactly their real folder layouts.

Each ``write_<name>(folder)`` fills ``folder`` with a few 24×32 images and
label files whose raw values span the dataset's whole encoding (classes and
void), and returns the path a user would pass as ``root``.  Tests decode the
labels with an oracle written from the datasets' documentation
(``../shared/DATASETS.md``) and compare with the readers.  ``run_example``
runs an example script on them as ``python`` would.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import numpy as np
import scipy.io

from crfseg import io
from crfseg.palettes import voc_colormap

SIZE = (24, 32)

# Raw values each dataset's label files may hold.
RAW_VALUES = {
    "camvid": list(range(12)),
    "voc": [*range(21), 255],
    "cityscapes": list(range(34)),
    "ade20k": list(range(151)),
    "coco_stuff": [*range(182), 255],
    "coco_stuff_10k": list(range(183)),
}

_COCO_UNUSED = {11, 25, 28, 29, 44, 65, 67, 68, 70, 82, 90}
_CITYSCAPES_EVALUATED = [7, 8, 11, 12, 13, 17, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 31, 32, 33]


def oracle(name: str, raw: int) -> int:
    """The training id of one raw label value, from the datasets' documentation."""
    if name == "camvid":
        return 255 if raw == 11 else raw
    if name == "voc":
        return raw
    if name == "cityscapes":
        return _CITYSCAPES_EVALUATED.index(raw) if raw in _CITYSCAPES_EVALUATED else 255
    if name == "ade20k":
        return 255 if raw == 0 else raw - 1
    if name == "coco_stuff_10k":
        return 255 if raw == 0 else oracle("coco_stuff", raw - 1)
    if raw == 255 or raw in _COCO_UNUSED:
        return 255
    return raw - sum(1 for u in _COCO_UNUSED if u < raw)


def decode(name: str, raw: np.ndarray) -> np.ndarray:
    """Apply :func:`oracle` to every pixel (slow on purpose: it is the reference)."""
    return np.vectorize(lambda v: oracle(name, int(v)))(raw).astype(np.int64)


def _pair(rng: np.random.Generator, name: str, size: tuple[int, int] = SIZE):
    image = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
    raw = rng.choice(RAW_VALUES[name], size=size).astype(np.uint8)
    return image, raw


def write_camvid(folder: Path, n: int = 2, lists: bool = True, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = folder / "CamVid"
    for split in ("train", "val", "test"):
        (base / split).mkdir(parents=True)
        (base / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            name = f"0001TP_{6690 + 30 * i:06d}.png"
            image, raw = _pair(rng, "camvid")
            io.write_image(base / split / name, image)
            io.write_labels(base / f"{split}annot" / name, raw)
            lines.append(f"/SegNet/CamVid/{split}/{name} /SegNet/CamVid/{split}annot/{name}")
        if lists:
            (base / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return base


def write_voc(folder: Path, n: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    base = folder / "VOCdevkit" / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "SegmentationClassAug",
                "ImageSets/Segmentation"):
        (base / sub).mkdir(parents=True)
    names = {"train": [f"2007_{i:06d}" for i in range(n)],
             "val": [f"2008_{i:06d}" for i in range(n)],
             "train_aug": [f"2007_{i:06d}" for i in range(n)] + [f"2011_{i:06d}" for i in range(n)]}
    names["trainval"] = names["train"] + names["val"]
    for stem in sorted(set(sum(names.values(), []))):
        image, raw = _pair(rng, "voc")
        io.write_image(base / "JPEGImages" / f"{stem}.jpg", image)
        if not stem.startswith("2011"):
            io.write_labels(base / "SegmentationClass" / f"{stem}.png", raw,
                            palette=voc_colormap(256))
        io.write_labels(base / "SegmentationClassAug" / f"{stem}.png", raw)
    for split, stems in names.items():
        (base / "ImageSets" / "Segmentation" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    return folder


def write_cityscapes(folder: Path, n: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for split in ("train", "val"):
        for city in ("aachen", "bremen"):
            images = folder / "leftImg8bit" / split / city
            labels = folder / "gtFine" / split / city
            images.mkdir(parents=True)
            labels.mkdir(parents=True)
            for i in range(n):
                stem = f"{city}_{i:06d}_000019"
                image, raw = _pair(rng, "cityscapes")
                io.write_image(images / f"{stem}_leftImg8bit.png", image)
                io.write_labels(labels / f"{stem}_gtFine_labelIds.png", raw)
                io.write_labels(labels / f"{stem}_gtFine_color.png", raw)
                (labels / f"{stem}_gtFine_polygons.json").write_text("{}")
    return folder


def _images_and_annotations(base: Path, key: str, splits: dict[str, list[str]],
                            seed: int) -> None:
    """``base/images/<split>/<stem>.jpg`` and ``base/annotations/<split>/<stem>.png``."""
    rng = np.random.default_rng(seed)
    for split, stems in splits.items():
        (base / "images" / split).mkdir(parents=True)
        (base / "annotations" / split).mkdir(parents=True)
        for stem in stems:
            image, raw = _pair(rng, key)
            io.write_image(base / "images" / split / f"{stem}.jpg", image)
            io.write_labels(base / "annotations" / split / f"{stem}.png", raw)


def write_ade20k(folder: Path, n: int = 2, seed: int = 0) -> Path:
    base = folder / "ADEChallengeData2016"
    _images_and_annotations(base, "ade20k", {
        "training": [f"ADE_train_{i + 1:08d}" for i in range(n)],
        "validation": [f"ADE_val_{i + 1:08d}" for i in range(n)]}, seed)
    return base


def write_coco_stuff(folder: Path, n: int = 2, seed: int = 0) -> Path:
    stems = [f"{139 + i:012d}" for i in range(n)]
    _images_and_annotations(folder, "coco_stuff", {"train2017": stems, "val2017": stems}, seed)
    return folder


def write_coco_stuff_10k(folder: Path, n: int = 2, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for sub in ("images", "annotations", "imageLists"):
        (folder / sub).mkdir(parents=True)
    lists: dict[str, list[str]] = {"train": [], "test": []}
    for split in lists:
        for i in range(n):
            stem = f"COCO_train2014_{77 + i + (100 if split == 'test' else 0):012d}"
            image, raw = _pair(rng, "coco_stuff_10k")
            io.write_image(folder / "images" / f"{stem}.jpg", image)
            # The reader accepts integer maps and whole-number doubles; write both.
            dtype = np.uint16 if split == "train" else np.float64
            scipy.io.savemat(folder / "annotations" / f"{stem}.mat",
                             {"S": raw.astype(dtype), "names": "x"})
            lists[split].append(stem)
    for split, stems in lists.items():
        (folder / "imageLists" / f"{split}.txt").write_text("\n".join(stems) + "\n")
    (folder / "imageLists" / "all.txt").write_text("\n".join(sum(lists.values(), [])) + "\n")
    return folder


WRITERS = {
    "camvid": write_camvid,
    "voc": write_voc,
    "cityscapes": write_cityscapes,
    "ade20k": write_ade20k,
    "coco_stuff": write_coco_stuff,
    "coco_stuff_10k": write_coco_stuff_10k,
}


EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run_example(name: str, script: str, *argv: str) -> int:
    """Run ``examples/<name>/<script>.py`` in this process, as ``python`` would; its exit code."""
    path = EXAMPLES / name / f"{script}.py"
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        runpy.run_path(str(path), run_name="__main__")
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        sys.argv = saved
    return 0
