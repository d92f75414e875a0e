"""The CamVid recipe: CPU config, val halves, tuned CRF, CRFasRNN from tuned parameters, the table.

The end-to-end run uses a fake folder in CamVid's layout; the tests marked
``real`` read the SegNet CamVid split from ``../shared/datasets/camvid`` and
skip when it is absent (users' clones do not have it).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fake_datasets import WRITERS, run_example

from crfseg import io
from crfseg.cli import main
from crfseg.crf import DenseCRFParams, tune_dense_crf
from crfseg.training import load_training_state

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
sys.path.insert(0, str(EXAMPLES))
sys.path.insert(0, str(EXAMPLES / "camvid"))

from common import (  # noqa: E402
    TunedDenseCRF,
    adjusted_loss,
    build_crfasrnn,
    build_model,
    crfasrnn_init,
    stage_loss,
    stage_parameters,
)
from split_val import half_indices  # noqa: E402

REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "camvid"
real = pytest.mark.skipif(not (REAL_ROOT / "CamVid" / "val").is_dir(),
                          reason=f"CamVid not found at {REAL_ROOT}")
CPU_CONFIG = str(EXAMPLES / "camvid" / "config_cpu.json")
JOINT_CONFIG = str(EXAMPLES / "camvid" / "config_cpu_joint.json")
SMALL = ("--num-workers", "0", "--no-progress", "--threads", "1")


@pytest.mark.slow
def test_cpu_recipe_end_to_end_on_a_fake_folder(tmp_path, capsys):
    root = WRITERS["camvid"](tmp_path / "data", n=4)
    run = tmp_path / "run"
    assert run_example("camvid", "train", "--config", CPU_CONFIG, "--data-root", str(root),
                       "--output", str(run), "--max-steps", "1", "--batch-size", "2",
                       "--crop-size", "24", "32", *SMALL) == 0
    assert json.loads((run / "config.json").read_text())["model"]["name"] == "enet"
    assert run_example("camvid", "evaluate", "--data-root", str(root), "--output", str(run),
                       "--save-logits", str(tmp_path / "e2e"), "--no-crf", "--no-progress") == 2
    assert "--save-logits writes the end-to-end model's logits" in capsys.readouterr().err
    assert run_example("camvid", "split_val", "--data-root", str(root), "--out",
                       str(tmp_path / "val")) == 0
    tune_dir = tmp_path / "val" / "tune"
    assert sorted(p.name for p in (tune_dir / "images").iterdir()) == [
        "0001TP_006690.png", "0001TP_006720.png"]
    assert sorted(p.name for p in (tmp_path / "val" / "test" / "gt").iterdir()) == [
        "0001TP_006750.png", "0001TP_006780.png"]
    assert run_example("camvid", "split_val", "--data-root", str(root), "--out",
                       str(tmp_path / "alternate"), "--mode", "interleaved") == 0
    assert sorted(p.name for p in (tmp_path / "alternate" / "tune" / "images").iterdir()) == [
        "0001TP_006690.png", "0001TP_006750.png"]
    assert main(["predict", "--checkpoint", str(run / "model.pt"), "--image",
                 str(tune_dir / "images"), "--save-logits", str(tune_dir / "logits")]) == 0
    params = tmp_path / "params.json"
    assert main(["tune", "--unary", str(tune_dir / "logits"), "--image",
                 str(tune_dir / "images"), "--gt", str(tune_dir / "gt"), "--num-classes", "11",
                 "--ignore-index", "11", "--trials", "2", "--backend", "pydensecrf",
                 "--no-progress", "-o", str(params)]) == 0
    DenseCRFParams.read(params)
    per_class = tmp_path / "params_per_class.json"
    assert main(["tune", "--unary", str(tune_dir / "logits"), "--image",
                 str(tune_dir / "images"), "--gt", str(tune_dir / "gt"), "--num-classes", "11",
                 "--ignore-index", "11", "--trials", "1", "--backend", "pydensecrf",
                 "--per-class", "--per-class-kernels", "bilateral", "--per-class-passes", "1",
                 "--class-factors", "0", "--no-progress", "--report",
                 str(tmp_path / "report.json"), "-o", str(per_class)]) == 0
    trials = json.loads((tmp_path / "report.json").read_text())["trials"]
    assert [row["per_class"] for row in trials] == [None, *(f"b[{i}]x0" for i in range(11))]
    # the evaluation's per-class row, from a file whose factors are known
    DenseCRFParams(bilateral_class_factors=[1.0] * 10 + [0.0]).write(per_class)
    start = tmp_path / "start.json"
    DenseCRFParams(n_iter=2, bilateral_sxy=30.0, bilateral_class_factors=[1.0] * 10 + [0.5],
                   class_bias=[0.5] * 10 + [-1.0]).write(start)
    assert run_example("camvid", "train", "--config", CPU_CONFIG, "--stage", "crfasrnn",
                       "--crf-params", str(start), "--data-root", str(root), "--output",
                       str(run), "--max-steps", "1", "--batch-size", "1", *SMALL) == 0
    # the layer as the parameters built it is what evaluate.py rebuilds
    layer = json.loads((run / "config.json").read_text())["crfasrnn"]
    assert (layer["n_iter"], layer["theta_alpha"]) == (2, 30.0)
    assert layer["bilateral_weights"] == [10.0] * 10 + [5.0]
    assert layer["class_bias"] == layer["logit_adjustment"] == [0.5] * 10 + [-1.0]
    # config_cpu.json's stage trains the layer alone, config_cpu_joint.json's the network too
    joint = tmp_path / "joint"
    joint.mkdir()
    for part in ("cnn", "config.json"):
        (shutil.copytree if part == "cnn" else shutil.copy)(run / part, joint / part)
    assert run_example("camvid", "train", "--config", JOINT_CONFIG, "--stage", "crfasrnn",
                       "--crf-params", str(start), "--data-root", str(root), "--output",
                       str(joint), "--max-steps", "1", "--batch-size", "1", *SMALL) == 0
    start_layer = build_crfasrnn(build_model({"name": "enet"}, 11), 11, layer).crf.state_dict()
    cnn_state = load_training_state(run / "cnn" / "last.pt")["model"]
    for folder, trains_cnn in ((run, False), (joint, True)):
        state = load_training_state(folder / "crfasrnn" / "last.pt")["model"]
        moved = [k for k, v in cnn_state.items() if k.endswith("weight")
                 and not torch.equal(v, state[f"cnn.{k}"])]
        assert bool(moved) is trains_cnn
        assert not torch.equal(state["crf.compatibility"], start_layer["compatibility"])
    bias = tmp_path / "bias.json"
    DenseCRFParams(n_iter=1, class_bias=[0.0] * 10 + [1.0]).write(bias)
    bias_only = tmp_path / "bias_only.json"
    DenseCRFParams(crf="none", class_bias=[0.0] * 10 + [1.0]).write(bias_only)
    capsys.readouterr()
    scores = tmp_path / "scores.json"
    assert run_example("camvid", "evaluate", "--data-root", str(root), "--output", str(run),
                       "--crf-params", str(params), "--crf-params", str(per_class),
                       "--crf-params", str(bias_only), "--crf-params", str(bias),
                       "--half", "second", "--save-logits", str(tmp_path / "e2e"), "--panel",
                       str(tmp_path / "panel.jpg"), "--json", str(scores), "--markdown",
                       "--no-progress") == 0
    printed = capsys.readouterr().out
    assert "camvid val (second): 2 images" in printed
    saved = sorted((tmp_path / "e2e").iterdir())
    assert [p.name for p in saved] == ["0001TP_006750.npy", "0001TP_006780.npy"]
    assert np.load(saved[0]).shape[0] == 11 and np.load(saved[0]).dtype == np.float32
    for title in ("CNN + DenseCRF (defaults)", "CNN + DenseCRF (tuned)",
                  "CNN + DenseCRF (tuned, per class)", "CNN + class bias (tuned, no CRF)",
                  "CNN + DenseCRF (tuned, class bias)", "CNN + CRFasRNN (stage crfasrnn)"):
        assert title in printed
    report = json.loads(scores.read_text())
    assert list(report["variants"]) == ["cnn", "cnn+densecrf", "cnn+densecrf_tuned",
                                        "cnn+densecrf_tuned_per_class", "cnn+class_bias",
                                        "cnn+densecrf_tuned_bias", "end_to_end"]
    assert report["crf_params_per_class"]["bilateral_class_factors"][-1] == 0.0
    assert report["crf_params_bias"]["class_bias"][-1] == 1.0
    assert report["class_bias"]["crf"] == "none"
    assert len(report["variants"]["cnn"]["iou"]) == 11
    panel = io.read_image(tmp_path / "panel.jpg")
    assert panel.ndim == 3 and panel.shape[1] > 5 * 16  # six tiles side by side


def test_val_halves_are_fixed_disjoint_and_cover_the_split():
    stems = ["b", "d", "a", "c", "e"]
    even, odd = half_indices(stems, "even"), half_indices(stems, "odd")
    assert [stems[i] for i in even] == ["a", "c", "e"] and [stems[i] for i in odd] == ["b", "d"]
    assert sorted(even + odd) == [0, 1, 2, 3, 4]
    assert [stems[i] for i in half_indices(stems, "all")] == ["a", "b", "c", "d", "e"]
    first, second = half_indices(stems, "first"), half_indices(stems, "second")
    assert [stems[i] for i in first] == ["a", "b", "c"] and [stems[i] for i in second] == ["d", "e"]
    assert sorted(first + second) == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="half must be one of 'all', 'first', 'second', 'even', "
                                         "'odd', got 'left'"):
        half_indices(stems, "left")


def test_crfasrnn_init_scales_the_logits_and_sets_the_kernels(tmp_path):
    torch.manual_seed(0)
    cnn = build_model({"name": "enet"}, 11).eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        before = cnn(x)
    params = DenseCRFParams(gaussian_sxy=2.0, gaussian_compat=1.5, bilateral_sxy=30.0,
                            bilateral_srgb=4.0, bilateral_compat=2.5, unary_scale=1.8)
    params.write(tmp_path / "p.json")
    layer = crfasrnn_init(tmp_path / "p.json", cnn, 11)
    assert layer == {"n_iter": 5, "theta_alpha": 30.0, "theta_beta": 4.0, "theta_gamma": 2.0,
                     "bilateral_weight": 2.5, "spatial_weight": 1.5}
    with torch.no_grad():
        torch.testing.assert_close(cnn(x), 1.8 * before, rtol=1e-5, atol=1e-5)
    DenseCRFParams(crf="none").write(tmp_path / "none.json")
    assert crfasrnn_init(tmp_path / "none.json", cnn, 11) == {}
    with pytest.raises(ValueError, match="no convolution with 5 outputs"):
        crfasrnn_init(tmp_path / "p.json", cnn, 5)


def test_crfasrnn_init_carries_per_class_factors_as_the_layers_weights(tmp_path, rng):
    factors = [0.0, 0.5, 4.0, 1.0, 2.0]
    params = DenseCRFParams(n_iter=3, gaussian_sxy=2.0, gaussian_compat=1.5, bilateral_sxy=9.0,
                            bilateral_srgb=20.0, bilateral_compat=2.5,
                            bilateral_class_factors=factors)
    params.write(tmp_path / "p.json")
    cnn = build_model({"name": "enet"}, 5).eval()
    layer = crfasrnn_init(tmp_path / "p.json", cnn, 5)
    assert layer["bilateral_weights"] == [2.5 * f for f in factors]
    assert "spatial_weights" not in layer
    assert layer["n_iter"] == 3
    model = build_crfasrnn(cnn, 5, {"n_iter": 5, **layer, "max_steps": 10})
    torch.testing.assert_close(model.crf.bilateral_weights,
                               torch.tensor([2.5 * f for f in factors]))
    torch.testing.assert_close(model.crf.spatial_weights, torch.full((5,), 1.5))
    # the layer's penalty w[l'] for l != l' is DenseCRF's reward w[l] for l == l'
    logits = torch.from_numpy(rng.normal(size=(1, 5, 24, 32)).astype(np.float32))
    image = torch.from_numpy(rng.integers(0, 256, (1, 3, 24, 32)).astype(np.float32))
    with torch.no_grad():
        layered = torch.softmax(model.crf(logits, image), 1)
    refined = params.dense_crf(backend="torch").refine(logits, image)
    torch.testing.assert_close(layered, refined, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="per-class values for 5 classes, the dataset has 4"):
        crfasrnn_init(tmp_path / "p.json", build_model({"name": "enet"}, 4), 4)


def test_crfasrnn_init_folds_the_class_bias_and_adjusts_the_loss(tmp_path):
    torch.manual_seed(0)
    cnn = build_model({"name": "enet"}, 4).eval()
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        before = cnn(x)
    bias = (1.0, -0.5, 0.0, 2.0)
    DenseCRFParams(n_iter=2, unary_scale=1.5, class_bias=bias).write(tmp_path / "p.json")
    layer = crfasrnn_init(tmp_path / "p.json", cnn, 4)
    scaled = [1.5 * b for b in bias]
    assert layer["logit_adjustment"] == scaled and layer["class_bias"] == scaled
    assert layer["n_iter"] == 2
    with torch.no_grad():
        torch.testing.assert_close(cnn(x), 1.5 * before, rtol=1e-5, atol=1e-5)
    # before training the model refines s * (logits + b) as the tuned DenseCRF does
    model = build_crfasrnn(cnn, 4, {"n_iter": 5, **layer}).eval()
    assert model.crf.n_iter == 2
    rgb = torch.rand(1, 3, 32, 48) * 255
    params = DenseCRFParams.read(tmp_path / "p.json")
    with torch.no_grad():
        expected = params.dense_crf("torch", "cpu").refine(
            1.5 * (before + torch.tensor(bias)[None, :, None, None]), rgb)
        torch.testing.assert_close(torch.softmax(model(x, rgb), 1), expected, rtol=1e-4,
                                   atol=1e-5)
        torch.testing.assert_close(expected, params.refine(before, rgb, "logits", device="cpu"),
                                   rtol=1e-4, atol=1e-5)
    # a bias with no CRF: the layer's other settings stay the configuration's
    cnn = build_model({"name": "enet"}, 4).eval()
    DenseCRFParams(crf="none", class_bias=bias).write(tmp_path / "bias.json")
    assert crfasrnn_init(tmp_path / "bias.json", cnn, 4) == {"class_bias": list(bias),
                                                             "logit_adjustment": list(bias)}
    with pytest.raises(ValueError, match="per-class values for 4 classes, the dataset has 3"):
        crfasrnn_init(tmp_path / "bias.json", build_model({"name": "enet"}, 3), 3)


def test_stage_loss_is_cross_entropy_lovasz_or_both(rng):
    from crfseg.losses import cross_entropy, lovasz_softmax

    logits = torch.from_numpy(rng.normal(size=(2, 3, 5, 6)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 3, (2, 5, 6)))
    target[1, 0] = 255
    section = {"logit_adjustment": [0.5, -1.0, 2.0]}
    shifted = logits - torch.tensor([0.5, -1.0, 2.0])[None, :, None, None]
    ce = cross_entropy(shifted, target)
    lovasz = lovasz_softmax(logits, target)
    torch.testing.assert_close(stage_loss(None, section, 255)(logits, target), ce)
    torch.testing.assert_close(stage_loss(None, {**section, "loss": "lovasz"}, 255)(
        logits, target), lovasz)
    torch.testing.assert_close(stage_loss(None, {**section, "loss": "cross_entropy+lovasz"},
                                          255)(logits, target), ce + lovasz)
    torch.testing.assert_close(stage_loss(None, {"loss": "cross_entropy+lovasz"}, 255)(
        logits, target), cross_entropy(logits, target) + lovasz)
    assert stage_loss(None, {}, 255) is None
    with pytest.raises(ValueError, match=r"crfasrnn.loss must be one of \['cross_entropy', "
                                         r"'lovasz', 'cross_entropy\+lovasz'\], got 'dice'"):
        stage_loss(None, {"loss": "dice"}, 255)


def test_stage_parameters_set_the_rates_and_freeze_the_network():
    cnn = build_model({"name": "enet"}, 4)
    model = build_crfasrnn(cnn, 4, {"n_iter": 1})
    groups = stage_parameters(model, {"lr": 1e-3, "crf_lr": 1e-2})
    assert [g["lr"] for g in groups] == [1e-2, 1e-3]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in model.crf.parameters()}
    assert len(groups[1]["params"]) == len(list(cnn.parameters()))
    bn = next(m for m in cnn.modules() if isinstance(m, torch.nn.BatchNorm2d))
    groups = stage_parameters(model, {"lr": 1e-3, "cnn_lr": 0, "freeze_bn": True})
    assert len(groups) == 1 and groups[0]["lr"] == 1e-3
    assert not any(p.requires_grad for p in cnn.parameters())
    model.train()
    assert model.crf.training and not bn.training
    before = bn.running_mean.clone()
    model(torch.rand(2, 3, 32, 48) * 255)
    torch.testing.assert_close(bn.running_mean, before, rtol=0, atol=0)
    plain = build_model({"name": "enet"}, 4)
    assert len(stage_parameters(plain, {"lr": 1e-3})[0]["params"]) == len(
        list(plain.parameters()))


def test_adjusted_loss_is_the_loss_of_the_logits_minus_the_adjustment(rng):
    from crfseg.losses import cross_entropy

    logits = torch.from_numpy(rng.normal(size=(2, 3, 5, 6)).astype(np.float32))
    target = torch.from_numpy(rng.integers(0, 3, (2, 5, 6)))
    target[0, 0, 0] = 255
    adjustment = [0.5, -1.0, 2.0]
    loss = adjusted_loss(None, adjustment, 255)(logits, target)
    shifted = logits - torch.tensor(adjustment)[None, :, None, None]
    torch.testing.assert_close(loss, cross_entropy(shifted, target, ignore_index=255))
    assert not torch.allclose(loss, cross_entropy(logits, target, ignore_index=255))

    def doubled(x, t):
        return 2 * cross_entropy(x, t)

    torch.testing.assert_close(adjusted_loss(doubled, adjustment, 255)(logits, target),
                               2 * cross_entropy(shifted, target))
    assert adjusted_loss(doubled, None, 255) is doubled and adjusted_loss(None, None, 255) is None


def test_tuned_dense_crf_predicts_what_the_params_refine(tmp_path, rng):
    params = DenseCRFParams(n_iter=2, bilateral_sxy=10.0, unary_scale=2.0)
    params.write(tmp_path / "p.json")
    scores = rng.normal(size=(3, 12, 16)).astype(np.float32)
    image = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    crf = TunedDenseCRF(tmp_path / "p.json")
    np.testing.assert_array_equal(crf.predict(scores, image, "logits"),
                                  params.refine(scores, image, "logits",
                                                backend="pydensecrf").argmax(0))
    DenseCRFParams(crf="none").write(tmp_path / "none.json")
    none = TunedDenseCRF(tmp_path / "none.json")
    assert none.backend == "torch"  # refines whole batches: no per-image loop needed
    np.testing.assert_array_equal(none.predict(scores, image, "logits"), scores.argmax(0))


def test_evaluate_user_errors_exit_2(tmp_path, capsys):
    root = WRITERS["camvid"](tmp_path / "data")
    assert run_example("camvid", "evaluate", "--data-root", str(root), "--output",
                       str(tmp_path / "absent"), "--no-progress") == 2
    assert "no trained CNN" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text('{"kind": "other"}')
    assert run_example("camvid", "evaluate", "--data-root", str(root), "--output",
                       str(tmp_path / "absent"), "--crf-params", str(tmp_path / "bad.json"),
                       "--no-progress") == 2
    assert "is not a crfseg DenseCRF parameter file" in capsys.readouterr().err
    DenseCRFParams().write(tmp_path / "a.json")
    DenseCRFParams(n_iter=2).write(tmp_path / "b.json")
    DenseCRFParams(bilateral_class_factors=[1.0, 0.0]).write(tmp_path / "two.json")
    for files, match in (
            (["a.json", "b.json"], "would both be the row 'CNN + DenseCRF (tuned)'"),
            (["two.json"], "bilateral_class_factors has 2 factors but there are "
                           "num_classes=11 classes")):
        options = [arg for name in files for arg in ("--crf-params", str(tmp_path / name))]
        assert run_example("camvid", "evaluate", "--data-root", str(root), "--output",
                           str(tmp_path / "absent"), *options, "--no-progress") == 2
        assert match in capsys.readouterr().err


@real
def test_real_val_halves():
    from crfseg.datasets import CamVid

    data = CamVid(REAL_ROOT, split="val")
    stems = [Path(image).stem for image, _ in data.samples]
    even, odd = half_indices(stems, "even"), half_indices(stems, "odd")
    assert (len(data), len(even), len(odd)) == (101, 51, 50)
    assert not set(even) & set(odd)
    first, second = half_indices(stems, "first"), half_indices(stems, "second")
    assert (len(first), len(second)) == (51, 50)
    # the contiguous halves are two stretches of the drive: the last tuning frame comes before
    # every test frame
    assert max(stems[i] for i in first) < min(stems[i] for i in second)


@real
def test_real_images_tuned_crf_cleans_noisy_scores():
    """On real street scenes, a tuned CRF must recover labels from pixel-wise noisy scores."""
    from crfseg.datasets import CamVid

    data = CamVid(REAL_ROOT, split="val")
    gen = np.random.default_rng(0)
    images, labels, scores = [], [], []
    for index in (0, 50):
        image, label = data.load(index)
        target = np.where(label == 255, 0, label).astype(np.int64)
        onehot = np.eye(11, dtype=np.float32)[target].transpose(2, 0, 1)
        scores.append(3 * onehot + gen.normal(0, 1.5, onehot.shape).astype(np.float32))
        images.append(image)
        labels.append(label.astype(np.int64))
    result = tune_dense_crf(scores, images, labels, trials=2, backend="pydensecrf",
                            batch_size=1, progress=False)
    assert result.params.crf == "dense"
    assert result.miou_best > result.miou_no_crf + 0.05


def _half(folder, rng, count=2, shape=(12, 16)):
    """A val half of ``split_val.py``'s layout whose logits under-rate class 2 by 1.5."""
    for name in ("images", "gt", "logits"):
        (folder / name).mkdir(parents=True)
    for index in range(count):
        labels = rng.integers(0, 3, shape)
        logits = np.eye(3)[labels].transpose(2, 0, 1) + rng.normal(0, 0.3, (3, *shape))
        logits[2] -= 1.5
        np.save(folder / "logits" / f"f{index}.npy", logits.astype(np.float32))
        io.write_labels(folder / "gt" / f"f{index}.png", labels.astype(np.uint8))
        io.write_image(folder / "images" / f"f{index}.png",
                       rng.integers(0, 256, (*shape, 3), dtype=np.uint8))


def test_class_bias_control_fits_the_under_rated_class(tmp_path, rng, capsys):
    _half(tmp_path / "tune", rng)
    _half(tmp_path / "test", rng)
    DenseCRFParams(n_iter=1, bilateral_compat=0.5).write(tmp_path / "p.json")
    assert run_example("camvid", "class_bias", "--tune", str(tmp_path / "tune"), "--test",
                       str(tmp_path / "test"), "--num-classes", "3", "--ignore-index", "255",
                       "--crf-params", str(tmp_path / "p.json"), "--json",
                       str(tmp_path / "b.json"), "-o", str(tmp_path / "bias.json")) == 0
    report = json.loads((tmp_path / "b.json").read_text())
    bias = report["bias"]
    assert bias[2] - max(bias[:2]) >= 1.0
    assert DenseCRFParams.read(tmp_path / "bias.json") == DenseCRFParams(crf="none",
                                                                         class_bias=tuple(bias))
    rows = report["rows"]
    assert list(rows) == ["CNN", "CNN + class biases", "CNN + class biases + DenseCRF (p.json)"]
    assert rows["CNN + class biases"]["mean_iou"] > rows["CNN"]["mean_iou"] + 0.1
    assert "scored on 2 images" in capsys.readouterr().out
    assert run_example("camvid", "class_bias", "--tune", str(tmp_path / "absent"), "--test",
                       str(tmp_path / "test")) == 2
    assert "not found" in capsys.readouterr().err
