"""The per-class bias on the log-probabilities: DenseCRFParams.class_bias, fit_class_bias and
``crfseg tune --class-bias``."""

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from test_tune import _check_refine_applies, _folders, _scenes, _tune_args

from crfseg import io
from crfseg.cli import main
from crfseg.crf import DenseCRF, DenseCRFParams, fit_class_bias, tune_dense_crf
from crfseg.metrics import confusion_matrix, mean_iou


def _under_rated(count=3, shape=(18, 24), shift=1.6, seed=0):
    """Colour-edge scenes whose logits under-rate class 2 by ``shift``."""
    logits, images, labels = _scenes(count=count, shape=shape, noise=0.8, seed=seed)
    for score in logits:
        score[2] -= shift
    return logits, images, labels


def _biased_miou(logits, labels, bias, num_classes=3):
    """The oracle: mean IoU of ``argmax(log_softmax(logits) + bias)`` in NumPy."""
    matrix = 0
    for score, label in zip(logits, labels):
        log_p = score - np.log(np.exp(score - score.max(0)).sum(0)) - score.max(0)
        matrix = matrix + confusion_matrix((log_p + np.asarray(bias)[:, None, None]).argmax(0),
                                           label, num_classes)
    return mean_iou(matrix)


# ---------------------------------------------------------------- DenseCRFParams.class_bias

def test_class_bias_without_crf_is_a_softmax_of_the_shifted_logits(rng):
    logits = rng.normal(size=(2, 3, 5, 6)).astype(np.float32)
    bias = (0.5, -1.0, 2.0)
    params = DenseCRFParams(crf="none", class_bias=bias, unary_scale=2.0)
    shifted = 2.0 * (logits + np.array(bias, dtype=np.float32)[:, None, None])
    expected = torch.softmax(torch.from_numpy(shifted), 1).numpy()
    images = np.zeros((2, 5, 6, 3), dtype=np.uint8)
    np.testing.assert_allclose(params.refine(logits, images, "logits"), expected, atol=1e-6)
    np.testing.assert_allclose(params.refine(logits[0], images[0], "logits"), expected[0],
                               atol=1e-6)
    refined = params.refine(torch.from_numpy(logits), torch.from_numpy(images), "logits")
    torch.testing.assert_close(refined, torch.from_numpy(expected), atol=1e-6, rtol=0)
    # probabilities: the bias is on log p
    probs = torch.softmax(torch.from_numpy(logits), 1).numpy()
    np.testing.assert_allclose(params.refine(probs, images, "probs"), expected, atol=1e-5)


def test_class_bias_feeds_the_dense_crf_the_shifted_scores(rng):
    logits, images, _ = _under_rated(count=2)
    bias = (0.0, -0.5, 1.5)
    params = DenseCRFParams(n_iter=3, bilateral_sxy=10.0, bilateral_srgb=8.0,
                            bilateral_compat=4.0, class_bias=bias)
    crf = DenseCRF(n_iter=3, bilateral_sxy=10.0, bilateral_srgb=8.0, bilateral_compat=4.0,
                   backend="torch", device="cpu")
    for score, image in zip(logits, images):
        shifted = score + np.array(bias, dtype=np.float32)[:, None, None]
        np.testing.assert_allclose(params.refine(score, image, "logits", device="cpu"),
                                   crf.refine(shifted, image, input_type="logits"), atol=1e-5)
        # the same through pydensecrf (what crfseg predict --params uses)
        np.testing.assert_allclose(params.refine(score, image, "logits", backend="pydensecrf"),
                                   crf.refine(shifted, image, input_type="logits"), atol=1e-4)


def test_class_bias_must_match_the_scores_classes(rng):
    scores = rng.normal(size=(2, 4, 5)).astype(np.float32)
    image = np.zeros((4, 5, 3), dtype=np.uint8)
    for crf in ("none", "dense"):
        with pytest.raises(ValueError, match="per-class values for 3 classes but the scores "
                                             "have C=2"):
            DenseCRFParams(crf=crf, class_bias=(0, 1, 2)).refine(scores, image)


@pytest.mark.parametrize("bias, error, match", [
    ([0.0, float("nan")], ValueError, r"class_bias\[1\] must be finite"),
    ([1.0], ValueError, "at least 2 classes"),
    ([[1.0, 2.0]], ValueError, r"got shape \(1, 2\)"),
    ("ab", TypeError, "class_bias must be a sequence"),
    ([1.0, "x"], TypeError, r"class_bias\[1\] must be a real number"),
])
def test_params_reject_bad_class_bias(bias, error, match):
    with pytest.raises(error, match=match):
        DenseCRFParams(class_bias=bias)


def test_class_bias_may_be_negative_and_must_agree_with_the_factors():
    assert DenseCRFParams(class_bias=np.array([-2.5, 0.0, 3.0])).class_bias == (-2.5, 0.0, 3.0)
    assert DenseCRFParams(class_bias=[1, -1]).num_classes == 2
    with pytest.raises(ValueError, match=r"bilateral_class_factors and class_bias must have "
                                         r"one value per class each, got lengths \[3, 2\]"):
        DenseCRFParams(bilateral_class_factors=[1, 1, 1], class_bias=[0, 1])
    with pytest.raises(ValueError, match=r"bilateral_class_factors\[0\] must be >= 0"):
        DenseCRFParams(bilateral_class_factors=[-1, 1])


def test_params_file_round_trip_with_class_bias(tmp_path):
    params = DenseCRFParams(crf="none", class_bias=(-1.0, 0.5, 2.0))
    params.write(tmp_path / "p.json")
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["class_bias"] == [-1.0, 0.5, 2.0] and "bilateral_class_factors" not in data
    assert DenseCRFParams.read(tmp_path / "p.json") == params
    assert DenseCRFParams.read(tmp_path / "p.json", num_classes=3) == params
    with pytest.raises(ValueError, match="class_bias has 3 offsets but there are "
                                         "num_classes=4 classes"):
        DenseCRFParams.read(tmp_path / "p.json", num_classes=4)
    data["class_bias"] = [0.0, "x"]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(TypeError, match=r"class_bias\[1\] must be a real number"):
        io.read_crf_params(tmp_path / "bad.json")
    data["class_bias"] = [0.0, 1.0]
    data["gaussian_class_factors"] = [1.0, 1.0, 1.0]
    (tmp_path / "bad.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match=r"gaussian_class_factors and class_bias must have one "
                                         r"value per class each, got lengths \[3, 2\]"):
        io.read_crf_params(tmp_path / "bad.json")


# ---------------------------------------------------------------- fit_class_bias

def test_fit_class_bias_raises_the_under_rated_class_to_the_oracles_score():
    logits, _, labels = _under_rated()
    zero = _biased_miou(logits, labels, (0.0, 0.0, 0.0))
    bias, miou = fit_class_bias(logits, labels, input_type="logits")
    assert bias.shape == (3,) and bias.dtype == np.float64
    assert bias[2] - max(bias[:2]) >= 1.0
    assert miou == pytest.approx(_biased_miou(logits, labels, bias), abs=1e-12)
    assert miou > zero + 0.1
    # a coordinate optimum over the grid: no single change of one class's bias scores higher
    for label in range(3):
        for value in (-3.0, -2.0, -1.0, -0.5, 0.0, 0.5, 1.0, 2.0, 3.0):
            trial = bias.copy()
            trial[label] = value
            assert _biased_miou(logits, labels, trial) <= miou + 1e-12


def test_fit_class_bias_matches_a_search_that_scores_every_candidate_in_full(rng):
    """The per-class margin shortcut gives the full argmin's choices, ties included."""
    num_classes, values = 6, (-1.0, -0.5, 0.0, 0.5, 1.0)
    scores, labels = [], []
    for _ in range(5):
        label = rng.integers(0, num_classes, (20, 25))
        score = np.eye(num_classes)[label].transpose(2, 0, 1) + rng.normal(0, 1, (6, 20, 25))
        score[3] -= 1.0
        scores.append((np.round(score * 2) / 2).astype(np.float32))  # many exact ties
        label[:3] = 255
        labels.append(label)

    def full(bias):
        offset = torch.tensor(bias, dtype=torch.float32)[:, None, None]
        matrix = sum(confusion_matrix((torch.from_numpy(-s) - offset).argmin(0).numpy(), t,
                                      num_classes, ignore_index=255)
                     for s, t in zip(scores, labels))
        return mean_iou(matrix)

    expected, best = np.zeros(num_classes), full(np.zeros(num_classes))
    for _ in range(3):
        changed = False
        for label in range(num_classes):
            chosen = expected[label]
            for value in values:
                if value == chosen:
                    continue
                expected[label] = value
                if full(expected) > best:
                    best, chosen, changed = full(expected), value, True
            expected[label] = chosen
        if not changed:
            break
    bias, miou = fit_class_bias([-s for s in scores], labels, input_type="unary",
                                class_biases=values)
    np.testing.assert_array_equal(bias, expected)
    assert miou == best and np.any(bias != 0)


def test_fit_class_bias_keeps_zero_when_nothing_helps():
    labels = np.zeros((1, 4, 4), dtype=np.int64)
    labels[0, :, 2:] = 1
    logits = np.stack([labels[0] == 0, labels[0] == 1]).astype(np.float32)[None] * 4.0
    bias, miou = fit_class_bias(logits, labels, input_type="logits", passes=2)
    assert bias.tolist() == [0.0, 0.0] and miou == 1.0


def test_fit_class_bias_takes_probabilities_and_a_batch():
    logits, _, labels = _under_rated()
    probs = [torch.softmax(torch.from_numpy(s), 0).numpy() for s in logits]
    from_logits = fit_class_bias(logits, labels, input_type="logits")
    from_probs = fit_class_bias(np.stack(probs), np.stack(labels), input_type="probs")
    np.testing.assert_array_equal(from_logits[0], from_probs[0])
    assert from_logits[1] == pytest.approx(from_probs[1])


def test_fit_class_bias_leaves_out_the_ignore_index():
    logits, _, labels = _under_rated(count=2)
    masked = [np.where(np.arange(label.shape[1]) < 4, 255, label) for label in labels]
    bias, miou = fit_class_bias(logits, masked, input_type="logits")
    matrix = sum(confusion_matrix((s + bias[:, None, None]).argmax(0), m, 3, ignore_index=255)
                 for s, m in zip(logits, masked))
    assert miou == pytest.approx(mean_iou(matrix))


def test_fit_class_bias_errors():
    logits, _, labels = _under_rated(count=2)
    with pytest.raises(ValueError, match="class_biases is empty"):
        fit_class_bias(logits, labels, class_biases=())
    with pytest.raises(ValueError, match=r"class_biases\[1\] must be finite"):
        fit_class_bias(logits, labels, class_biases=(0.0, float("inf")))
    with pytest.raises(TypeError, match="class_biases must be a sequence"):
        fit_class_bias(logits, labels, class_biases="1,2")
    with pytest.raises(ValueError, match="passes must be >= 1"):
        fit_class_bias(logits, labels, passes=0)
    with pytest.raises(ValueError, match="scores and labels must hold as many items, got 2 and 1"):
        fit_class_bias(logits, labels[:1])
    with pytest.raises(ValueError, match=r"labels\[0\] holds label 7"):
        fit_class_bias(logits, [np.full_like(labels[0], 7), labels[1]])
    with pytest.raises(ValueError, match=r"labels\[1\] has shape \(3, 3\)"):
        fit_class_bias(logits, [labels[0], np.zeros((3, 3), dtype=np.int64)])
    with pytest.raises(ValueError, match="scores\\[0\\] has 3 classes, expected num_classes=4"):
        fit_class_bias(logits, labels, num_classes=4)
    with pytest.raises(ValueError, match="input_type must be one of"):
        fit_class_bias(logits, labels, input_type="energy")


# ---------------------------------------------------------------- tune_dense_crf(class_bias=True)

def test_tune_with_class_bias_searches_the_crf_on_the_biased_scores():
    logits, images, labels = _under_rated()
    result = tune_dense_crf(logits, images, labels, trials=4, seed=0, class_bias=True,
                            progress=False)
    bias, miou_bias = fit_class_bias(logits, labels)
    assert result.miou_bias == pytest.approx(miou_bias)
    assert result.miou_bias > result.miou_no_crf
    assert result.params.class_bias == tuple(bias)
    # every trial refined the biased scores, the defaults first
    assert all(row["class_bias"] == list(bias) for row in result.trials)
    defaults = replace(DenseCRFParams(), class_bias=tuple(bias))
    predictions = [defaults.refine(s, im, device="cpu").argmax(0) for s, im in zip(logits, images)]
    matrix = sum(confusion_matrix(p, t, 3) for p, t in zip(predictions, labels))
    assert result.miou_defaults == pytest.approx(mean_iou(matrix))
    assert result.miou_best >= result.miou_bias
    table = result.table()
    assert "mIoU bias" in table and "class bias" in table.splitlines()[-1]
    assert result.to_dict()["miou_bias"] == result.miou_bias


def test_tune_with_class_bias_recommends_the_bias_alone_when_no_crf_helps(rng):
    # class 1 is always a close second on its own pixels: the bias alone is perfect
    labels = np.zeros((2, 12, 16), dtype=np.int64)
    labels[:, :, 8:] = 1
    logits = np.where(labels[:, None] == 1, -1.0, -5.0).astype(np.float32).repeat(2, 1)
    logits[:, 0] = 0.0
    images = rng.integers(0, 256, (2, 12, 16, 3), dtype=np.uint8)
    result = tune_dense_crf(logits, images, labels, trials=2, class_bias=True, progress=False)
    assert result.miou_no_crf == pytest.approx(0.5 / 2) and result.miou_bias == 1.0
    assert result.params == DenseCRFParams(crf="none", class_bias=(-3.0, 0.0))
    assert result.miou_best == 1.0
    np.testing.assert_array_equal(result.params.refine(logits, images).argmax(1), labels)
    no_bias = tune_dense_crf(logits, images, labels, trials=2, progress=False)
    assert no_bias.miou_bias is None and no_bias.params.class_bias is None


def test_tune_class_bias_errors():
    logits, images, labels = _under_rated(count=1)
    with pytest.raises(TypeError, match="class_bias must be"):
        tune_dense_crf(logits, images, labels, class_bias="yes", progress=False)
    with pytest.raises(ValueError, match="class_biases is empty"):
        tune_dense_crf(logits, images, labels, class_bias=True, class_biases=[], progress=False)


# ---------------------------------------------------------------- command line

def test_cli_tune_class_bias_then_refine_applies_it(tmp_path, capsys):
    logits, images, labels = _under_rated()
    _folders(tmp_path, data=(logits, images, labels))
    code = main(_tune_args(tmp_path, "--trials", "2", "--class-bias", "--class-biases",
                           "0,1,2", "--report", str(tmp_path / "r.json")))
    out = capsys.readouterr().out
    assert code == 0, out
    assert "mIoU bias" in out and "class_bias=[" in out
    params = DenseCRFParams.read(tmp_path / "params.json", num_classes=3)
    expected = tune_dense_crf(logits, images, labels, trials=2, class_bias=True,
                              class_biases=(0.0, 1.0, 2.0), progress=False)
    assert params == expected.params and params.class_bias is not None
    assert json.loads((tmp_path / "r.json").read_text())["miou_bias"] == expected.miou_bias
    _check_refine_applies(tmp_path, params, logits, images, capsys)
    assert main(_tune_args(tmp_path, "--class-bias", "--class-biases", "1,nan")) == 2
    assert "class_biases[1] must be finite" in capsys.readouterr().err
    assert main(_tune_args(tmp_path, "--class-bias", "--class-biases", "1,y")) == 2
    assert "expected comma-separated numbers, got '1,y'" in capsys.readouterr().err


def test_cli_refine_with_a_bias_and_no_crf_takes_the_biased_argmax(tmp_path, capsys):
    logits, images, labels = _under_rated(count=1)
    _folders(tmp_path, data=(logits, images, labels))
    DenseCRFParams(crf="none", class_bias=(0.0, 0.0, 2.0)).write(tmp_path / "bias.json")
    code = main(["refine", "--unary", str(tmp_path / "scores" / "f0.npy"), "--image",
                 str(tmp_path / "images" / "f0.png"), "-o", str(tmp_path / "o.png"),
                 "--params", str(tmp_path / "bias.json")])
    assert code == 0, capsys.readouterr().err
    expected = (logits[0] + np.array([0.0, 0.0, 2.0], dtype=np.float32)[:, None, None]).argmax(0)
    np.testing.assert_array_equal(io.read_labels(tmp_path / "o.png"), expected)
    assert not np.array_equal(expected, logits[0].argmax(0))
    DenseCRFParams(crf="none", class_bias=(0.0, 2.0)).write(tmp_path / "two.json")
    assert main(["refine", "--unary", str(tmp_path / "scores" / "f0.npy"), "--image",
                 str(tmp_path / "images" / "f0.png"), "-o", str(tmp_path / "o2.png"),
                 "--params", str(tmp_path / "two.json")]) == 2
    err = capsys.readouterr().err
    assert "per-class values for 2 classes but the scores have C=3" in err
