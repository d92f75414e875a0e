"""crfseg.io: image and label formats, score layouts, atomic writes, errors."""

import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from crfseg import io


@pytest.fixture
def rgb(rng):
    return rng.integers(0, 256, (12, 17, 3), dtype=np.uint8)


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_read_image_lossless_formats(tmp_path, rgb, suffix):
    path = tmp_path / f"img{suffix}"
    Image.fromarray(rgb).save(path)
    got = io.read_image(path)
    assert got.dtype == np.uint8 and got.shape == (12, 17, 3)
    np.testing.assert_array_equal(got, rgb)


def test_read_image_jpeg_is_rgb(tmp_path):
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 250  # red
    Image.fromarray(img).save(tmp_path / "red.jpg", quality=95)
    got = io.read_image(tmp_path / "red.jpg")
    assert got[..., 0].mean() > 240 and got[..., 2].mean() < 10


def test_read_image_gray_alpha_and_16_bit(tmp_path, rgb):
    Image.fromarray(rgb[..., 0]).save(tmp_path / "gray.png")
    gray = io.read_image(tmp_path / "gray.png")
    assert gray.shape == (12, 17, 3)
    np.testing.assert_array_equal(gray[..., 2], rgb[..., 0])
    rgba = np.concatenate([rgb, np.zeros((12, 17, 1), np.uint8)], axis=2)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(io.read_image(tmp_path / "rgba.png"), rgb)
    deep = (rgb.astype(np.uint16) * 257)
    cv2.imwrite(str(tmp_path / "deep.png"), cv2.cvtColor(deep, cv2.COLOR_RGB2BGR))
    np.testing.assert_array_equal(io.read_image(tmp_path / "deep.png"), rgb)


def test_read_image_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="image file not found: .*missing.png"):
        io.read_image(tmp_path / "missing.png")
    (tmp_path / "junk.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match="could not decode image file .*junk.png"):
        io.read_image(tmp_path / "junk.png")
    with pytest.raises(ValueError, match="not a file"):
        io.read_image(tmp_path)
    cv2.imwrite(str(tmp_path / "float.tif"), np.zeros((4, 4), np.float32))
    with pytest.raises(ValueError, match="float32 pixels"):
        io.read_image(tmp_path / "float.tif")


@pytest.mark.parametrize("layout", ["chw", "hwc", "nchw"])
def test_read_scores_layouts(tmp_path, rng, layout):
    chw = rng.normal(size=(4, 6, 9)).astype(np.float32)
    stored = {"chw": chw, "hwc": chw.transpose(1, 2, 0), "nchw": chw[None]}[layout]
    np.save(tmp_path / "s.npy", stored)
    got = io.read_scores(tmp_path / "s.npy", image_shape=(6, 9, 3))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, chw)
    np.testing.assert_array_equal(io.read_scores(tmp_path / "s.npy", layout=layout), chw)


def test_read_scores_without_image_uses_smallest_axis(tmp_path, rng):
    chw = rng.normal(size=(3, 6, 9))
    np.save(tmp_path / "a.npy", chw.transpose(1, 2, 0))
    np.testing.assert_array_equal(io.read_scores(tmp_path / "a.npy"), chw)
    np.save(tmp_path / "b.npy", np.zeros((6, 6, 6)))
    with pytest.raises(ValueError, match="cannot tell the class axis"):
        io.read_scores(tmp_path / "b.npy")


def test_read_scores_ambiguous_and_mismatched(tmp_path):
    np.save(tmp_path / "s.npy", np.zeros((5, 5, 5), np.float32))
    with pytest.raises(ValueError, match="fits both .* pass layout="):
        io.read_scores(tmp_path / "s.npy", image_shape=(5, 5))
    assert io.read_scores(tmp_path / "s.npy", image_shape=(5, 5), layout="hwc").shape == (5, 5, 5)
    with pytest.raises(ValueError, match="matches the image size \\(7, 8\\) neither"):
        io.read_scores(tmp_path / "s.npy", image_shape=(7, 8))
    with pytest.raises(ValueError, match="spatial size"):
        io.read_scores(tmp_path / "s.npy", image_shape=(7, 8), layout="chw")
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"must be \(1, C, H, W\)"):
        io.read_scores(tmp_path / "four.npy")
    with pytest.raises(ValueError, match="needs a 4-D array"):
        io.read_scores(tmp_path / "s.npy", layout="nchw")


def test_read_scores_npz_and_errors(tmp_path):
    a = np.ones((2, 4, 4), np.float32)
    np.savez(tmp_path / "one.npz", logits=a)
    np.testing.assert_array_equal(io.read_scores(tmp_path / "one.npz"), a)
    np.savez(tmp_path / "two.npz", logits=a, probs=a / 2)
    with pytest.raises(ValueError, match=r"arrays \['logits', 'probs'\]; choose one with key"):
        io.read_scores(tmp_path / "two.npz")
    np.testing.assert_array_equal(io.read_scores(tmp_path / "two.npz", key="probs"), a / 2)
    with pytest.raises(ValueError, match="has no array 'x'"):
        io.read_scores(tmp_path / "two.npz", key="x")
    np.save(tmp_path / "s.npy", a)
    with pytest.raises(ValueError, match="key= applies to .npz files only"):
        io.read_scores(tmp_path / "s.npy", key="logits")
    np.save(tmp_path / "int.npy", a.astype(np.int64))
    with pytest.raises(TypeError, match="floating point"):
        io.read_scores(tmp_path / "int.npy")
    (tmp_path / "s.txt").write_text("1")
    with pytest.raises(ValueError, match=".npy or .npz"):
        io.read_scores(tmp_path / "s.txt")
    with pytest.raises(FileNotFoundError, match="scores file not found"):
        io.read_scores(tmp_path / "none.npy")
    (tmp_path / "bad.npy").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="could not read scores file"):
        io.read_scores(tmp_path / "bad.npy")
    with pytest.raises(ValueError, match="layout must be one of"):
        io.read_scores(tmp_path / "s.npy", layout="cwh")
    np.save(tmp_path / "flat.npy", np.zeros(5, np.float32))
    with pytest.raises(ValueError, match="must be"):
        io.read_scores(tmp_path / "flat.npy")


def test_write_labels_gray_16_bit_and_palette(tmp_path, rng):
    labels = rng.integers(0, 21, (10, 11))
    io.write_labels(tmp_path / "a.png", labels)
    with Image.open(tmp_path / "a.png") as img:
        assert img.mode == "L"
    np.testing.assert_array_equal(io.read_labels(tmp_path / "a.png"), labels)
    big = labels * 100
    io.write_labels(tmp_path / "b.png", torch.as_tensor(big))
    got = io.read_labels(tmp_path / "b.png")
    assert got.dtype == np.uint16
    np.testing.assert_array_equal(got, big)
    palette = rng.integers(0, 256, (21, 3))
    io.write_labels(tmp_path / "p.png", labels, palette=palette)
    with Image.open(tmp_path / "p.png") as img:
        assert img.mode == "P"
        assert np.array(img.getpalette()[:63]).reshape(21, 3).tolist() == palette.tolist()
    np.testing.assert_array_equal(io.read_labels(tmp_path / "p.png"), labels)


def test_write_labels_errors(tmp_path):
    with pytest.raises(TypeError, match="labels must be an integer array"):
        io.write_labels(tmp_path / "x.png", np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"labels must be \(H, W\)"):
        io.write_labels(tmp_path / "x.png", np.zeros((2, 2, 2), int))
    with pytest.raises(ValueError, match="non-negative"):
        io.write_labels(tmp_path / "x.png", -np.ones((2, 2), int))
    with pytest.raises(ValueError, match="<= 65535"):
        io.write_labels(tmp_path / "x.png", np.full((2, 2), 70000))
    with pytest.raises(ValueError, match="palette PNG holds labels 0-255"):
        io.write_labels(tmp_path / "x.png", np.full((2, 2), 300), palette=np.zeros((3, 3)))
    with pytest.raises(ValueError, match=r"palette must be \(K, 3\) with 1 <= K <= 256"):
        io.write_labels(tmp_path / "x.png", np.zeros((2, 2), int), palette=np.zeros((3, 4)))
    with pytest.raises(ValueError, match="0-255"):
        io.write_labels(tmp_path / "x.png", np.zeros((2, 2), int), palette=np.full((3, 3), 300))
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        io.write_labels(tmp_path / "nope" / "x.png", np.zeros((2, 2), int))
    assert not list(tmp_path.iterdir())


def test_read_labels_rejects_colour_images(tmp_path, rgb):
    Image.fromarray(rgb).save(tmp_path / "colour.png")
    with pytest.raises(ValueError, match="RGB image; labels must be a palette"):
        io.read_labels(tmp_path / "colour.png")
    (tmp_path / "junk.png").write_bytes(b"junk")
    with pytest.raises(ValueError, match="could not decode label file"):
        io.read_labels(tmp_path / "junk.png")


def test_atomic_write_leaves_no_partial_file(tmp_path, monkeypatch):
    io.write_labels(tmp_path / "out.png", np.zeros((3, 3), int))
    before = (tmp_path / "out.png").read_bytes()

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        io.write_labels(tmp_path / "out.png", np.ones((3, 3), int))
    assert (tmp_path / "out.png").read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_write_scores_json_image(tmp_path, rgb):
    a = np.arange(6, dtype=np.float32).reshape(1, 2, 3)
    io.write_scores(tmp_path / "s.npy", torch.from_numpy(a))
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), a)
    with pytest.raises(ValueError, match="written as .npy"):
        io.write_scores(tmp_path / "s.npz", a)
    io.write_json(tmp_path / "m.json", {"iou": np.array([0.5, np.nan]), "n": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"iou": [0.5, None], "n": 3}
    io.write_bytes(tmp_path / "b.bin", b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        io.write_bytes(tmp_path / "b.bin", "text")
    io.write_image(tmp_path / "i.png", rgb)
    np.testing.assert_array_equal(io.read_image(tmp_path / "i.png"), rgb)
    with pytest.raises(ValueError, match="uint8"):
        io.write_image(tmp_path / "i.png", rgb.astype(np.float32))


def test_colorize_overlay_and_panel(tmp_path, rgb):
    labels = np.zeros((12, 17), int)
    labels[:, 8:] = 1
    labels[0, 0] = 255
    colours = io.colorize(labels)
    assert colours[5, 10].tolist() == [128, 0, 0] and colours[0, 0].tolist() == [0, 0, 0]
    io.write_overlay(tmp_path / "o.png", rgb, labels, alpha=1.0)
    overlay = io.read_image(tmp_path / "o.png")
    assert overlay.shape == rgb.shape
    assert overlay[5, 12].tolist() == [128, 0, 0]
    assert overlay[5, 8].tolist() == [255, 255, 255]  # region boundary drawn in white
    io.write_panel(tmp_path / "p.png", rgb, [labels, labels], titles=["a", "b", "c"])
    panel = io.read_image(tmp_path / "p.png")
    assert panel.shape[1] == 3 * 17 + 2 * 4 and panel.shape[0] > 12
    with pytest.raises(ValueError, match="titles must have 3 entries"):
        io.write_panel(tmp_path / "p.png", rgb, [labels, labels], titles=["a"])
    with pytest.raises(ValueError, match="at least one label map"):
        io.write_panel(tmp_path / "p.png", rgb, [])
    with pytest.raises(ValueError, match="same height and width"):
        io.write_overlay(tmp_path / "o.png", rgb, labels[:5])
    with pytest.raises(ValueError, match="alpha must be <= 1"):
        io.write_overlay(tmp_path / "o.png", rgb, labels, alpha=2)
    with pytest.raises(ValueError, match=r"image must be \(H, W, 3\) uint8"):
        io.write_overlay(tmp_path / "o.png", rgb[..., :2], labels)
