"""Annotations in any encoding (gray, palette, colour-coded RGB) read as classes, written back."""

import numpy as np
import pytest
from PIL import Image

from crfseg import io

COLOURS = np.array([(0, 0, 0), (255, 0, 0), (0, 128, 0), (20, 30, 200)], np.uint8)


@pytest.fixture
def index_map(rng):
    return rng.integers(0, 4, (12, 15))


def test_colour_coded_annotation_round_trip(tmp_path, index_map):
    Image.fromarray(COLOURS[index_map]).save(tmp_path / "anno.png")
    labels, encoding = io.read_label_map(tmp_path / "anno.png", unknown="0,0,0")
    assert encoding.kind == "rgb" and encoding.num_classes == 3
    assert labels.dtype == np.int64 and (labels[index_map == 0] == -1).all()
    # classes in the order of R + 256 G + 65536 B: red, green, blue
    np.testing.assert_array_equal(encoding.values, COLOURS[[1, 2, 3]])
    np.testing.assert_array_equal(labels[index_map > 0], index_map[index_map > 0] - 1)
    out = io.write_label_map(tmp_path / "out.png", np.where(labels < 0, 0, labels), encoding)
    written = np.array(Image.open(out))
    assert written.shape == (12, 15, 3)
    known = index_map > 0
    np.testing.assert_array_equal(written[known], COLOURS[index_map][known])
    rgba = np.concatenate([COLOURS[index_map], np.full((12, 15, 1), 255, np.uint8)], -1)
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(io.read_label_map(tmp_path / "rgba.png", (0, 0, 0))[0], labels)
    everything, all_classes = io.read_label_map(tmp_path / "anno.png")
    assert all_classes.num_classes == 4 and everything.min() == 0


def test_gray_and_palette_annotations_round_trip(tmp_path, index_map):
    gray = np.array([0, 50, 100, 255], np.uint8)[index_map]
    Image.fromarray(gray).save(tmp_path / "gray.png")
    labels, encoding = io.read_label_map(tmp_path / "gray.png", unknown=255)
    assert encoding.kind == "gray" and list(encoding.values) == [0, 50, 100]
    assert (labels[gray == 255] == -1).all()
    np.testing.assert_array_equal(labels[gray < 255], index_map[gray < 255])
    io.write_label_map(tmp_path / "gray_out.png", np.maximum(labels, 0), encoding)
    back = np.array(Image.open(tmp_path / "gray_out.png"))
    np.testing.assert_array_equal(back[gray < 255], gray[gray < 255])

    palette = np.zeros((256, 3), np.uint8)
    palette[[3, 7, 9, 255]] = [(200, 0, 0), (0, 200, 0), (0, 0, 0), (224, 224, 192)]
    indices = np.array([3, 7, 9, 255], np.uint8)[index_map]
    pil = Image.fromarray(indices, mode="P")
    pil.putpalette(palette.ravel().tolist())
    pil.save(tmp_path / "voc.png")
    by_index, enc = io.read_label_map(tmp_path / "voc.png", unknown=255)
    assert enc.kind == "palette" and list(enc.values) == [3, 7, 9]
    by_colour, _ = io.read_label_map(tmp_path / "voc.png", unknown=(224, 224, 192))
    np.testing.assert_array_equal(by_index, by_colour)
    io.write_label_map(tmp_path / "voc_out.png", np.maximum(by_index, 0), enc)
    with Image.open(tmp_path / "voc_out.png") as out:
        assert out.mode == "P"
        np.testing.assert_array_equal(np.array(out.getpalette()[:768]).reshape(256, 3)[:10],
                                      palette[:10])
        written = np.array(out)
    np.testing.assert_array_equal(written[indices != 255], indices[indices != 255])


def test_parse_unknown():
    assert io.parse_unknown("255") == 255
    assert io.parse_unknown(" 0, 0,0 ") == (0, 0, 0)
    for bad in ("black", "1,2", "-1", "0,0,256"):
        with pytest.raises(ValueError, match="unknown must be a gray value or palette index"):
            io.parse_unknown(bad)


def test_label_map_errors(tmp_path, rng):
    noisy = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "photo.png")
    with pytest.raises(ValueError, match=r"holds \d+ distinct colours, more than 256; is it a "
                                         r"photo or a lossy \(JPEG\) copy"):
        io.read_label_map(tmp_path / "photo.png")
    Image.fromarray(COLOURS[np.zeros((4, 4), int)]).save(tmp_path / "black.png")
    with pytest.raises(ValueError, match="holds no labelled pixel"):
        io.read_label_map(tmp_path / "black.png", unknown="0,0,0")
    with pytest.raises(ValueError, match="is colour-coded .* as an R,G,B colour"):
        io.read_label_map(tmp_path / "black.png", unknown=0)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(ValueError, match="is a gray image; give the unknown label as a gray"):
        io.read_label_map(tmp_path / "gray.png", unknown=(0, 0, 0))
    (tmp_path / "broken.png").write_bytes(b"nope")
    with pytest.raises(ValueError, match="could not decode label file"):
        io.read_label_map(tmp_path / "broken.png")
    _, encoding = io.read_label_map(tmp_path / "gray.png")
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 1\) for this encoding, got 1"):
        io.write_label_map(tmp_path / "out.png", np.ones((4, 4), int), encoding)
    with pytest.raises(TypeError, match="encoding must be a LabelEncoding"):
        io.write_label_map(tmp_path / "out.png", np.zeros((4, 4), int), "rgb")
    assert not (tmp_path / "out.png").exists()
