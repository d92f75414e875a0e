"""crfseg split-merge: region and class maps, overlay, options reaching the API, user errors."""

import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crfseg import io
from crfseg.classical import estimate_noise_sigma, gray_level_segment, split_and_merge
from crfseg.classical._evaluation import add_noise, voronoi_levels
from crfseg.cli import main


@pytest.fixture
def scene(tmp_path, rng):
    image, truth = voronoi_levels((48, 61), 8, rng)
    while np.unique(image).size < 4:
        image, truth = voronoi_levels((48, 61), 8, rng)
    noisy = add_noise(image, 8.0, rng)
    Image.fromarray(image).save(tmp_path / "clean.png")
    Image.fromarray(noisy).save(tmp_path / "noisy.png")
    return image, noisy


def test_regions_and_overlay(tmp_path, scene, capsys):
    image, _ = scene
    code = main(["split-merge", "--image", str(tmp_path / "clean.png"), "-o",
                 str(tmp_path / "regions.png"), "--overlay", str(tmp_path / "overlay.png")])
    assert code == 0
    regions = io.read_labels(tmp_path / "regions.png")
    expected = split_and_merge(image)
    np.testing.assert_array_equal(regions, expected)
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"split-merge clean.png: 61x48, predicate range, {expected.max()} "
                           "regions in")
    overlay = np.asarray(Image.open(tmp_path / "overlay.png").convert("RGB"))
    assert overlay.shape == (48, 61, 3)
    red = np.all(overlay == (255, 0, 0), axis=2)
    inner = np.zeros_like(red)
    inner[:, 1:] |= regions[:, 1:] != regions[:, :-1]
    inner[:, :-1] |= regions[:, :-1] != regions[:, 1:]
    inner[1:] |= regions[1:] != regions[:-1]
    inner[:-1] |= regions[:-1] != regions[1:]
    assert red.any() and np.all(red <= inner)  # red only on pixels next to another region
    assert np.all(overlay[~inner] == np.repeat(image[~inner][:, None], 3, axis=1))


def test_options_reach_split_and_merge(tmp_path, scene, capsys):
    _, noisy = scene
    argv = ["split-merge", "--image", str(tmp_path / "noisy.png"), "-o", str(tmp_path / "r.png")]
    assert main(argv + ["--predicate", "stat", "--threshold", "4", "--min-area", "3",
                        "--connectivity", "8"]) == 0
    expected = split_and_merge(noisy, predicate="stat", threshold=4.0, min_area=3,
                               connectivity=8)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"), expected)
    line = capsys.readouterr().out
    assert f"predicate stat, threshold 4, estimated sigma {estimate_noise_sigma(noisy):.2f}" \
        in line
    assert main(argv + ["--predicate", "std", "--threshold", "6", "--min-size", "2"]) == 0
    expected = split_and_merge(noisy, predicate="std", threshold=6.0, min_size=2)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"), expected)
    assert main(argv + ["--predicate", "stat", "--sigma", "3.5"]) == 0
    expected = split_and_merge(noisy, predicate="stat", sigma=3.5)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"), expected)


def test_classes_and_thresholds(tmp_path, scene, capsys):
    image, _ = scene
    base = ["split-merge", "--image", str(tmp_path / "clean.png"), "-o", str(tmp_path / "r.png"),
            "--class-map", str(tmp_path / "c.png")]
    assert main(base + ["--classes", "4"]) == 0
    class_map, regions = gray_level_segment(image, classes=4)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "c.png"), class_map)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"), regions)
    assert "4 classes" in capsys.readouterr().out
    assert main(base + ["--thresholds", "100,150", "--min-area", "20"]) == 0
    class_map, regions = gray_level_segment(image, thresholds=[100, 150], min_area=20)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "c.png"), class_map)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"), regions)
    assert "thresholds 100,150" in capsys.readouterr().out


def test_rgb_image_uses_luminance(tmp_path, rng):
    rgb = rng.integers(0, 256, size=(20, 30, 3), dtype=np.uint8)
    rgb[4:16, 5:25] = (30, 200, 90)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    assert main(["split-merge", "--image", str(tmp_path / "rgb.png"), "-o",
                 str(tmp_path / "r.png"), "--threshold", "20"]) == 0
    gray = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(io.read_labels(tmp_path / "r.png"),
                                  split_and_merge(gray, threshold=20.0))


def test_many_regions_are_written_as_16_bit(tmp_path, rng):
    noise = rng.integers(0, 256, size=(40, 50), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "noise.png")
    assert main(["split-merge", "--image", str(tmp_path / "noise.png"), "-o",
                 str(tmp_path / "r.png")]) == 0
    regions = io.read_labels(tmp_path / "r.png")
    assert regions.max() > 255
    np.testing.assert_array_equal(regions, split_and_merge(noise))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--classes", "3", "--predicate", "stat"], "--predicate cannot be combined with "
                                                    "--classes/--thresholds"),
        (["--thresholds", "9", "--threshold", "2", "--sigma", "1"],
         "--threshold, --sigma cannot be combined"),
        (["--class-map", "c.png"], "--class-map needs --classes or --thresholds"),
        (["--thresholds", "10,x"], "--thresholds must be comma-separated numbers, got '10,x'"),
        (["--thresholds", "50,10"], "thresholds must be strictly increasing"),
        (["--threshold", "-1"], "threshold must be >= 0.0, got -1.0"),
        (["--predicate", "std", "--sigma", "2"], "sigma is only used by predicate='stat'"),
        (["--min-size", "0"], "min_size must be >= 1, got 0"),
        (["--min-area", "-4"], "min_area must be >= 0, got -4"),
        (["--classes", "1"], "classes must be >= 2, got 1"),
        (["--classes", "9"], "classes=9 needs an image with at least 9 distinct gray levels"),
        (["--overlay", "missing/o.png"], "--overlay: folder does not exist: missing"),
    ],
)
def test_user_errors_exit_2_and_write_nothing(tmp_path, scene, capsys, monkeypatch, extra,
                                              message):
    monkeypatch.chdir(tmp_path)
    code = main(["split-merge", "--image", "clean.png", "-o", "r.png", *extra])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("crfseg split-merge: error: ")
    assert message in err and "\n" not in err
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "c.png").exists()


def test_missing_image_and_too_many_regions(tmp_path, capsys, monkeypatch):
    assert main(["split-merge", "--image", str(tmp_path / "none.png"), "-o",
                 str(tmp_path / "r.png")]) == 2
    assert "image file not found" in capsys.readouterr().err
    # a 16-bit ramp: every pixel differs from its neighbours, so each is a region
    ramp = (np.arange(300 * 300).reshape(300, 300) % 65536).astype(np.uint16)
    monkeypatch.setattr("crfseg.io.read_image", lambda path: ramp)
    assert main(["split-merge", "--image", str(tmp_path / "ramp.png"), "-o",
                 str(tmp_path / "r.png")]) == 2
    err = capsys.readouterr().err
    assert "90000 regions do not fit a 16-bit PNG; raise --threshold or --min-area" in err
    assert not (tmp_path / "r.png").exists()


def test_argparse_rejects_bad_connectivity_and_help_runs(tmp_path, capsys):
    assert main(["split-merge", "--image", "a.png", "-o", "b.png", "--connectivity", "6"]) == 2
    assert "invalid choice: 6" in capsys.readouterr().err
    result = subprocess.run([sys.executable, "-m", "crfseg", "split-merge", "--help"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0 and "--predicate" in result.stdout
