"""``crfseg predict``: checkpoint → logits → ``refine``, CRF in the same call, folders, errors."""

import numpy as np
import pytest
import torch

from crfseg import io
from crfseg.cli import main
from crfseg.crf import DenseCRF
from crfseg.models import get_model, predict_logits, save_checkpoint

PALETTE = [[0, 0, 0], [200, 0, 0], [0, 200, 0]]

# Tiny convolutions run fastest on one thread; two threads per pytest worker contend.


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny 3-class U-Net checkpoint with a palette."""
    torch.manual_seed(0)
    model = get_model("unet", 3, base_width=4, depth=2)
    path = tmp_path_factory.mktemp("ckpt") / "unet.pt"
    return save_checkpoint(path, model.eval(), class_names=["bg", "a", "b"], palette=PALETTE)


def _images(folder, count=1, seed=0, shape=(37, 51, 3)):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images = []
    for index in range(count):
        image = rng.integers(0, 256, shape, dtype=np.uint8)
        io.write_image(folder / f"im{index}.png", image)
        images.append(image)
    return images


def _model(checkpoint):
    from crfseg.models import load_checkpoint

    return load_checkpoint(checkpoint)


def test_predict_then_refine_end_to_end(tmp_path, checkpoint, capsys):
    (image,) = _images(tmp_path)
    code = main(["predict", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "im0.png"),
                 "--save-logits", str(tmp_path / "logits.npy"), "-o", str(tmp_path / "cnn.png")])
    assert code == 0
    assert capsys.readouterr().out.startswith("predicted im0.png: 3 classes, 51x37 in ")
    logits = np.load(tmp_path / "logits.npy")
    assert logits.shape == (3, 37, 51) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, predict_logits(_model(checkpoint), image))
    np.testing.assert_array_equal(io.read_labels(tmp_path / "cnn.png"), logits.argmax(axis=0))

    code = main(["refine", "--unary", str(tmp_path / "logits.npy"), "--image",
                 str(tmp_path / "im0.png"), "-o", str(tmp_path / "refined.png"),
                 "--iterations", "3"])
    assert code == 0
    refined = io.read_labels(tmp_path / "refined.png")
    np.testing.assert_array_equal(refined, DenseCRF(n_iter=3).predict(logits, image))

    # --crf dense does the same refinement within predict.
    code = main(["predict", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "im0.png"),
                 "--crf", "dense", "--iterations", "3", "-o", str(tmp_path / "both.png")])
    assert code == 0
    assert "+ dense CRF" in capsys.readouterr().out
    np.testing.assert_array_equal(io.read_labels(tmp_path / "both.png"), refined)


def test_predict_writes_the_checkpoint_palette(tmp_path, checkpoint):
    _images(tmp_path)
    assert main(["predict", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "im0.png"),
                 "-o", str(tmp_path / "out.png")]) == 0
    from PIL import Image

    with Image.open(tmp_path / "out.png") as png:
        assert png.mode == "P"
        assert np.array(png.getpalette()[:9]).reshape(3, 3).tolist() == PALETTE


def test_predict_folder_with_shard_and_tiles(tmp_path, checkpoint, capsys):
    images = _images(tmp_path / "in", count=3)
    code = main(["predict", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "in"),
                 "--save-logits", str(tmp_path / "logits"), "--output-dir", str(tmp_path / "out"),
                 "--shard", "1/2", "--tile", "24", "--overlap", "6"])
    assert code == 0
    assert "predicted 1/1 files" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "logits").iterdir()) == ["im1.npy"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im1.png"]
    expected = predict_logits(_model(checkpoint), images[1], tile=24, overlap=6)
    np.testing.assert_allclose(np.load(tmp_path / "logits" / "im1.npy"), expected, rtol=1e-6,
                               atol=1e-6)


def test_predict_gray_image_with_a_one_channel_model(tmp_path):
    torch.manual_seed(0)
    model = get_model("unet", 2, in_channels=1, base_width=2, depth=1)
    model.normalization = {"mean": (0.5,), "std": (0.5,)}
    ckpt = save_checkpoint(tmp_path / "gray.pt", model.eval())
    gray = np.random.default_rng(0).integers(0, 256, (20, 30), dtype=np.uint8)
    io.write_image(tmp_path / "gray.png", np.repeat(gray[:, :, None], 3, axis=2))
    assert main(["predict", "--checkpoint", str(ckpt), "--image", str(tmp_path / "gray.png"),
                 "--save-logits", str(tmp_path / "l.npy")]) == 0
    np.testing.assert_array_equal(np.load(tmp_path / "l.npy"),
                                  predict_logits(model, gray))
    (colour,) = _images(tmp_path / "c")
    code = main(["predict", "--checkpoint", str(ckpt), "--image", str(tmp_path / "c" / "im0.png"),
                 "--save-logits", str(tmp_path / "c.npy")])
    assert code == 2
    assert not (tmp_path / "c.npy").exists()


def _run(capsys, *argv):
    code = main(["predict", *argv])
    return code, capsys.readouterr().err


def test_predict_user_errors_exit_2(tmp_path, checkpoint, capsys):
    _images(tmp_path)
    image = str(tmp_path / "im0.png")
    out = str(tmp_path / "o.png")
    data = checkpoint.read_bytes()
    (tmp_path / "truncated.pt").write_bytes(data[:2000])
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "bare.pt")
    cases = [
        (["--checkpoint", str(tmp_path / "truncated.pt"), "--image", image, "-o", out],
         "cannot be read: it is truncated"),
        (["--checkpoint", image, "--image", image, "-o", out], "cannot be read"),
        (["--checkpoint", str(tmp_path / "bare.pt"), "--image", image, "-o", out],
         "is not a crfseg model checkpoint"),
        (["--checkpoint", str(tmp_path / "absent.pt"), "--image", image, "-o", out],
         "checkpoint file not found"),
        (["--checkpoint", str(checkpoint), "--image", str(tmp_path / "none.png"), "-o", out],
         "--image not found"),
        (["--checkpoint", str(checkpoint), "--image", image], "nothing to write"),
        (["--checkpoint", str(checkpoint), "--image", image, "-o", out, "--shard", "0/2"],
         "--shard applies to folder mode"),
        (["--checkpoint", str(checkpoint), "--image", image, "-o", out, "--tile", "0"],
         "--tile must be >= 1"),
        (["--checkpoint", str(checkpoint), "--image", image, "-o", out, "--overlap", "3"],
         "--overlap applies to tiled inference"),
        (["--checkpoint", str(checkpoint), "--image", image, "-o", out, "--tile", "8",
          "--overlap", "8"], "overlap must be <= 7"),
        (["--checkpoint", str(checkpoint), "--image", str(tmp_path), "-o", out],
         "-o/--output names one file; in folder mode use --output-dir"),
        (["--checkpoint", str(checkpoint), "--image", image, "-o", out, "--crf", "dense",
          "--iterations", "-1"], "n_iter must be >= 0"),
    ]
    if not torch.cuda.is_available():
        cases.append((["--checkpoint", str(checkpoint), "--image", image, "-o", out,
                       "--device", "cuda"], "no CUDA device is available"))
    for argv, message in cases:
        code, err = _run(capsys, *argv)
        assert code == 2, (argv, err)
        assert message in err, (argv, err)
        assert err.startswith("crfseg predict: error: ")
    assert not (tmp_path / "o.png").exists()


def test_predict_folder_reports_failed_files(tmp_path, checkpoint, capsys):
    _images(tmp_path / "in", count=2)
    (tmp_path / "in" / "broken.png").write_bytes(b"not an image")
    code = main(["predict", "--checkpoint", str(checkpoint), "--image", str(tmp_path / "in"),
                 "--output-dir", str(tmp_path / "out")])
    assert code == 2
    captured = capsys.readouterr()
    assert "predicted 2/3 files" in captured.out
    assert "broken: could not decode image file" in captured.err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["im0.png", "im1.png"]


def test_bad_checkpoint_leaves_no_output_folder(tmp_path, capsys):
    _images(tmp_path / "in")
    (tmp_path / "bad.pt").write_bytes(b"neither zip nor pickle")
    code = main(["predict", "--checkpoint", str(tmp_path / "bad.pt"), "--image",
                 str(tmp_path / "in"), "--output-dir", str(tmp_path / "out")])
    assert code == 2
    assert "cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
