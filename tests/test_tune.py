"""DenseCRF parameter search: ``tune_dense_crf``, ``DenseCRFParams`` files, ``crfseg tune``."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from crfseg import io
from crfseg.cli import main
from crfseg.crf import DenseCRF, DenseCRFParams, tune_dense_crf
from crfseg.metrics import confusion_matrix, mean_iou


def _scenes(count=3, shape=(18, 24), noise=1.2, seed=0):
    """Images whose class boundaries are colour edges, and noisy logits of the true labels."""
    rng = np.random.default_rng(seed)
    h, w = shape
    images, labels, logits = [], [], []
    for index in range(count):
        label = np.zeros(shape, dtype=np.int64)
        label[:, w // 3 + index:] = 1
        label[h // 2:, 2 * w // 3:] = 2
        colours = np.array([[30, 30, 30], [200, 60, 60], [60, 60, 200]])
        image = np.clip(colours[label] + rng.normal(0, 6, (h, w, 3)), 0, 255).astype(np.uint8)
        onehot = np.eye(3)[label].transpose(2, 0, 1)
        logits.append((2.0 * onehot + rng.normal(0, noise, (3, h, w))).astype(np.float32))
        images.append(image)
        labels.append(label)
    return logits, images, labels


def _miou(predictions, labels, num_classes=3):
    matrix = sum(confusion_matrix(p, t, num_classes) for p, t in zip(predictions, labels))
    return mean_iou(matrix)


def test_tune_beats_no_crf_and_reports_every_trial():
    logits, images, labels = _scenes()
    result = tune_dense_crf(logits, images, labels, trials=6, seed=1, progress=False)
    assert len(result.trials) == 6
    assert [row["trial"] for row in result.trials] == list(range(6))
    assert result.miou_no_crf == pytest.approx(_miou([s.argmax(0) for s in logits], labels))
    # trial 0 is DenseCRF's defaults, scored by the library's own DenseCRF
    crf = DenseCRF(backend="torch", device="cpu")
    defaults = _miou([crf.predict(s, im) for s, im in zip(logits, images)], labels)
    assert result.miou_defaults == pytest.approx(defaults, abs=1e-9)
    assert result.trials[0]["bilateral_sxy"] == 80.0 and result.trials[0]["n_iter"] == 5
    assert result.params.crf == "dense"
    assert result.miou_best == max(row["miou"] for row in result.trials)
    assert result.miou_best > result.miou_no_crf
    # the best parameters give the reported score again
    best = _miou([result.params.refine(s, im).argmax(0) for s, im in zip(logits, images)], labels)
    assert best == pytest.approx(result.miou_best, abs=1e-9)
    table = result.table(top=3)
    assert len(table.splitlines()) == 1 + 3 + 3 and "mIoU no CRF" in table


def test_tune_recommends_no_crf_when_nothing_beats_the_scores():
    logits, images, labels = _scenes(noise=0.0)  # argmax already perfect
    result = tune_dense_crf(logits, images, labels, trials=3, progress=False)
    assert result.miou_no_crf == 1.0
    assert result.params == DenseCRFParams(crf="none")
    assert result.miou_best == result.miou_no_crf
    assert "no trial beat the scores alone" in result.table()


def test_tune_is_repeatable_and_batching_does_not_change_scores():
    logits, images, labels = _scenes(count=4)
    one = tune_dense_crf(logits, images, labels, trials=4, seed=3, batch_size=1, progress=False)
    four = tune_dense_crf(np.stack(logits), np.stack(images), np.stack(labels), trials=4, seed=3,
                          batch_size=4, progress=False)
    for a, b in zip(one.trials, four.trials):
        assert a["bilateral_srgb"] == b["bilateral_srgb"]
        assert a["miou"] == pytest.approx(b["miou"], abs=1e-6)


def test_tune_stops_starting_trials_after_the_time_budget():
    logits, images, labels = _scenes(count=1)
    result = tune_dense_crf(logits, images, labels, trials=50, time_budget=1e-9,
                            progress=False)
    assert len(result.trials) == 1  # only the defaults
    with pytest.raises(ValueError, match="time_budget"):
        tune_dense_crf(logits, images, labels, time_budget=0, progress=False)


def test_tune_mixes_image_sizes_and_seeds_initial_candidates():
    small = _scenes(count=2, shape=(12, 16))
    large = _scenes(count=1, shape=(20, 14), seed=5)
    logits, images, labels = (a + b for a, b in zip(small, large))
    seed = DenseCRFParams(n_iter=2, bilateral_sxy=10, bilateral_srgb=5, bilateral_compat=4)
    result = tune_dense_crf(logits, images, labels, trials=2, initial=[seed], progress=False)
    assert result.trials[1]["bilateral_sxy"] == 10 and result.trials[1]["n_iter"] == 2


def test_tune_agrees_with_pydensecrf_backend():
    logits, images, labels = _scenes(count=2)
    torch_result = tune_dense_crf(logits, images, labels, trials=1, progress=False)
    peer = tune_dense_crf(logits, images, labels, trials=1, backend="pydensecrf", batch_size=1,
                          progress=False)
    assert peer.miou_defaults == pytest.approx(torch_result.miou_defaults, abs=0.02)


def test_unary_scale_is_a_temperature_on_logits():
    logits, images, _ = _scenes(count=1)
    params = DenseCRFParams(n_iter=3, unary_scale=2.5)
    expected = DenseCRF(n_iter=3, backend="torch", device="cpu").refine(2.5 * logits[0],
                                                                          images[0])
    np.testing.assert_allclose(params.refine(logits[0], images[0], device="cpu"), expected,
                               atol=1e-5)
    none = DenseCRFParams(crf="none", unary_scale=2.0).refine(logits[0], images[0])
    reference = torch.softmax(torch.from_numpy(2.0 * logits[0]), 0).numpy()
    np.testing.assert_allclose(none, reference, atol=1e-6)
    batch = DenseCRFParams(crf="none").refine(torch.from_numpy(np.stack(logits)), None)
    assert batch.shape == (1, 3, 18, 24)
    np.testing.assert_allclose(batch.sum(1).numpy(), 1.0, atol=1e-6)


def test_params_file_round_trip(tmp_path):
    params = DenseCRFParams(n_iter=3, bilateral_sxy=20.5, unary_scale=1.75)
    path = params.write(tmp_path / "params.json")
    data = json.loads(path.read_text())
    assert data["kind"] == "crfseg.dense_crf_params" and data["version"] == 1
    assert DenseCRFParams.read(path) == params


@pytest.mark.parametrize("content, match", [
    ("not json", "is not valid JSON"),
    ('{"kind": "something.else", "version": 1}', "is not a crfseg DenseCRF parameter file"),
    ("[1, 2]", "is not a crfseg DenseCRF parameter file"),
    ('{"kind": "crfseg.dense_crf_params", "version": 7}', "has version 7"),
])
def test_read_crf_params_rejects_foreign_files(tmp_path, content, match):
    path = tmp_path / "p.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        io.read_crf_params(path)


def test_read_crf_params_rejects_unknown_and_missing_keys(tmp_path):
    data = {"kind": "crfseg.dense_crf_params", "version": 1, **DenseCRFParams().to_dict()}
    (tmp_path / "extra.json").write_text(json.dumps({**data, "theta": 3}))
    with pytest.raises(ValueError, match=r"unknown keys \['theta'\]"):
        io.read_crf_params(tmp_path / "extra.json")
    del data["n_iter"]
    (tmp_path / "missing.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"lacks the keys \['n_iter'\]"):
        io.read_crf_params(tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="CRF parameter file not found"):
        io.read_crf_params(tmp_path / "absent.json")
    with pytest.raises(TypeError, match="params must be a dict"):
        io.write_crf_params(tmp_path / "x.json", [1])
    with pytest.raises(ValueError, match=r"params lacks the keys"):
        io.write_crf_params(tmp_path / "x.json", {"crf": "dense"})


@pytest.mark.parametrize("kwargs, error, match", [
    ({"crf": "grid"}, ValueError, "crf"),
    ({"n_iter": -1}, ValueError, "n_iter"),
    ({"bilateral_srgb": 0}, ValueError, "bilateral_srgb"),
    ({"unary_scale": -2.0}, ValueError, "unary_scale"),
    ({"gaussian_compat": -1.0}, ValueError, "gaussian_compat"),
    ({"bilateral_sxy": "wide"}, TypeError, "bilateral_sxy"),
])
def test_params_reject_bad_values(kwargs, error, match):
    with pytest.raises(error, match=match):
        DenseCRFParams(**kwargs)


def test_params_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match=r"unknown DenseCRF parameters \['theta'\]"):
        DenseCRFParams.from_dict({"theta": 1.0})
    with pytest.raises(TypeError, match="data must be a dict"):
        DenseCRFParams.from_dict([("n_iter", 2)])


def test_tune_errors():
    logits, images, labels = _scenes(count=2)
    bad = [labels[0], np.full_like(labels[1], 7)]
    with pytest.raises(ValueError, match=r"labels\[1\] holds label 7, outside 0..2 and not "
                                         r"ignore_index=255"):
        tune_dense_crf(logits, images, bad, trials=1, progress=False)
    ignored = [labels[0], np.full_like(labels[1], 255)]
    assert tune_dense_crf(logits, images, ignored, trials=1, progress=False).trials
    with pytest.raises(ValueError, match="must hold as many items, got 2, 1 and 2"):
        tune_dense_crf(logits, images[:1], labels, trials=1, progress=False)
    with pytest.raises(ValueError, match="scores is empty"):
        tune_dense_crf([], [], [], progress=False)
    with pytest.raises(TypeError, match="scores must be a list of arrays"):
        tune_dense_crf(3.0, images, labels, progress=False)
    with pytest.raises(ValueError, match=r"scores\[0\] must be \(C, H, W\)"):
        tune_dense_crf([logits[0][0]], images[:1], labels[:1], progress=False)
    with pytest.raises(ValueError, match=r"scores\[0\] has 3 classes, expected num_classes=4"):
        tune_dense_crf(logits, images, labels, num_classes=4, progress=False)
    with pytest.raises(ValueError, match=r"labels\[0\] has shape \(18, 23\)"):
        tune_dense_crf(logits, images, [labels[0][:, :-1], labels[1]], progress=False)
    with pytest.raises(ValueError, match=r"images\[1\] has shape \(18, 20, 3\)"):
        tune_dense_crf(logits, [images[0], images[1][:, :20]], labels, progress=False)
    with pytest.raises(ValueError, match=r"images\[0\] has shape \(18, 24\), expected \(H, W, 3\)"):
        tune_dense_crf(logits, [images[0][..., 0], images[1]], labels, progress=False)
    with pytest.raises(TypeError, match=r"labels\[0\]"):
        tune_dense_crf(logits, images, [labels[0].astype(float), labels[1]], progress=False)
    with pytest.raises(ValueError, match="trials"):
        tune_dense_crf(logits, images, labels, trials=0, progress=False)
    with pytest.raises(ValueError, match="batch_size=1"):
        tune_dense_crf(logits, images, labels, backend="pydensecrf", progress=False)
    with pytest.raises(TypeError, match=r"initial\[0\] must be a DenseCRFParams"):
        tune_dense_crf(logits, images, labels, initial=[{"n_iter": 2}], progress=False)


# ---------------------------------------------------------------- command line

def _folders(tmp_path, count=3, noise=1.2, data=None):
    """Scores, images and ground truth of ``data`` (default: ``_scenes``) in three folders."""
    logits, images, labels = data if data is not None else _scenes(count=count, noise=noise)
    for folder in ("scores", "images", "gt"):
        (tmp_path / folder).mkdir()
    for index, (score, image, label) in enumerate(zip(logits, images, labels)):
        np.save(tmp_path / "scores" / f"f{index}.npy", score)
        io.write_image(tmp_path / "images" / f"f{index}.png", image)
        io.write_labels(tmp_path / "gt" / f"f{index}.png", label)
    return logits, images, labels


def _check_refine_applies(tmp_path, params, logits, images, capsys):
    """``crfseg refine --params`` writes the labels that ``params.refine`` gives."""
    code = main(["refine", "--unary", str(tmp_path / "scores"), "--image",
                 str(tmp_path / "images"), "--output-dir", str(tmp_path / "out"), "--params",
                 str(tmp_path / "params.json"), "--backend", "torch", "--device", "cpu"])
    assert code == 0, capsys.readouterr().err
    for index, (score, image) in enumerate(zip(logits, images)):
        np.testing.assert_array_equal(io.read_labels(tmp_path / "out" / f"f{index}.png"),
                                      params.refine(score, image, device="cpu").argmax(0))


def _tune_args(tmp_path, *extra):
    return ["tune", "--unary", str(tmp_path / "scores"), "--image", str(tmp_path / "images"),
            "--gt", str(tmp_path / "gt"), "--num-classes", "3", "--no-progress",
            "-o", str(tmp_path / "params.json"), *extra]


def test_cli_tune_then_refine_with_params(tmp_path, capsys):
    logits, images, labels = _folders(tmp_path)
    code = main(_tune_args(tmp_path, "--trials", "4", "--seed", "2", "--report",
                           str(tmp_path / "report.json")))
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("tuned on 3 images, 4 trials in ")
    assert "mIoU no CRF" in out and "mIoU defaults" in out and "best: n_iter=" in out
    params = DenseCRFParams.read(tmp_path / "params.json")
    report = json.loads((tmp_path / "report.json").read_text())
    assert len(report["trials"]) == 4 and report["params"] == params.to_dict()
    expected = tune_dense_crf(logits, images, labels, trials=4, seed=2, progress=False)
    assert params == expected.params

    _check_refine_applies(tmp_path, params, logits, images, capsys)


def test_cli_tune_scores_initial_parameter_files_after_the_defaults(tmp_path, capsys):
    _folders(tmp_path, count=2)
    DenseCRFParams(n_iter=2, bilateral_sxy=7.5).write(tmp_path / "seed.json")
    DenseCRFParams(crf="none").write(tmp_path / "none.json")
    code = main(_tune_args(tmp_path, "--trials", "2", "--initial", str(tmp_path / "seed.json"),
                           "--initial", str(tmp_path / "none.json"), "--report",
                           str(tmp_path / "r.json")))
    assert code == 0, capsys.readouterr().err
    trials = json.loads((tmp_path / "r.json").read_text())["trials"]
    assert trials[1]["bilateral_sxy"] == 7.5 and trials[1]["n_iter"] == 2
    (tmp_path / "bad.json").write_text("{}")
    assert main(_tune_args(tmp_path, "--initial", str(tmp_path / "bad.json"))) == 2
    assert "is not a crfseg DenseCRF parameter file" in capsys.readouterr().err


def test_cli_refine_with_no_crf_params_keeps_the_argmax(tmp_path, capsys):
    logits, images, _ = _folders(tmp_path, count=1)
    DenseCRFParams(crf="none").write(tmp_path / "none.json")
    code = main(["refine", "--unary", str(tmp_path / "scores" / "f0.npy"), "--image",
                 str(tmp_path / "images" / "f0.png"), "-o", str(tmp_path / "o.png"),
                 "--params", str(tmp_path / "none.json")])
    assert code == 0, capsys.readouterr().err
    np.testing.assert_array_equal(io.read_labels(tmp_path / "o.png"), logits[0].argmax(0))


def test_cli_tune_user_errors_exit_2(tmp_path, capsys):
    _folders(tmp_path, count=2)
    (tmp_path / "gt" / "f1.png").rename(tmp_path / "gt" / "other.png")
    assert main(_tune_args(tmp_path)) == 2
    err = capsys.readouterr().err
    assert err.startswith("crfseg tune: error: 2 file stem(s) appear in only one of")
    assert len(err.strip().splitlines()) == 1
    (tmp_path / "gt" / "other.png").unlink()
    io.write_labels(tmp_path / "gt" / "f1.png", np.full((18, 24), 5, dtype=np.uint8))
    assert main(_tune_args(tmp_path)) == 2
    assert "holds label 5 >= --num-classes 3" in capsys.readouterr().err
    assert main(_tune_args(tmp_path, "--trials", "0")) == 2
    assert "--trials must be >= 1, got 0" in capsys.readouterr().err
    assert not (tmp_path / "params.json").exists()


def test_cli_refine_rejects_foreign_params_files(tmp_path, capsys):
    _folders(tmp_path, count=1)
    (tmp_path / "foreign.json").write_text('{"sxy": 3}')
    (tmp_path / "unknown.json").write_text(json.dumps(
        {"kind": "crfseg.dense_crf_params", "version": 1, **DenseCRFParams().to_dict(),
         "theta": 2}))
    for name, match in (("foreign.json", "is not a crfseg DenseCRF parameter file"),
                        ("unknown.json", "unknown keys ['theta']")):
        code = main(["refine", "--unary", str(tmp_path / "scores"), "--image",
                     str(tmp_path / "images"), "--output-dir", str(tmp_path / "out"),
                     "--params", str(tmp_path / name)])
        err = capsys.readouterr().err
        assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_cli_predict_applies_params(tmp_path, capsys):
    from crfseg.models import get_model, predict_logits, save_checkpoint

    torch.manual_seed(0)
    model = get_model("unet", 3, base_width=4, depth=2).eval()
    checkpoint = save_checkpoint(tmp_path / "unet.pt", model)
    _, images, _ = _folders(tmp_path, count=1)
    params = DenseCRFParams(n_iter=2, bilateral_sxy=15.0, bilateral_srgb=6.0, unary_scale=3.0)
    params.write(tmp_path / "p.json")
    args = ["predict", "--checkpoint", str(checkpoint), "--image",
            str(tmp_path / "images" / "f0.png"), "-o", str(tmp_path / "o.png"), "--params",
            str(tmp_path / "p.json")]
    assert main(args) == 2
    assert "--params applies to the dense CRF: give --crf dense" in capsys.readouterr().err
    assert main([*args, "--crf", "dense"]) == 0, capsys.readouterr().err
    logits = predict_logits(model, images[0])
    expected = params.refine(logits, images[0], "logits", backend="pydensecrf").argmax(0)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "o.png"), expected)


# ---------------------------------------------------------------- per-class factors

def _thin_lines(count=2, shape=(24, 32), seed=0):
    """A noisy dark region (class 0) beside a clean bright one (1) holding thin lines (2).

    The lines have the bright region's colour, so the smoothing that cleans
    class 0 also erases them under one Potts weight; weighting class 0 alone
    does both jobs.
    """
    rng = np.random.default_rng(seed)
    h, w = shape
    images, labels, logits = [], [], []
    for index in range(count):
        label = np.ones(shape, dtype=np.int64)
        label[:, :w // 2] = 0
        label[3:-3, w // 2 + 4 + index::6] = 2
        colours = np.array([[40, 40, 40], [200, 200, 200], [200, 200, 200]])
        image = np.clip(colours[label] + rng.normal(0, 4, (h, w, 3)), 0, 255).astype(np.uint8)
        logit = np.eye(3)[label].transpose(2, 0, 1)
        logit[:2] += rng.normal(0, 1.5, (2, h, w)) * (label == 0)
        logits.append(logit.astype(np.float32))
        images.append(image)
        labels.append(label)
    return logits, images, labels


THIN_LINES_CRF = DenseCRFParams(n_iter=1, gaussian_compat=0.0, bilateral_sxy=10.0,
                                bilateral_srgb=10.0, bilateral_compat=2.0)


def test_class_factors_beat_every_scalar_weight_on_thin_lines():
    logits, images, labels = _thin_lines()

    def score(params):
        return _miou([params.refine(s, im, device="cpu").argmax(0)
                      for s, im in zip(logits, images)], labels)

    scalar = max(score(replace(THIN_LINES_CRF, bilateral_compat=w))
                 for w in (0.5, 1.0, 2.0, 4.0, 8.0))
    per_class = score(replace(THIN_LINES_CRF, bilateral_class_factors=(2.0, 0.0, 0.0)))
    assert per_class > scalar + 0.15


def test_tune_per_class_stage_fits_factors_that_raise_the_miou():
    logits, images, labels = _thin_lines()
    result = tune_dense_crf(logits, images, labels, trials=2, initial=[THIN_LINES_CRF],
                            per_class=True, class_factors=(0.0, 1.0), per_class_passes=1,
                            per_class_kernels=("bilateral",), progress=False)
    # defaults, the initial setting, then one trial per class (the factor 0)
    assert len(result.trials) == 2 + 3
    assert [row["per_class"] for row in result.trials] == [None, None, "b[0]x0", "b[1]x0",
                                                           "b[2]x0"]
    assert result.miou_scalar == max(row["miou"] for row in result.trials[:2])
    assert result.miou_best > result.miou_scalar + 0.05
    assert result.params.bilateral_class_factors[0] == 1.0
    assert 0.0 in result.params.bilateral_class_factors[1:]
    assert result.params.gaussian_class_factors is None
    # the fitted parameters give the reported score again
    best = _miou([result.params.refine(s, im).argmax(0) for s, im in zip(logits, images)],
                 labels)
    assert best == pytest.approx(result.miou_best, abs=1e-9)
    table = result.table()
    assert "class" in table.splitlines()[0] and "b[1]x0" in table
    assert "mIoU scalar" in table and result.to_dict()["miou_scalar"] == result.miou_scalar


def test_tune_per_class_stage_respects_the_time_budget_and_passes():
    logits, images, labels = _thin_lines(count=1)
    result = tune_dense_crf(logits, images, labels, trials=1, per_class=True,
                            time_budget=1e-9, progress=False)
    assert len(result.trials) == 1 and result.miou_scalar == result.trials[0]["miou"]
    kwargs = dict(trials=2, initial=[THIN_LINES_CRF], per_class=True, class_factors=(1.0, 0.0),
                  progress=False)
    # a pass tries, for each kernel and class, the one factor that is not the current one
    one = tune_dense_crf(logits, images, labels, per_class_passes=1, **kwargs)
    assert [row["per_class"] is not None for row in one.trials] == [False] * 2 + [True] * 6
    two = tune_dense_crf(logits, images, labels, per_class_passes=2, **kwargs)
    assert two.trials[:8] == [{**row, "seconds": new["seconds"]}
                              for row, new in zip(one.trials, two.trials)]
    assert len(two.trials) == 2 + 2 * 6 and two.miou_best >= one.miou_best
    # a pass that changes nothing ends the search: nothing beats a perfect argmax
    logits, images, labels = _scenes(noise=0.0)
    perfect = tune_dense_crf(logits, images, labels, per_class_passes=3, **kwargs)
    assert len(perfect.trials) == 2 + 6 and perfect.params == DenseCRFParams(crf="none")


def test_params_with_class_factors_drive_the_dense_crf():
    params = DenseCRFParams(gaussian_class_factors=[1, 0.5, 0],
                            bilateral_class_factors=np.array([2.0, 1.0, 0.25]))
    assert params.gaussian_class_factors == (1.0, 0.5, 0.0)
    assert params.num_classes == 3 and DenseCRFParams().num_classes is None
    np.testing.assert_allclose(params.compat("gaussian"), [3.0, 1.5, 0.0])
    np.testing.assert_allclose(params.compat("bilateral"), [20.0, 10.0, 2.5])
    assert DenseCRFParams().compat("bilateral") == 10.0
    logits, images, _ = _scenes(count=1)
    crf = DenseCRF(gaussian_compat=[3.0, 1.5, 0.0], bilateral_compat=[20.0, 10.0, 2.5],
                   backend="torch", device="cpu")
    refined = params.refine(logits[0], images[0], device="cpu")
    np.testing.assert_allclose(refined, crf.refine(logits[0], images[0]), atol=1e-6)
    # crfseg predict --params refines with pydensecrf: the factors reach it too
    np.testing.assert_allclose(params.refine(logits[0], images[0], backend="pydensecrf"),
                               refined, atol=1e-4)
    with pytest.raises(ValueError, match=r"per-class values for 3 classes but the scores "
                                         r"have C=2"):
        params.refine(logits[0][:2], images[0])
    with pytest.raises(ValueError, match="kernel"):
        params.compat("spatial")


def test_params_file_round_trip_with_class_factors(tmp_path):
    params = DenseCRFParams(n_iter=3, bilateral_class_factors=(0.0, 0.25, 4.0))
    path = params.write(tmp_path / "params.json")
    data = json.loads(path.read_text())
    assert data["bilateral_class_factors"] == [0.0, 0.25, 4.0]
    assert "gaussian_class_factors" not in data
    assert DenseCRFParams.read(path) == params
    assert DenseCRFParams.read(path, num_classes=3) == params
    assert DenseCRFParams.from_dict(params.to_dict()) == params
    assert io.read_crf_params(path)["bilateral_class_factors"] == (0.0, 0.25, 4.0)


def test_params_files_without_class_factors_stay_readable(tmp_path):
    old = {"kind": "crfseg.dense_crf_params", "version": 1, "crf": "dense", "n_iter": 3,
           "gaussian_sxy": 7.9, "gaussian_compat": 0.3, "bilateral_sxy": 5.5,
           "bilateral_srgb": 3.9, "bilateral_compat": 2.0, "unary_scale": 4.0}
    (tmp_path / "old.json").write_text(json.dumps(old))
    params = DenseCRFParams.read(tmp_path / "old.json", num_classes=11)
    assert params.bilateral_class_factors is None and params.n_iter == 3
    written = json.loads(params.write(tmp_path / "new.json").read_text())
    assert written == old


@pytest.mark.parametrize("factors, error, match", [
    ([1.0, 0.5], ValueError, r"bilateral_class_factors has 2 factors but there are "
                             r"num_classes=3 classes"),
    ([1.0, -0.5, 1.0], ValueError, r"bilateral_class_factors\[1\] must be >= 0, got -0.5"),
    ([1.0, float("nan"), 1.0], ValueError, r"bilateral_class_factors\[1\] must be finite"),
    ([1.0, float("inf"), 1.0], ValueError, r"bilateral_class_factors\[1\] must be finite"),
    ([1.0, None, 1.0], TypeError, r"bilateral_class_factors\[1\] must be a real number"),
    ([1.0, "2", 1.0], TypeError, r"bilateral_class_factors\[1\] must be a real number"),
    ([[1.0, 2.0], [1.0, 2.0]], ValueError, r"must be a \(C,\) sequence of one factor per "
                                           r"class, got shape \(2, 2\)"),
    ([1.0], ValueError, "at least 2 classes, got 1"),
    (2.0, TypeError, "bilateral_class_factors must be a sequence of one factor per class, "
                     "got float"),
])
def test_read_crf_params_rejects_bad_class_factors(tmp_path, factors, error, match):
    data = {"kind": "crfseg.dense_crf_params", "version": 1, **DenseCRFParams().to_dict(),
            "bilateral_class_factors": factors}
    del data["gaussian_class_factors"]
    path = tmp_path / "p.json"
    path.write_text(json.dumps(data))
    with pytest.raises(error, match=match):
        io.read_crf_params(path, num_classes=3)
    params = {k: v for k, v in data.items() if k not in ("kind", "version")}
    with pytest.raises(error, match=match):
        io.write_crf_params(tmp_path / "out.json", params, num_classes=3)
    assert not (tmp_path / "out.json").exists()


@pytest.mark.parametrize("factors, error, match", [
    ([1.0, -0.5, 1.0], ValueError, r"bilateral_class_factors\[1\] must be >= 0, got -0.5"),
    ([1.0, float("nan"), 1.0], ValueError, r"bilateral_class_factors\[1\] must be finite"),
    ((1.0, True), TypeError, r"bilateral_class_factors\[1\] must be a real number"),
    ("12", TypeError, "bilateral_class_factors must be a sequence of one factor per class"),
    (np.ones((3, 3)), ValueError, r"got shape \(3, 3\)"),
])
def test_params_reject_bad_class_factors(factors, error, match):
    with pytest.raises(error, match=match):
        DenseCRFParams(bilateral_class_factors=factors)


def test_class_factor_lengths_must_agree(tmp_path):
    with pytest.raises(ValueError, match=r"one value per class each, got lengths \[3, 2\]"):
        DenseCRFParams(gaussian_class_factors=[1, 1, 1], bilateral_class_factors=[1, 1])
    data = {**DenseCRFParams().to_dict(), "gaussian_class_factors": [1, 1, 1],
            "bilateral_class_factors": [1, 1]}
    with pytest.raises(ValueError, match=r"one value per class each, got lengths \[3, 2\]"):
        io.write_crf_params(tmp_path / "p.json", data)
    with pytest.raises(ValueError, match=r"unknown keys \['class_factors'\]"):
        io.write_crf_params(tmp_path / "p.json", {**data, "class_factors": [1, 1]})
    with pytest.raises(ValueError, match=r"unknown DenseCRF parameters \['class_factors'\]"):
        DenseCRFParams.from_dict({"class_factors": [1, 1]})


def test_tune_per_class_errors():
    logits, images, labels = _thin_lines(count=1)
    with pytest.raises(ValueError, match=r"class_factors\[1\] must be >= 0"):
        tune_dense_crf(logits, images, labels, per_class=True, class_factors=(1, -1),
                       progress=False)
    with pytest.raises(ValueError, match="class_factors is empty"):
        tune_dense_crf(logits, images, labels, per_class=True, class_factors=(),
                       progress=False)
    with pytest.raises(TypeError, match="class_factors must be a sequence"):
        tune_dense_crf(logits, images, labels, per_class=True, class_factors=2.0,
                       progress=False)
    with pytest.raises(ValueError, match="per_class_passes must be >= 1"):
        tune_dense_crf(logits, images, labels, per_class=True, per_class_passes=0,
                       progress=False)
    with pytest.raises(ValueError, match="per_class_kernels must be one of"):
        tune_dense_crf(logits, images, labels, per_class=True, per_class_kernels=["spatial"],
                       progress=False)
    with pytest.raises(ValueError, match="per_class_kernels is empty"):
        tune_dense_crf(logits, images, labels, per_class=True, per_class_kernels=[],
                       progress=False)
    with pytest.raises(TypeError, match="per_class_kernels must be a sequence"):
        tune_dense_crf(logits, images, labels, per_class=True, per_class_kernels="bilateral",
                       progress=False)
    with pytest.raises(TypeError, match="per_class must be"):
        tune_dense_crf(logits, images, labels, per_class="yes", progress=False)
    with pytest.raises(ValueError, match=r"initial\[0\] holds per-class factors for 2 classes "
                                         r"but the scores have C=3"):
        tune_dense_crf(logits, images, labels,
                       initial=[DenseCRFParams(bilateral_class_factors=(1, 0))], progress=False)


def test_cli_tune_per_class_then_refine_applies_the_factors(tmp_path, capsys):
    logits, images, labels = _folders(tmp_path, data=_thin_lines())
    THIN_LINES_CRF.write(tmp_path / "seed.json")
    code = main(_tune_args(tmp_path, "--trials", "2", "--initial", str(tmp_path / "seed.json"),
                           "--per-class", "--class-factors", "0,1", "--per-class-passes", "1",
                           "--per-class-kernels", "bilateral", "--report",
                           str(tmp_path / "report.json")))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mIoU scalar" in out and "bilateral_class_factors=[" in out
    params = DenseCRFParams.read(tmp_path / "params.json", num_classes=3)
    expected = tune_dense_crf(logits, images, labels, trials=2, initial=[THIN_LINES_CRF],
                              per_class=True, class_factors=(0.0, 1.0), per_class_passes=1,
                              per_class_kernels=("bilateral",), progress=False)
    assert params == expected.params and params.bilateral_class_factors is not None
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["params"] == params.to_dict() and len(report["trials"]) == 5

    _check_refine_applies(tmp_path, params, logits, images, capsys)
    assert main(_tune_args(tmp_path, "--per-class", "--class-factors", "0,x")) == 2
    assert "expected comma-separated numbers, got '0,x'" in capsys.readouterr().err
    assert main(_tune_args(tmp_path, "--per-class", "--per-class-kernels", "spatial")) == 2
    assert "per_class_kernels must be one of" in capsys.readouterr().err
