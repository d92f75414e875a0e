"""The command line: refine (file and folder mode), evaluate, demo, errors and exit codes."""

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from crfseg import io
from crfseg._demo import coarse_logits, make_scene
from crfseg.cli import main, pair_inputs, parse_shard
from crfseg.crf import DenseCRF
from crfseg.metrics import iou_score


def _scene(folder, stem, seed=0, height=48, width=64, layout="chw"):
    image, target = make_scene(height, width, seed=seed)
    logits = coarse_logits(target, 5, factor=4, seed=seed)
    folder.mkdir(parents=True, exist_ok=True)
    io.write_image(folder / f"{stem}.png", image)
    stored = logits if layout == "chw" else logits.transpose(1, 2, 0)
    np.save(folder / f"{stem}.npy", stored)
    io.write_labels(folder / f"{stem}_gt.png", target)
    return image, logits, target


def test_refine_single_file(tmp_path, capsys):
    image, logits, target = _scene(tmp_path, "a", layout="hwc")
    code = main(["refine", "--unary", str(tmp_path / "a.npy"), "--image", str(tmp_path / "a.png"),
                 "-o", str(tmp_path / "out.png"), "--save-probs", str(tmp_path / "p.npy"),
                 "--overlay", str(tmp_path / "ov.png"), "--gt", str(tmp_path / "a_gt.png"),
                 "--num-classes", "5", "--palette", "voc", "--iterations", "3"])
    assert code == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith("refined a.png: 5 classes, 64x48, 3 iterations")
    assert "mIoU" in line and "->" in line
    # --backend auto, the default: the engine DenseCRF(backend="auto") picks here
    expected = DenseCRF(n_iter=3, backend="auto").refine(logits, image)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)
    labels = io.read_labels(tmp_path / "out.png")
    np.testing.assert_array_equal(labels, expected.argmax(0))
    with Image.open(tmp_path / "out.png") as img:
        assert img.mode == "P"
    before = iou_score(logits.argmax(0), target, 5)
    after = iou_score(labels.astype(np.int64), target, 5)
    assert f"{100 * before:.2f} -> {100 * after:.2f}" in line
    assert io.read_image(tmp_path / "ov.png").shape == image.shape


def test_refine_options_reach_the_crf(tmp_path):
    image, logits, _ = _scene(tmp_path, "a")
    main(["refine", "--unary", str(tmp_path / "a.npy"), "--image", str(tmp_path / "a.png"),
          "--save-probs", str(tmp_path / "p.npy"), "--iterations", "2", "--sxy", "40",
          "--srgb", "20", "--compat", "4", "--gaussian-sxy", "2", "--gaussian-compat", "1"])
    expected = DenseCRF(n_iter=2, bilateral_sxy=40, bilateral_srgb=20, bilateral_compat=4,
                        gaussian_sxy=2, gaussian_compat=1, backend="auto").refine(logits, image)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), expected)


def _folder_dataset(tmp_path, n=4):
    for i in range(n):
        _scene(tmp_path / "scores", f"img{i}", seed=i)
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "scores" / f"img{i}.png").rename(tmp_path / "images" / f"img{i}.png")
        (tmp_path / "gt").mkdir(exist_ok=True)
        (tmp_path / "scores" / f"img{i}_gt.png").rename(tmp_path / "gt" / f"img{i}.png")


def test_refine_folder_mode_with_shards_and_workers(tmp_path, capsys):
    _folder_dataset(tmp_path)
    outputs = set()
    for k in range(2):
        code = main(["refine", "--unary", str(tmp_path / "scores"), "--image",
                     str(tmp_path / "images"), "--output-dir", str(tmp_path / "out"),
                     "--gt", str(tmp_path / "gt"), "--shard", f"{k}/2", "--workers", "2",
                     "--iterations", "2"])
        assert code == 0
        out = capsys.readouterr().out
        assert "refined 2/2 files" in out and "mIoU" in out
        outputs = {p.name for p in (tmp_path / "out").iterdir()}
    assert outputs == {f"img{i}.png" for i in range(4)}


def test_refine_folder_mode_reports_and_skips_failures(tmp_path, capsys):
    _folder_dataset(tmp_path, n=3)
    np.save(tmp_path / "scores" / "img1.npy", np.zeros((5, 7, 7), np.float32))
    code = main(["refine", "--unary", str(tmp_path / "scores"), "--image",
                 str(tmp_path / "images"), "--output-dir", str(tmp_path / "out"),
                 "--iterations", "1"])
    captured = capsys.readouterr()
    assert code == 2
    assert "refined 2/3 files" in captured.out
    assert "1 file(s) failed" in captured.err and "img1:" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["img0.png", "img2.png"]


def test_evaluate_files_folders_and_json(tmp_path, capsys):
    _folder_dataset(tmp_path, n=2)
    pred = tmp_path / "pred"
    pred.mkdir()
    for i in range(2):
        io.write_labels(pred / f"img{i}.png", np.zeros((48, 64), int))
    code = main(["evaluate", "--pred", str(pred), "--gt", str(tmp_path / "gt"),
                 "--num-classes", "5", "--json", str(tmp_path / "m.json"),
                 "--class-names", "bg,disc,box,tri,ring"])
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("2 image(s)") and "disc" in out and "mIoU" in out
    scores = json.loads((tmp_path / "m.json").read_text())
    assert scores["num_images"] == 2 and len(scores["iou"]) == 5
    assert scores["iou"][1] == 0.0  # present in ground truth, never predicted
    code = main(["evaluate", "--pred", str(pred / "img0.png"), "--gt",
                 str(tmp_path / "gt" / "img0.png"), "--num-classes", "5"])
    assert code == 0


def test_evaluate_errors(tmp_path, capsys):
    io.write_labels(tmp_path / "p.png", np.full((4, 4), 7))
    io.write_labels(tmp_path / "g.png", np.zeros((4, 4), int))
    io.write_labels(tmp_path / "small.png", np.zeros((3, 4), int))
    assert main(["evaluate", "--pred", str(tmp_path / "p.png"), "--gt", str(tmp_path / "g.png"),
                 "--num-classes", "5"]) == 2
    assert "p: pred contains label 7" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "small.png"), "--gt",
                 str(tmp_path / "g.png"), "--num-classes", "5"]) == 2
    assert "differ in size" in capsys.readouterr().err
    assert main(["evaluate", "--pred", str(tmp_path / "g.png"), "--gt", str(tmp_path / "g.png"),
                 "--num-classes", "2", "--class-names", "a,b,c"]) == 2
    assert "gives 3 names" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["refine", "--unary", "missing.npy", "--image", "missing.png"], "--unary not found"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "--iterations", "-1"],
     "n_iter must be >= 0"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "--shard", "3/2"],
     "0 <= K < N"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "--shard", "x"],
     "must look like K/N"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "--shard", "0/2"],
     "applies to folder mode"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a_gt.png", "--input-type", "probs"],
     "negative values"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}", "-o", "x.png"],
     "is a file but --image is a folder"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "--gt", "{d}/none.png"],
     "--gt file not found"),
    (["refine", "--unary", "{d}/a.npy", "--image", "{d}/a.png", "-o", "{d}/no/dir/x.png"],
     "output folder does not exist"),
])
def test_refine_user_errors_exit_2_with_one_line(tmp_path, capsys, argv, message):
    _scene(tmp_path, "a")
    code = main([a.format(d=tmp_path) for a in argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_unpaired_folders_are_an_error(tmp_path, capsys):
    _folder_dataset(tmp_path, n=2)
    (tmp_path / "images" / "img1.png").unlink()
    code = main(["refine", "--unary", str(tmp_path / "scores"), "--image",
                 str(tmp_path / "images"), "--output-dir", str(tmp_path / "o")])
    assert code == 2
    assert "appear in only one of" in capsys.readouterr().err


def test_unexpected_errors_exit_1(tmp_path, monkeypatch, capsys):
    _scene(tmp_path, "a")

    def explode(self, *args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(DenseCRF, "refine", explode)
    code = main(["refine", "--unary", str(tmp_path / "a.npy"), "--image", str(tmp_path / "a.png")])
    assert code == 1
    assert "boom" in capsys.readouterr().err


def test_help_and_bad_option(capsys):
    assert main([]) == 2
    assert "refine" in capsys.readouterr().out
    assert main(["refine", "--no-such-option"]) == 2
    assert main(["--version"]) == 0


def test_demo_improves_miou(tmp_path, capsys):
    assert main(["demo", "--output-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out.strip().splitlines()[-1]
    before, after = (float(x) for x in
                     out.split("mIoU ")[1].split(" (")[0].split(" -> "))
    assert after > before + 5
    assert {p.name for p in tmp_path.iterdir()} >= {"panel.png", "image.png", "refined.png",
                                                    "ground_truth.png", "logits.npy"}


def test_helpers():
    assert parse_shard(None) == (0, 1)
    assert parse_shard("2/5") == (2, 5)
    with pytest.raises(ValueError, match="N >= 1"):
        parse_shard("0/0")
    with pytest.raises(FileNotFoundError, match="--x not found"):
        pair_inputs("no-such-path", None, "--x", "--y", (".png",), (".png",))


def test_python_dash_m_and_console_script(tmp_path):
    result = subprocess.run([sys.executable, "-m", "crfseg", "--version"], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0 and result.stdout.startswith("crfseg ")
