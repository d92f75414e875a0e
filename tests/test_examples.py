"""Every example trains for two steps and evaluates on a fake folder in its dataset's layout."""

from __future__ import annotations

import json

import pytest
from fake_datasets import WRITERS, run_example

import crfseg.models

CASES = ["camvid", "voc", "cityscapes", "ade20k", "coco_stuff"]




QUICK = ("--max-steps", "2", "--batch-size", "2", "--crop-size", "24", "32",
         "--num-workers", "0", "--no-progress")


@pytest.mark.slow
@pytest.mark.parametrize("name", CASES)
def test_example_trains_and_evaluates_on_a_fake_folder(tmp_path, name, capsys):
    root = WRITERS[name](tmp_path / "data")
    output = tmp_path / "run"
    # The recipe's architecture on the smallest backbone keeps the test quick.
    assert run_example(name, "train", "--data-root", str(root), "--output", str(output),
                       "--backbone", "resnet18", *QUICK) == 0
    assert "stage cnn: steps 0->2" in capsys.readouterr().out
    assert (output / "cnn" / "last.pt").is_file() and (output / "model.pt").is_file()
    resolved = json.loads((output / "config.json").read_text())
    assert resolved["model"]["backbone"] == "resnet18"
    assert resolved["dataset"]["name"] == name
    scores = tmp_path / "scores.json"
    assert run_example(name, "evaluate", "--data-root", str(root), "--output", str(output),
                       "--num-workers", "0", "--no-progress", "--json", str(scores)) == 0
    printed = capsys.readouterr().out
    assert "CNN + DenseCRF" in printed and "mIoU" in printed
    report = json.loads(scores.read_text())
    assert report["num_images"] == (4 if name == "cityscapes" else 2)
    assert set(report["variants"]) == {"cnn", "cnn+densecrf"}
    assert 0 <= report["variants"]["cnn"]["pixel_accuracy"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(crfseg.models, "CRFasRNN"),
                    reason="crfseg.models.CRFasRNN is not in this build")
def test_synthetic_example_both_stages(tmp_path, capsys):
    output = tmp_path / "run"
    small = ("--num-workers", "0", "--no-progress")
    assert run_example("synthetic", "train", "--output", str(output), "--max-steps", "2",
                       "--batch-size", "4", *small) == 0
    assert run_example("synthetic", "train", "--stage", "crfasrnn", "--output", str(output),
                       "--max-steps", "2", "--batch-size", "2", *small) == 0
    assert (output / "crfasrnn" / "last.pt").is_file()
    capsys.readouterr()
    assert run_example("synthetic", "evaluate", "--output", str(output), "--markdown",
                       "--json", str(tmp_path / "s.json"), *small) == 0
    printed = capsys.readouterr().out
    assert "| CNN | CNN + DenseCRF | CNN + CRFasRNN |" in printed
    variants = json.loads((tmp_path / "s.json").read_text())["variants"]
    assert set(variants) == {"cnn", "cnn+densecrf", "end_to_end"}


def test_example_errors_are_one_line_with_exit_code_2(tmp_path, capsys):
    assert run_example("camvid", "train", "--output", str(tmp_path), *QUICK) == 2
    assert "--data-root is required for the camvid example" in capsys.readouterr().err
    assert run_example("voc", "train", "--data-root", str(tmp_path / "none"), *QUICK) == 2
    assert "VOCSegmentation root not found" in capsys.readouterr().err
    assert run_example("ade20k", "evaluate", "--data-root", str(tmp_path),
                       "--output", str(tmp_path / "run")) == 2
    assert "no trained model for stage cnn" in capsys.readouterr().err
    assert run_example("synthetic", "train", "--stage", "crfasrnn", "--output",
                       str(tmp_path / "run"), *QUICK) == 2
    assert "run --stage cnn first" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert run_example("synthetic", "train", "--config", str(tmp_path / "bad.json")) == 2
    assert "is not valid JSON" in capsys.readouterr().err
    (tmp_path / "partial.json").write_text('{"dataset": {}}')
    assert run_example("synthetic", "evaluate", "--config", str(tmp_path / "partial.json")) == 2
    assert "has no 'model' section" in capsys.readouterr().err
    assert run_example("synthetic", "train", "--output", str(tmp_path / "r"), "--model",
                       "nonet", *QUICK) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err


def test_scribbles_example_trains_every_variant_for_two_steps(tmp_path, capsys):
    summary_path = tmp_path / "scribbles.json"
    assert run_example("synthetic", "train_scribbles", "--max-steps", "2", "--num-train", "4",
                       "--num-val", "2", "--num-test", "2", "--size", "32",
                       "--weights", "1e-3", "3e-3", "--output", str(summary_path)) == 0
    printed = capsys.readouterr().out
    assert "| scribbles + dense CRF loss |" in printed and "| full labels |" in printed
    summary = json.loads(summary_path.read_text())
    assert set(summary["test_miou"]) == {"scribbles", "scribbles+dense_crf_loss", "full"}
    assert summary["chosen_weight"] in (1e-3, 3e-3)
    assert 0 < summary["scribbled_fraction"] < 0.2
    assert run_example("synthetic", "train_scribbles", "--weights", "0") == 2
    assert "--weights must be > 0" in capsys.readouterr().err
