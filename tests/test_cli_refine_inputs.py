"""``crfseg refine`` with label maps (gray, palette, colour-coded), binary maps and volumes."""

import re

import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from test_dense_inputs import (
    _annotation_as_labels,
    _photo,
    pydensecrf_example,
    scribble_annotation,
)

from crfseg import io
from crfseg.cli import main
from crfseg.crf import DenseCRF


@pytest.fixture
def photo_and_annotation(tmp_path):
    image = _photo("chelsea", 60, 90)
    anno = scribble_annotation(60, 90)
    io.write_image(tmp_path / "img.png", image)
    Image.fromarray(anno).save(tmp_path / "anno.png")
    return image, anno


def _run(capsys, *args):
    code = main(["refine", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize("backend", ["pydensecrf", "torch"])
def test_pydensecrfs_example_from_the_command_line(tmp_path, capsys, photo_and_annotation,
                                                   backend):
    image, anno = photo_and_annotation
    code, out, _ = _run(capsys, "--labels", tmp_path / "anno.png", "--image", tmp_path / "img.png",
                        "-o", tmp_path / "out.png", "--gt-prob", 0.7, "--unknown", "0,0,0",
                        "--backend", backend)
    assert code == 0 and "3 classes" in out and "rgb labels" in out
    written = np.array(Image.open(tmp_path / "out.png"))
    expected = pydensecrf_example(image, anno, use_2d=True)
    assert written.shape == expected.shape
    agreement = (written == expected).all(-1).mean()
    assert agreement == 1.0 if backend == "pydensecrf" else agreement >= 0.995


def test_gray_and_palette_annotations_keep_their_encoding(tmp_path, capsys, photo_and_annotation):
    image, anno = photo_and_annotation
    classes = _annotation_as_labels(anno)  # 0, 1, 2 and 255 unknown
    gray = np.array([10, 20, 30], np.uint8)[np.minimum(classes, 2)]
    gray[classes == 255] = 255
    Image.fromarray(gray).save(tmp_path / "gray.png")
    code, _, _ = _run(capsys, "--labels", tmp_path / "gray.png", "--image", tmp_path / "img.png",
                      "-o", tmp_path / "gray_out.png", "--unknown", 255, "--gt-prob", 0.7,
                      "--save-probs", tmp_path / "probs.npy")
    assert code == 0
    out = np.array(Image.open(tmp_path / "gray_out.png"))
    expected = DenseCRF().predict(classes, image, "labels", num_classes=3, gt_prob=0.7,
                                  unknown_label=255)
    np.testing.assert_array_equal(out, np.array([10, 20, 30])[expected])
    assert np.load(tmp_path / "probs.npy").shape == (3, 60, 90)

    indices = np.where(classes == 255, 0, classes + 5).astype(np.uint8)
    pil = Image.fromarray(indices, mode="P")
    pil.putpalette([0, 0, 0] * 5 + [200, 0, 0, 0, 200, 0, 0, 0, 200] + [0, 0, 0] * 248)
    pil.save(tmp_path / "voc.png")
    code, _, _ = _run(capsys, "--labels", tmp_path / "voc.png", "--image", tmp_path / "img.png",
                      "-o", tmp_path / "voc_out.png", "--unknown", 0, "--gt-prob", 0.7)
    assert code == 0
    with Image.open(tmp_path / "voc_out.png") as written:
        assert written.mode == "P"
        np.testing.assert_array_equal(np.array(written), expected + 5)


def test_binary_map_from_the_command_line(tmp_path, capsys, photo_and_annotation, rng):
    image, _ = photo_and_annotation
    p = np.clip(np.linspace(0, 1, 90)[None].repeat(60, 0) + rng.normal(0, 0.1, (60, 90)), 0, 1)
    np.save(tmp_path / "mask.npy", p.astype(np.float32))
    code, out, _ = _run(capsys, "--unary", tmp_path / "mask.npy", "--image", tmp_path / "img.png",
                        "-o", tmp_path / "mask.png", "--gt", tmp_path / "mask.png")
    assert code == 2  # the ground truth must exist before anything runs
    code, out, _ = _run(capsys, "--unary", tmp_path / "mask.npy", "--image", tmp_path / "img.png",
                        "-o", tmp_path / "mask.png")
    assert code == 0 and "2 classes" in out
    expected = DenseCRF().predict(p.astype(np.float32), image)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "mask.png"), expected)
    io.write_labels(tmp_path / "gt.png", (p > 0.5).astype(np.uint8))
    code, out, _ = _run(capsys, "--unary", tmp_path / "mask.npy", "--image", tmp_path / "img.png",
                        "--gt", tmp_path / "gt.png", "--num-classes", 2)
    assert code == 0 and "mIoU 100.00 ->" in out


def _volume_files(tmp_path, rng, suffix=".nii.gz"):
    d, h, w = 6, 16, 18
    z, y, x = np.mgrid[0:d, 0:h, 0:w]
    ball = ((z - 3) * 2.5) ** 2 + (y - 8) ** 2 + (x - 9) ** 2 < 30
    intensity = (np.where(ball, 160.0, 60.0) + rng.normal(0, 10, (d, h, w))).astype(np.float32)
    probs = np.stack([np.where(ball, 0.3, 0.7), np.where(ball, 0.7, 0.3)])
    probs = np.clip(probs + rng.normal(0, 0.25, probs.shape), 0.01, None)
    probs = (probs / probs.sum(0)).astype(np.float32)
    affine = np.diag([0.9, 0.8, 2.5, 1.0])
    affine[:3, 3] = (5.0, -3.0, 1.0)
    header = nib.Nifti1Header()
    header["descrip"] = b"phantom"
    nib.save(nib.Nifti1Image(intensity.transpose(2, 1, 0), affine, header),
             str(tmp_path / f"ct{suffix}"))
    nib.save(nib.Nifti1Image(probs.transpose(3, 2, 1, 0), affine),
             str(tmp_path / f"probs{suffix}"))
    return intensity, probs, ball, affine


def test_nifti_volume_from_the_command_line(tmp_path, capsys, rng):
    intensity, probs, ball, affine = _volume_files(tmp_path, rng)
    code, out, _ = _run(capsys, "--unary", tmp_path / "probs.nii.gz", "--image",
                        tmp_path / "ct.nii.gz", "-o", tmp_path / "seg.nii.gz", "--save-probs",
                        tmp_path / "refined.nii.gz", "--sxy", 5, "--srgb", 20,
                        "--gaussian-sxy", 2)
    assert code == 0 and "spacing 2.5,0.8,0.9" in out, out
    seg = nib.load(str(tmp_path / "seg.nii.gz"))
    np.testing.assert_allclose(seg.affine, affine)
    assert seg.header["descrip"].tobytes().startswith(b"phantom")
    labels = np.asanyarray(seg.dataobj).transpose(2, 1, 0)
    expected = DenseCRF(bilateral_sxy=5, bilateral_srgb=20, gaussian_sxy=2).predict(
        probs, intensity, spacing=(2.5, 0.8, 0.9))
    np.testing.assert_array_equal(labels, expected)
    assert (labels == ball).mean() > (probs.argmax(0) == ball).mean()
    refined = nib.load(str(tmp_path / "refined.nii.gz"))
    assert refined.shape == (18, 16, 6, 2)
    # the .npy copy of the same volume, with --spacing, gives the same labels
    np.save(tmp_path / "ct.npy", intensity)
    np.save(tmp_path / "probs.npy", probs)
    code, _, _ = _run(capsys, "--unary", tmp_path / "probs.npy", "--image", tmp_path / "ct.npy",
                      "-o", tmp_path / "seg.npy", "--spacing", "2.5,0.8,0.9", "--sxy", 5,
                      "--srgb", 20, "--gaussian-sxy", 2, "--backend", "torch")
    assert code == 0
    assert (np.load(tmp_path / "seg.npy") == expected).mean() >= 0.995


def test_label_volume_from_the_command_line(tmp_path, capsys, rng):
    intensity, probs, ball, affine = _volume_files(tmp_path, rng)
    votes = np.where(probs.argmax(0) == 1, 4, 1).astype(np.uint8)  # stored values 1 and 4
    votes[:, :2] = 0  # unknown
    nib.save(nib.Nifti1Image(votes.transpose(2, 1, 0), affine), str(tmp_path / "seg.nii.gz"))
    code, out, _ = _run(capsys, "--labels", tmp_path / "seg.nii.gz", "--image",
                        tmp_path / "ct.nii.gz", "-o", tmp_path / "refined.nii.gz", "--unknown", 0,
                        "--gt-prob", 0.6, "--sxy", 5, "--srgb", 20, "--gaussian-sxy", 2)
    assert code == 0 and "from labels" in out
    refined = nib.load(str(tmp_path / "refined.nii.gz"))
    np.testing.assert_allclose(refined.affine, affine)
    written = np.asanyarray(refined.dataobj).transpose(2, 1, 0)
    classes = np.where(votes == 0, -1, (votes == 4).astype(int))
    expected = DenseCRF(bilateral_sxy=5, bilateral_srgb=20, gaussian_sxy=2).predict(
        classes, intensity, "labels", num_classes=2, gt_prob=0.6, unknown_label=-1,
        spacing=(2.5, 0.8, 0.9))
    np.testing.assert_array_equal(written, np.array([1, 4])[expected])
    assert (written == np.where(ball, 4, 1)).mean() > (votes == np.where(ball, 4, 1)).mean()


def test_bad_inputs_exit_2_and_write_nothing(tmp_path, capsys, rng, photo_and_annotation):
    _volume_files(tmp_path, rng, ".nii")
    np.save(tmp_path / "ct.npy", np.zeros((6, 16, 18), np.float32))
    nan = np.zeros((6, 16, 18), np.float32)
    nan[1, 2, 3] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "small.npy", np.full((2, 6, 16, 17), 0.5, np.float32))
    noisy = rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)
    Image.fromarray(noisy).save(tmp_path / "photo_as_labels.png")
    Image.fromarray(np.full((60, 90), 7, np.uint8)).save(tmp_path / "one.png")
    img, anno = tmp_path / "img.png", tmp_path / "anno.png"
    out = tmp_path / "out.nii"
    cases = {
        "more than 256": ["--labels", tmp_path / "photo_as_labels.png", "--image", img,
                          "-o", tmp_path / "o.png"],
        "gt_prob must be < 1": ["--labels", anno, "--image", img, "--gt-prob", 1.5,
                                "-o", tmp_path / "o.png"],
        "gt_prob must be > 0": ["--labels", anno, "--image", img, "--gt-prob", 0,
                                "-o", tmp_path / "o.png"],
        "one class besides": ["--labels", tmp_path / "one.png", "--image", img,
                              "-o", tmp_path / "o.png"],
        "spacing must be three numbers": ["--unary", tmp_path / "probs.nii", "--image",
                                          tmp_path / "ct.npy", "--spacing", "1,1", "-o", out],
        r"spacing\[1\] must be > 0": ["--unary", tmp_path / "probs.nii", "--image",
                                      tmp_path / "ct.npy", "--spacing", "1,0,1", "-o", out],
        "--spacing sz,sy,sx is required": ["--unary", tmp_path / "probs.nii", "--image",
                                           tmp_path / "ct.npy", "-o", out],
        "spatial shape": ["--unary", tmp_path / "small.npy", "--image", tmp_path / "ct.nii",
                          "-o", out],
        "non-finite": ["--unary", tmp_path / "probs.nii", "--image", tmp_path / "nan.npy",
                       "--spacing", "1,1,1", "-o", out],
        "either --unary": ["--image", img, "-o", tmp_path / "o.png"],
        "apply to --labels only": ["--unary", tmp_path / "small.npy", "--image", img,
                                   "--unknown", 0],
        "must name a NIfTI": ["--unary", tmp_path / "probs.nii", "--image", tmp_path / "ct.nii",
                              "-o", tmp_path / "seg.png"],
        "lossy": ["--labels", anno, "--image", img, "-o", tmp_path / "o.jpg"],
        "R,G,B colour": ["--labels", anno, "--image", img, "--unknown", 0,
                         "-o", tmp_path / "o.png"],
        "--gt does not apply": ["--labels", anno, "--image", img, "--gt", anno,
                                "-o", tmp_path / "o.png"],
    }
    for expected, args in cases.items():
        code, _, err = _run(capsys, *args)
        assert code == 2, (expected, err)
        assert len(err.strip().splitlines()) == 1, err
        assert re.search(expected, err), (expected, err)
    assert not out.exists() and not (tmp_path / "o.png").exists()
    assert not (tmp_path / "o.jpg").exists() and not (tmp_path / "seg.png").exists()
