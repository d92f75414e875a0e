"""Dataset readers on tiny fake folders in the real layouts, against a documented oracle."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from fake_datasets import SIZE, WRITERS, decode
from PIL import Image

import crfseg.datasets as ds
from crfseg import io
from crfseg.datasets import (
    ADE20K,
    CamVid,
    Cityscapes,
    COCOStuff,
    SyntheticShapes,
    VOCSegmentation,
    get_class_names,
    get_dataset,
    get_palette,
)
from crfseg.datasets.cityscapes import LABEL_ID_TO_TRAIN_ID

# (writer key, class, split, number of samples written for it, classes, palette)
CASES = [
    ("camvid", CamVid, "train", 2, 11, "camvid"),
    ("voc", VOCSegmentation, "val", 2, 21, "voc"),
    ("cityscapes", Cityscapes, "train", 4, 19, "cityscapes"),
    ("ade20k", ADE20K, "validation", 2, 150, "ade20k"),
    ("coco_stuff", COCOStuff, "val", 2, 171, "cocostuff"),
    ("coco_stuff_10k", COCOStuff, "test", 2, 171, "cocostuff"),
]


def _raw(path: Path, key: str) -> np.ndarray:
    if path.suffix == ".mat":
        return scipy.io.loadmat(path)["S"].astype(np.int64)
    with Image.open(path) as img:
        return np.array(img).astype(np.int64)


@pytest.mark.parametrize("key, cls, split, count, num_classes, palette", CASES,
                         ids=[c[0] for c in CASES])
def test_reader_decodes_like_the_oracle(tmp_path, key, cls, split, count, num_classes, palette):
    root = WRITERS[key](tmp_path)
    data = cls(root, split)
    assert len(data) == count
    assert data.num_classes == num_classes == len(data.classes)
    assert data.classes == get_class_names(palette)
    np.testing.assert_array_equal(data.palette, get_palette(palette))
    assert data.ignore_index == 255
    for i in range(len(data)):
        image_file, label_file = (Path(f) for f in data.files(i))
        raw = _raw(label_file, key)
        image, target = data.load(i)
        assert image.shape == (*SIZE, 3) and image.dtype == np.uint8
        np.testing.assert_array_equal(target, decode(key, raw))
        image_t, target_t = data[i]
        assert image_t.dtype == torch.uint8 and tuple(image_t.shape) == (3, *SIZE)
        assert target_t.dtype == torch.int64
        np.testing.assert_array_equal(target_t.numpy(), decode(key, raw))
        if image_file.suffix == ".png":
            np.testing.assert_array_equal(image, io.read_image(image_file))
    # Every value of the encoding was drawn, so both classes and void occur.
    all_targets = np.concatenate([data.load(i)[1].ravel() for i in range(len(data))])
    assert (all_targets == 255).any() and (all_targets < num_classes).any()
    assert all_targets.max() <= 255 and set(np.unique(all_targets)) - {255} <= set(
        range(num_classes))


def test_camvid_lists_parent_root_and_folders_without_lists(tmp_path):
    with_lists = WRITERS["camvid"](tmp_path / "a")
    from_parent = CamVid(with_lists.parent, "test")
    assert len(from_parent) == 2 and "testannot" in from_parent.files(0)[1]
    assert len(CamVid(with_lists, "trainval")) == 4
    without = WRITERS["camvid"](tmp_path / "b", lists=False)
    a, b = CamVid(with_lists, "val"), CamVid(without, "val")
    assert [Path(f).name for f in a.files(1)] == [Path(f).name for f in b.files(1)]


def test_voc_palette_png_is_read_as_indices_and_aug_uses_sbd(tmp_path):
    root = WRITERS["voc"](tmp_path)
    plain = VOCSegmentation(root, "train")
    with Image.open(plain.files(0)[1]) as img:
        assert img.mode == "P"
    aug = VOCSegmentation(root, "train_aug")
    assert len(aug) == 4 and all("SegmentationClassAug" in aug.files(i)[1] for i in range(4))
    # The same raw labels, stored as palette PNG and as gray PNG, decode identically.
    np.testing.assert_array_equal(plain.load(0)[1], aug.load(0)[1])
    assert len(VOCSegmentation(root / "VOCdevkit", "trainval")) == 4
    assert len(VOCSegmentation(root / "VOCdevkit" / "VOC2012", "val")) == 2


def test_cityscapes_walks_cities_and_ignores_other_files(tmp_path):
    data = Cityscapes(WRITERS["cityscapes"](tmp_path), "val")
    cities = {Path(f).parent.name for i in range(len(data)) for f in data.files(i)}
    assert cities == {"aachen", "bremen"}
    assert all(f.endswith("_gtFine_labelIds.png") for i in range(4) for f in data.files(i)[1:])


def test_lookup_tables_match_the_documentation():
    cityscapes = Cityscapes.lut
    assert [int(cityscapes[k]) for k in LABEL_ID_TO_TRAIN_ID] == list(range(19))
    assert all(cityscapes[k] == 255 for k in range(34) if k not in LABEL_ID_TO_TRAIN_ID)
    assert all(cityscapes[k] == -1 for k in range(34, 255))
    used = [i for i in range(182) if COCOStuff.LUT_164K[i] != 255]
    assert len(used) == 171 and [int(COCOStuff.LUT_164K[i]) for i in used] == list(range(171))
    assert COCOStuff.LUT_164K[181] == 170 and COCOStuff.LUT_164K[11] == 255
    assert COCOStuff.LUT_10K[182] == 170 and COCOStuff.LUT_10K[0] == 255
    assert ADE20K.lut[0] == 255 and ADE20K.lut[150] == 149 and ADE20K.lut[151] == -1


def test_palettes_of_ade20k_and_coco_stuff():
    ade, coco = get_palette("ade20k"), get_palette("cocostuff")
    assert ade.shape == (150, 3) and coco.shape == (171, 3)
    # Spot values of mmsegmentation's lists (first, a middle one, last).
    assert ade[0].tolist() == [120, 120, 120] and ade[100].tolist() == [143, 255, 0]
    assert ade[149].tolist() == [92, 0, 255]
    assert coco[0].tolist() == [0, 192, 64] and coco[170].tolist() == [64, 64, 0]
    names = get_class_names("cocostuff")
    assert names[0] == "person" and names[79] == "toothbrush" and names[80] == "banner"
    assert get_class_names("ade20k")[:3] == ("wall", "building", "sky")


def test_coco_stuff_version_detection(tmp_path):
    assert COCOStuff(WRITERS["coco_stuff_10k"](tmp_path / "k"), "all").version == "10k"
    assert COCOStuff(WRITERS["coco_stuff"](tmp_path / "n"), "train2017").version == "164k"


def test_get_dataset_builds_by_name(tmp_path):
    data = get_dataset("ade20k", root=WRITERS["ade20k"](tmp_path), split="train")
    assert isinstance(data, ADE20K) and len(data) == 2
    assert set(ds.DATASETS) == {"camvid", "voc", "cityscapes", "ade20k", "coco_stuff",
                                "synthetic"}


# ---------------------------------------------------------------- SyntheticShapes

def test_synthetic_is_deterministic_and_seed_dependent():
    a = SyntheticShapes(num_images=4, size=(24, 32), num_classes=4, seed=3)
    b = SyntheticShapes(num_images=4, size=(24, 32), num_classes=4, seed=3)
    c = SyntheticShapes(num_images=4, size=(24, 32), num_classes=4, seed=4)
    for i in (3, 0):  # any order
        assert all(torch.equal(x, y) for x, y in zip(a[i], b[i], strict=True))
    assert not torch.equal(a[0][0], c[0][0])
    image, target = a[1]
    assert tuple(image.shape) == (3, 24, 32) and int(target.max()) < 4
    np.testing.assert_array_equal(a.palette, c.palette)  # appearance does not follow the seed
    assert a.files(-1) == ("synthetic:seed=3:index=3",) and len(a) == 4
    assert a.classes[0] == "background" and len(a.classes) == 4


def test_synthetic_ground_truth_is_exact():
    """Without noise and blur, every pixel's nearest class colour is its label."""
    data = SyntheticShapes(num_images=12, size=48, num_classes=6, seed=0, noise=0, blur=0)
    palette = data.palette.astype(np.float64)
    seen = set()
    for i in range(len(data)):
        image, target = data.load(i)
        distance = np.linalg.norm(image[:, :, None].astype(np.float64) - palette, axis=3)
        np.testing.assert_array_equal(distance.argmin(axis=2), target)
        seen |= set(np.unique(target).tolist())
    assert seen == set(range(6))


def test_synthetic_noise_and_blur_change_only_the_image():
    clean = SyntheticShapes(num_images=1, size=32, seed=5, noise=0, blur=0)
    noisy = SyntheticShapes(num_images=1, size=32, seed=5, noise=20, blur=1.5)
    np.testing.assert_array_equal(clean.load(0)[1], noisy.load(0)[1])
    assert np.abs(clean.load(0)[0].astype(int) - noisy.load(0)[0]).mean() > 5


# ---------------------------------------------------------------- bad input

def test_missing_root_says_what_was_looked_for(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError, match=r"CamVid root not found: looked for the folder "
                                                r".*nowhere"):
        CamVid(missing, "train")
    with pytest.raises(FileNotFoundError, match=r"VOC2012 folder not found: looked for .*"
                                                r"VOCdevkit.*VOC2012.*ImageSets"):
        VOCSegmentation(tmp_path, "train")
    with pytest.raises(FileNotFoundError, match=r"Cityscapes images not found: .*leftImg8bit"):
        Cityscapes(tmp_path, "val")
    with pytest.raises(FileNotFoundError, match=r"ADE20K images not found: .*images.training"):
        ADE20K(tmp_path, "training")
    with pytest.raises(FileNotFoundError, match=r"COCO-Stuff 164k images not found"):
        COCOStuff(tmp_path, "val")
    (tmp_path / "leftImg8bit" / "val").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match=r"Cityscapes fine labels not found: .*gtFine"):
        Cityscapes(tmp_path, "val")


def test_missing_split_file_and_folders(tmp_path):
    root = WRITERS["voc"](tmp_path / "voc")
    with pytest.raises(FileNotFoundError, match=r"VOC split list 'trainval_aug' not found: "
                                                r"looked for the file .*trainval_aug.txt"):
        VOCSegmentation(root, "trainval_aug")
    coco = WRITERS["coco_stuff_10k"](tmp_path / "coco")
    (coco / "imageLists" / "test.txt").unlink()
    with pytest.raises(FileNotFoundError, match=r"COCO-Stuff 10k split list 'test' not found"):
        COCOStuff(coco, "test")
    camvid = WRITERS["camvid"](tmp_path / "camvid", lists=False)
    (camvid / "valannot").rename(camvid / "labels")
    with pytest.raises(FileNotFoundError, match=r"CamVid val labels not found: .*valannot; "
                                                r"and no split list .*val.txt"):
        CamVid(camvid, "val")


def test_bad_arguments(tmp_path):
    root = WRITERS["ade20k"](tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of 'training', .* for ADE20K; "
                                         r"got 'test'"):
        ADE20K(root, "test")
    with pytest.raises(TypeError, match="root must be a path, got int"):
        ADE20K(3, "training")
    with pytest.raises(TypeError, match="transforms must be callable, got str"):
        ADE20K(root, "training", transforms="flip")
    with pytest.raises(ValueError, match="version must be one of"):
        COCOStuff(root, "train", version="2017")
    with pytest.raises(ValueError, match=r"split must be one of 'train', 'test', 'all' for "
                                         r"COCO-Stuff 10k; got 'val'"):
        COCOStuff(WRITERS["coco_stuff_10k"](tmp_path / "k"), "val")
    with pytest.raises(ValueError, match=r"split must be one of .* for COCO-Stuff 164k; got "
                                         r"'all'"):
        COCOStuff(WRITERS["coco_stuff"](tmp_path / "n"), "all")
    with pytest.raises(KeyError, match="unknown dataset 'kitti'; choose one of camvid"):
        get_dataset("kitti", root=root)
    data = ADE20K(root, "training")
    with pytest.raises(IndexError, match="index 2 is out of range for 2 samples"):
        data[2]
    with pytest.raises(TypeError, match="index must be an integer, got str"):
        data.files("0")


def test_empty_split(tmp_path):
    root = WRITERS["voc"](tmp_path)
    (root / "VOCdevkit/VOC2012/ImageSets/Segmentation/val.txt").write_text("\n")
    with pytest.raises(ValueError, match=r"VOCSegmentation split 'val' under .* lists no images"):
        VOCSegmentation(root, "val")
    ade = WRITERS["ade20k"](tmp_path / "ade")
    for f in (ade / "images" / "validation").iterdir():
        f.unlink()
    with pytest.raises(ValueError, match=r"ADE20K split 'validation' .* lists no images"):
        ADE20K(ade, "validation")


def test_missing_label_file_and_bad_list_line(tmp_path):
    root = WRITERS["ade20k"](tmp_path / "ade")
    (root / "annotations" / "training" / "ADE_train_00000002.png").unlink()
    with pytest.raises(FileNotFoundError, match=r"label file for image ADE_train_00000002.jpg "
                                                r"not found: .*ADE_train_00000002.png"):
        ADE20K(root, "training")
    camvid = WRITERS["camvid"](tmp_path / "camvid")
    (camvid / "test.txt").write_text("/SegNet/CamVid/test/a.png\n")
    with pytest.raises(ValueError, match=r"test.txt line 1 must hold an image path and a label "
                                         r"path"):
        CamVid(camvid, "test")


def test_corrupt_files_name_the_file(tmp_path):
    root = WRITERS["cityscapes"](tmp_path)
    data = Cityscapes(root, "train")
    image_file, label_file = data.files(0)
    Path(image_file).write_bytes(b"\x89PNG not really")
    with pytest.raises(ValueError, match=r"could not decode image file .*aachen_000000_000019"):
        data[0]
    image_file, label_file = data.files(1)
    Path(label_file).write_bytes(Path(label_file).read_bytes()[:40])
    with pytest.raises(ValueError, match=r"label file .*aachen_000001_000019_gtFine_labelIds"):
        data[1]
    coco = WRITERS["coco_stuff_10k"](tmp_path / "coco")
    data = COCOStuff(coco, "train")
    Path(data.files(0)[1]).write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(ValueError, match=r"could not read label file .*\.mat"):
        data[0]
    scipy.io.savemat(data.files(1)[1], {"L": np.zeros(SIZE)})
    with pytest.raises(ValueError, match=r"holds no variable 'S'"):
        data[1]
    scipy.io.savemat(data.files(1)[1], {"S": np.full(SIZE, 0.5)})
    with pytest.raises(ValueError, match=r"'S' must be a 2-D map of integer labels"):
        data[1]


def test_label_size_must_match_image(tmp_path):
    root = WRITERS["camvid"](tmp_path)
    data = CamVid(root, "train")
    io.write_labels(data.files(0)[1], np.zeros((12, 16), np.uint8))
    with pytest.raises(ValueError, match=r"label file .*trainannot.0001TP_006690.png is 12x16 "
                                         r"\(H x W\) but its image .* is 24x32"):
        data[0]


@pytest.mark.parametrize("key, cls, split, bad", [
    ("camvid", CamVid, "train", 12),
    ("voc", VOCSegmentation, "train", 21),
    ("cityscapes", Cityscapes, "train", 34),
    ("ade20k", ADE20K, "training", 151),
    ("coco_stuff", COCOStuff, "train", 200),
])
def test_label_outside_the_encoding(tmp_path, key, cls, split, bad):
    data = cls(WRITERS[key](tmp_path), split)
    raw = np.zeros(SIZE, np.uint8)
    raw[5, 7] = bad
    io.write_labels(data.files(1)[1], raw)
    with pytest.raises(ValueError, match=rf"label file .* holds value {bad} at \(row 5, col 7\), "
                                         rf"outside {cls.__name__}'s encoding"):
        data[1]


def test_sixteen_bit_label_beyond_the_table(tmp_path):
    data = ADE20K(WRITERS["ade20k"](tmp_path), "training")
    raw = np.zeros(SIZE, np.uint16)
    raw[0, 1] = 300
    io.write_labels(data.files(0)[1], raw)
    with pytest.raises(ValueError, match=r"holds value 300 at \(row 0, col 1\)"):
        data.load(0)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"num_images": 0}, ValueError, "num_images must be >= 1, got 0"),
    ({"size": (8, 0)}, ValueError, r"size\[1\] \(width\) must be >= 1, got 0"),
    ({"size": (8, 8, 8)}, ValueError, r"size must be an int or a \(height, width\) pair"),
    ({"num_classes": 1}, ValueError, "num_classes must be >= 2, got 1"),
    ({"num_classes": 40}, ValueError, "num_classes must be <= 32, got 40"),
    ({"seed": -1}, ValueError, "seed must be >= 0, got -1"),
    ({"noise": -1.0}, ValueError, "noise must be >= 0"),
    ({"blur": float("nan")}, ValueError, "blur must be finite"),
    ({"max_objects": 0}, ValueError, "max_objects must be >= 1"),
    ({"transforms": 5}, TypeError, "transforms must be callable, got int"),
])
def test_synthetic_bad_arguments(kwargs, error, message):
    with pytest.raises(error, match=message):
        SyntheticShapes(**kwargs)
    with pytest.raises(IndexError, match="index -3 is out of range for 2 samples"):
        SyntheticShapes(num_images=2, size=8)[-3]
