"""The ``crfseg grid`` subcommand: files in, GridCRF's labels out, energy and bound printed."""

import numpy as np
import pytest

from crfseg import io
from crfseg.cli import main
from crfseg.crf import GridCRF, contrast_weights, potts, truncated_linear


def _files(tmp_path, num_labels=3, seed=0):
    rng = np.random.default_rng(seed)
    truth = np.zeros((20, 24), dtype=int)
    truth[:, 8:] = 1
    truth[10:, 16:] = num_labels - 1
    image = np.zeros((20, 24, 3), dtype=np.uint8)
    image[..., 0] = 80 * truth
    unary = (np.arange(num_labels)[:, None, None] != truth).astype(np.float32)
    unary += rng.normal(0, 0.7, unary.shape).astype(np.float32)
    np.save(tmp_path / "u.npy", unary)
    io.write_image(tmp_path / "img.png", image)
    return unary, image


def test_grid_potts_with_image(tmp_path, capsys):
    unary, image = _files(tmp_path)
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "--image", str(tmp_path / "img.png"),
                 "--pairwise", "potts", "--weight", "1.5", "-o", str(tmp_path / "out.png")])
    assert code == 0
    line = capsys.readouterr().out.strip()
    crf = GridCRF(potts(3, 1.5), edge_weights=contrast_weights(image))
    expected = crf.minimize(unary)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "out.png"), expected.labels)
    assert line.startswith("grid u.npy: 3 labels, 24x20, expansion (")
    assert f"energy {expected.energy:.10g}" in line
    assert "lower bound n/a" in line and line.endswith(str(tmp_path / "out.png"))


def test_grid_trws_prints_bound_and_gap(tmp_path, capsys):
    unary, _ = _files(tmp_path, num_labels=4)
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "--pairwise", "linear",
                 "--weight", "0.8", "--truncation", "2", "--connectivity", "8",
                 "--method", "trws", "--max-iter", "60", "--tol", "0",
                 "-o", str(tmp_path / "out.png")])
    assert code == 0
    line = capsys.readouterr().out.strip()
    crf = GridCRF(truncated_linear(4, 0.8, 2), connectivity=8)
    expected = crf.minimize(unary, method="trws", max_iter=60, tol=0.0)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "out.png"), expected.labels)
    assert f"lower bound {expected.lower_bound:.10g}" in line
    assert f"gap {100 * expected.relative_gap:.4f} %" in line
    assert f"trws ({expected.n_iter} iterations" in line


def test_grid_binary_is_exact_and_takes_logits(tmp_path, capsys):
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(2, 10, 12)).astype(np.float32)
    np.save(tmp_path / "logits.npy", logits)
    code = main(["grid", "--unary", str(tmp_path / "logits.npy"), "--input-type", "logits",
                 "--pairwise", "quadratic", "--weight", "1", "-o", str(tmp_path / "out.png")])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert "graphcut (1 iterations, converged)" in line and "gap 0.0000 %" in line


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--pairwise", "potts", "--weight", "1", "--truncation", "2"],
         "--truncation applies to --pairwise linear or quadratic"),
        (["--pairwise", "potts", "--weight", "1", "--beta", "0.1"], "--beta needs --image"),
        (["--pairwise", "quadratic", "--weight", "1", "--method", "expansion"],
         "use method 'swap' or 'trws'"),
        (["--pairwise", "potts", "--weight", "-1"], "weight must be >= 0.0"),
        (["--pairwise", "linear", "--weight", "1", "--truncation", "0"],
         "truncation must be > 0.0"),
        (["--pairwise", "potts", "--weight", "1", "--max-iter", "0"], "max_iter must be >= 1"),
    ],
)
def test_grid_user_errors(tmp_path, capsys, extra, message):
    _files(tmp_path)
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "-o", str(tmp_path / "out.png"),
                 *extra])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()


def test_grid_missing_files(tmp_path, capsys):
    _files(tmp_path)
    code = main(["grid", "--unary", str(tmp_path / "nope.npy"), "--pairwise", "potts",
                 "--weight", "1", "-o", str(tmp_path / "out.png")])
    assert code == 2 and "not found" in capsys.readouterr().err
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "--pairwise", "potts",
                 "--weight", "1", "-o", str(tmp_path / "missing" / "out.png")])
    assert code == 2 and "folder does not exist" in capsys.readouterr().err
    small = np.zeros((10, 10, 3), dtype=np.uint8)
    io.write_image(tmp_path / "small.png", small)
    code = main(["grid", "--unary", str(tmp_path / "u.npy"), "--image", str(tmp_path / "small.png"),
                 "--pairwise", "potts", "--weight", "1", "-o", str(tmp_path / "out.png")])
    assert code == 2
