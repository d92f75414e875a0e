"""The CLI package's layout, and the library helpers the CLI calls instead of holding algorithm."""

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from skimage.segmentation import mark_boundaries

from crfseg import io
from crfseg.cli import SUBCOMMANDS, build_parser, main
from crfseg.crf import potts, truncated_linear, truncated_quadratic
from crfseg.crf.dense import scores_to_labels
from crfseg.crf.pairwise import pairwise_by_name


def test_every_subcommand_module_registers_itself():
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    for name in SUBCOMMANDS:
        module = importlib.import_module(f"crfseg.cli.{name}")
        assert callable(module.add_parser) and callable(module.run)
        assert choices[name.replace("_", "-")].get_default("func") is module.run


@pytest.mark.parametrize("kind", ["logits", "probs", "unary", "auto"])
def test_scores_to_labels_matches_argmax_or_argmin(kind):
    rng = np.random.default_rng(0)
    scores = rng.random((4, 5, 6))
    if kind in ("probs", "auto"):
        scores /= scores.sum(axis=0, keepdims=True)
    expected = scores.argmin(axis=0) if kind == "unary" else scores.argmax(axis=0)
    labels = scores_to_labels(scores, kind)
    assert labels.dtype == np.int64
    np.testing.assert_array_equal(labels, expected)
    tensor_labels = scores_to_labels(torch.from_numpy(scores[None]), kind, axis=1)
    assert torch.is_tensor(tensor_labels)
    np.testing.assert_array_equal(tensor_labels[0].numpy(), expected)


@pytest.mark.parametrize("scores, kwargs, error, match", [
    (np.zeros((2, 3, 3), dtype=np.int64), {}, TypeError, "scores"),
    (np.full((2, 3, 3), np.nan), {}, ValueError, "scores"),
    (np.zeros((2, 3, 3)), {"input_type": "energy"}, ValueError, "input_type"),
    (np.zeros((2, 3, 3)), {"axis": 3}, ValueError, "axis must index one of the 3 axes"),
    (-np.ones((2, 3, 3)), {"input_type": "probs"}, ValueError, "negative"),
])
def test_scores_to_labels_errors(scores, kwargs, error, match):
    with pytest.raises(error, match=match):
        scores_to_labels(scores, **kwargs)


def test_labels_fit_png():
    assert io.labels_fit_png(np.array([[0, 65535]], dtype=np.int64))
    assert not io.labels_fit_png(np.array([[0, 65536]], dtype=np.int64))
    assert not io.labels_fit_png(np.array([[-1, 0]], dtype=np.int64))
    assert io.labels_fit_png(np.zeros((0, 0), dtype=np.uint8))
    with pytest.raises(TypeError, match="labels must be an integer array"):
        io.labels_fit_png(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="labels"):
        io.labels_fit_png(np.zeros(4, dtype=np.int64))


def test_write_boundaries_matches_scikit_image(tmp_path):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    labels = np.zeros((20, 30), dtype=np.int64)
    labels[5:15, 8:20] = 3
    io.write_boundaries(tmp_path / "b.png", image, labels, color=(0, 255, 0))
    drawn = mark_boundaries(image, labels, color=(0, 1, 0), mode="inner")
    expected = np.clip(np.rint(255 * drawn), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(io.read_image(tmp_path / "b.png"), expected)
    with pytest.raises(ValueError, match="color must be three integers in 0-255"):
        io.write_boundaries(tmp_path / "c.png", image, labels, color=(0, 300, 0))
    with pytest.raises(ValueError, match="same height and width"):
        io.write_boundaries(tmp_path / "c.png", image, labels[:5])
    assert not (tmp_path / "c.png").exists()


def test_pairwise_by_name_builds_the_named_cost():
    np.testing.assert_array_equal(pairwise_by_name("potts", 3, 0.5).matrix, potts(3, 0.5).matrix)
    np.testing.assert_array_equal(pairwise_by_name("linear", 4, 2.0, 1.0).matrix,
                                  truncated_linear(4, 2.0, 1.0).matrix)
    np.testing.assert_array_equal(pairwise_by_name("quadratic", 4, 1.0).matrix,
                                  truncated_quadratic(4, 1.0).matrix)
    with pytest.raises(ValueError, match="name must be one of 'potts', 'linear', 'quadratic'"):
        pairwise_by_name("cubic", 3, 1.0)
    with pytest.raises(ValueError, match="truncation applies to the linear and quadratic"):
        pairwise_by_name("potts", 3, 1.0, 2.0)
    with pytest.raises(ValueError, match="truncation must be > 0"):
        pairwise_by_name("linear", 3, 1.0, 0.0)


@pytest.mark.parametrize("name, match", [
    ("labels.jpg", r"names a lossy \.jpg file, which would change label values"),
    ("labels.JPEG", r"names a lossy \.jpeg file"),
    ("labels.webp", r"names a lossy \.webp file"),
    ("labels.tif", r"must end in \.png \(labels are written as PNG\), got '\.tif'"),
    ("labels", r"must end in \.png .* got 'no suffix'"),
])
def test_labels_are_never_written_to_another_format(tmp_path, name, match):
    with pytest.raises(ValueError, match=match):
        io.write_labels(tmp_path / name, np.zeros((4, 4), np.uint8))
    assert not list(tmp_path.iterdir())
    io.write_labels(tmp_path / "labels.PNG", np.zeros((4, 4), np.uint8))
    assert io.read_labels(tmp_path / "labels.PNG").shape == (4, 4)


def test_cli_refuses_a_lossy_labels_file_before_any_work(tmp_path, capsys):
    scores = tmp_path / "s.npy"
    np.save(scores, np.zeros((2, 6, 8), np.float32))
    io.write_image(tmp_path / "i.png", np.zeros((6, 8, 3), np.uint8))
    commands = [
        ["refine", "--unary", str(scores), "--image", str(tmp_path / "i.png")],
        ["grid", "--unary", str(scores), "--pairwise", "potts", "--weight", "1"],
        ["split-merge", "--image", str(tmp_path / "i.png")],
    ]
    for command in commands:
        assert main([*command, "-o", str(tmp_path / "out.jpg")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1
        assert "-o/--output" in err and "lossy .jpg" in err
    assert main(["split-merge", "--image", str(tmp_path / "i.png"), "-o",
                 str(tmp_path / "r.png"), "--classes", "2", "--class-map",
                 str(tmp_path / "c.webp")]) == 2
    assert "--class-map" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["i.png", "s.npy"]


def test_a_corrupt_image_gives_one_line_on_stderr(tmp_path):
    import cv2

    ok, encoded = cv2.imencode(".png", np.full((64, 64, 3), 7, np.uint8))
    assert ok
    (tmp_path / "cut.png").write_bytes(encoded.tobytes()[:60])
    result = subprocess.run(
        [sys.executable, "-m", "crfseg", "split-merge", "--image", str(tmp_path / "cut.png"),
         "-o", str(tmp_path / "r.png")], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"crfseg split-merge: error: could not decode image file {tmp_path / 'cut.png'}: "
        "image file is truncated"]


def test_silencing_opencv_restores_its_log_level_after_threads_overlap(tmp_path):
    import threading

    import cv2

    ok, encoded = cv2.imencode(".png", np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "cut.png").write_bytes(encoded.tobytes()[:60])
    logging = cv2.utils.logging
    before = logging.getLogLevel()
    logging.setLogLevel(logging.LOG_LEVEL_WARNING)
    failures = []

    def read_many():
        for _ in range(20):
            try:
                io.read_image(tmp_path / "cut.png")
            except ValueError:
                failures.append(1)

    try:
        threads = [threading.Thread(target=read_many) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert logging.getLogLevel() == logging.LOG_LEVEL_WARNING
    finally:
        logging.setLogLevel(before)
    assert len(failures) == 80


def _torch_threads(_: object) -> int:
    return torch.get_num_threads()


def test_batch_workers_share_the_cores(monkeypatch):
    import os

    from crfseg.cli._batch import run_batch, share_cores

    monkeypatch.setattr("os.cpu_count", lambda: 8)
    share_cores(2)
    assert torch.get_num_threads() == 4
    share_cores(16)
    assert torch.get_num_threads() == 1
    monkeypatch.undo()
    report = run_batch(_torch_threads, [0, 1, 2], ["a", "b", "c"], workers=2, progress=False)
    assert not report.failures
    assert report.results == [max(1, (os.cpu_count() or 1) // 2)] * 3
    assert torch.get_num_threads() == 1


_FORKED_OPENMP = """
import torch
from crfseg.cli._batch import run_batch
from tests.test_cli_layout import _parallel_sum

torch.set_num_threads(2)
print(_parallel_sum(0))  # the parent's OpenMP workers run before the batch starts
report = run_batch(_parallel_sum, [0, 1], ["a", "b"], workers=2, progress=False)
assert not report.failures, report.failures
print(report.results)
"""


def _parallel_sum(_: object) -> float:
    torch.set_num_threads(2)
    return float(torch.ones(4_000_000).exp().sum())


def test_batch_workers_start_clean_after_the_parent_used_openmp():
    # a worker forked from such a parent hung in its first parallel step
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", _FORKED_OPENMP], cwd=root, timeout=300,
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["[10873124.0,", "10873124.0]"]
