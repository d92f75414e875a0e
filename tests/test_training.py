"""The training and evaluation engine, with tiny networks on procedural scenes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from crfseg.crf import DenseCRF
from crfseg.datasets import SyntheticShapes
from crfseg.datasets.transforms import normalize, train_transforms
from crfseg.metrics import SegmentationMetrics
from crfseg.training import (
    EvaluationReport,
    NonFiniteLossError,
    evaluate,
    finish_distributed,
    init_distributed,
    load_training_state,
    seed_everything,
    train,
)


def _net(num_classes: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1),
                         nn.Conv2d(8, num_classes, 1))


def _train_set(num_images: int = 12, **kwargs) -> SyntheticShapes:
    return SyntheticShapes(num_images, size=28, num_classes=3, seed=1,
                           transforms=train_transforms(20), **kwargs)


def _val_set() -> SyntheticShapes:
    return SyntheticShapes(4, size=24, num_classes=3, seed=2)


def _weights(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.state_dict().values()]


def _same(a: list[torch.Tensor], b: list[torch.Tensor]) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a, b, strict=True))


def test_training_lowers_the_loss_and_raises_miou():
    model = _net()
    before = evaluate(model, _val_set(), progress=False).mean_iou()["cnn"]
    result = train(model, _train_set(), max_steps=40, batch_size=4, lr=0.05, progress=False)
    losses = [h["loss"] for h in result.history]
    assert result.step == 40 and result.start_step == 0 and len(losses) == 40
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])
    after = evaluate(model, _val_set(), progress=False).mean_iou()["cnn"]
    assert after > before + 0.1
    assert result.images_per_second > 0 and result.checkpoint is None


def test_poly_schedule_and_adamw():
    result = train(_net(), _train_set(), max_steps=5, batch_size=4, lr=0.1, poly_power=2.0,
                   optimizer="adamw", progress=False)
    expected = [0.1 * (1 - s / 5) ** 2 for s in range(5)]
    np.testing.assert_allclose([h["lr"] for h in result.history], expected, rtol=1e-6)


def test_runs_are_repeatable_whatever_the_worker_count():
    first, second = _net(), _net()
    train(first, _train_set(), max_steps=6, batch_size=4, seed=3, progress=False)
    train(second, _train_set(), max_steps=6, batch_size=4, seed=3, num_workers=1,
          progress=False)
    assert _same(_weights(first), _weights(second))
    third = _net()
    train(third, _train_set(), max_steps=6, batch_size=4, seed=4, progress=False)
    assert not _same(_weights(first), _weights(third))


def test_checkpointing_does_not_change_the_run(tmp_path):
    plain = _net()
    full = train(plain, _train_set(), max_steps=5, batch_size=4, progress=False)
    saved = _net()
    part = train(saved, _train_set(), max_steps=5, batch_size=4, progress=False,
                 checkpoint_dir=tmp_path, checkpoint_every=2)
    assert part.checkpoint == tmp_path / "last.pt"
    state = load_training_state(tmp_path / "last.pt")
    assert state["step"] == 5 and state["settings"]["max_steps"] == 5
    assert _same(_weights(plain), _weights(saved))
    assert [h["loss"] for h in full.history] == [h["loss"] for h in part.history]


def test_resume_from_a_mid_run_checkpoint(tmp_path):
    straight = _net()
    full = train(straight, _train_set(), max_steps=7, batch_size=4, progress=False)
    # A run stopped after 4 of 7 steps: train with max_steps=7 but a NaN at step 5.
    stopped = _NaNAt(_net(), step=5)
    with pytest.raises(NonFiniteLossError):
        train(stopped, _train_set(), max_steps=7, batch_size=4, progress=False,
              checkpoint_dir=tmp_path, checkpoint_every=2)
    assert load_training_state(tmp_path / "last.pt")["step"] == 4
    # Different initial weights: all of them must come from the checkpoint.
    resumed_model = _NaNAt(_net(seed=99), step=0)
    resumed = train(resumed_model, _train_set(), max_steps=7, batch_size=4, progress=False,
                    checkpoint_dir=tmp_path, resume=True)
    assert resumed.start_step == 4 and [h["step"] for h in resumed.history] == [5, 6, 7]
    assert _same(_weights(straight), _weights(resumed_model.inner))
    np.testing.assert_allclose([h["loss"] for h in resumed.history],
                               [h["loss"] for h in full.history[4:]])
    again = train(_NaNAt(_net(), step=0), _train_set(), max_steps=7, batch_size=4, progress=False,
                  resume=tmp_path / "last.pt")
    assert again.start_step == 7 and again.history == []


class _NaNAt(nn.Module):
    """A network whose output turns NaN at one training step (forward calls counted)."""

    def __init__(self, inner: nn.Module, step: int) -> None:
        super().__init__()
        self.inner = inner
        self.step = step
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        out = self.inner(x)
        return out * float("nan") if self.calls == self.step else out


def test_nan_loss_stops_with_step_files_and_hint(tmp_path):
    model = _NaNAt(_net(), step=3)
    with pytest.raises(NonFiniteLossError, match=r"the loss is nan at step 3; batch: "
                                                 r"synthetic:seed=1:index=\d+, .*saved to "
                                                 r".*nonfinite-step-3.pt\. Hint: lower the "
                                                 r"learning rate \(lr=0.01\)") as info:
        train(model, _train_set(), max_steps=5, batch_size=4, checkpoint_dir=tmp_path,
              progress=False)
    error = info.value
    assert error.step == 3 and len(error.files) == 4
    assert load_training_state(error.checkpoint)["step"] == 2
    with pytest.raises(NonFiniteLossError, match=r"saved to .*crfseg-nonfinite-.*step-2.pt"):
        train(_NaNAt(_net(), step=2), _train_set(), max_steps=5, batch_size=4, progress=False)


def test_auxiliary_output_and_resized_logits():
    calls = []

    def loss_fn(logits, target):
        calls.append(tuple(logits.shape))
        return nn.functional.cross_entropy(logits, target, ignore_index=255)

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 3, 3, stride=2, padding=1)  # output at half size

        def forward(self, x):
            out = self.body(x)
            return {"out": out, "aux": out * 0.5}

    train(TwoHeads(), _train_set(), max_steps=2, batch_size=4, loss_fn=loss_fn, progress=False)
    assert calls == [(4, 3, 20, 20)] * 4  # main + aux, resized to the labels, each step


def test_auxiliary_head_of_model_zoo_networks(tmp_path):
    class ZooLike(nn.Module):
        """A network with ``forward_aux`` and an ``aux_head``, as crfseg.models builds them."""

        def __init__(self):
            super().__init__()
            self.body = nn.Conv2d(3, 3, 3, padding=1)
            self.aux_head = nn.Conv2d(3, 3, 1)
            self.aux_calls = 0

        def forward(self, x):
            return self.body(x)

        def forward_aux(self, x):
            self.aux_calls += 1
            out = self.body(x)
            return out, self.aux_head(out)

    model = ZooLike()
    before = model.aux_head.weight.detach().clone()
    train(model, _train_set(), max_steps=2, batch_size=4, checkpoint_dir=tmp_path,
          progress=False)
    assert model.aux_calls == 2 and not torch.equal(model.aux_head.weight, before)
    assert "aux_head.weight" in load_training_state(tmp_path / "last.pt")["model"]
    unused = ZooLike()
    train(unused, _train_set(), max_steps=1, batch_size=4, aux_weight=0, progress=False)
    assert unused.aux_calls == 0


def test_only_the_given_parameters_move():
    model = _net()
    frozen_before = model[0].weight.detach().clone()
    head_before = model[3].weight.detach().clone()
    train(model, _train_set(), max_steps=3, batch_size=4, parameters=model[3].parameters(),
          progress=False)
    assert torch.equal(model[0].weight, frozen_before)
    assert not torch.equal(model[3].weight, head_before)


def test_parameter_groups_keep_their_learning_rates():
    model = _net()
    frozen = model[0].weight.detach().clone()
    groups = [{"params": model[0].parameters(), "lr": 0.0}, {"params": model[3].parameters()}]
    result = train(model, _train_set(), max_steps=2, batch_size=4, lr=0.05, parameters=groups,
                   progress=False)
    assert torch.equal(model[0].weight, frozen)  # lr 0 in its group
    assert result.history[0]["lr"] == 0.0
    with pytest.raises(ValueError, match=r"parameters\[1\] is a group without a 'params' entry"):
        train(_net(), _train_set(), max_steps=1, batch_size=4, parameters=[{"params": []}, {}])
    with pytest.raises(TypeError, match="parameters must be all tensors or all groups"):
        train(_net(), _train_set(), max_steps=1, batch_size=4,
              parameters=[{"params": []}, torch.nn.Parameter(torch.zeros(1))])


def test_gradient_clipping_bounds_the_update():
    model = _net()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    train(model, _train_set(), max_steps=1, batch_size=4, lr=1.0, momentum=0.0,
          weight_decay=0.0, grad_clip=1e-3, progress=False)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert 0 < float((after - before).norm()) <= 1e-3 + 1e-7


def test_evaluate_matches_a_hand_computed_confusion():
    model = _net()
    train(model, _train_set(), max_steps=10, batch_size=4, lr=0.05, progress=False)
    data = _val_set()
    crf = DenseCRF(n_iter=3, bilateral_sxy=10)
    report = evaluate(model, data, crf=crf, progress=False)
    assert list(report.metrics) == ["cnn", "cnn+densecrf"] and report.num_images == 4
    cnn, refined = SegmentationMetrics(3), SegmentationMetrics(3)
    model.eval()
    with torch.no_grad():
        for i in range(len(data)):
            image, target = data[i]
            logits = model(normalize(image[None]))[0]
            cnn.update(logits.argmax(0), target)
            labels = crf.predict(logits.numpy(), image.permute(1, 2, 0).numpy())
            refined.update(labels, target.numpy())
    np.testing.assert_array_equal(report.metrics["cnn"].matrix, cnn.matrix)
    np.testing.assert_array_equal(report.metrics["cnn+densecrf"].matrix, refined.matrix)
    table = report.table()
    assert "CNN + DenseCRF" in table and "class 2 (checker)" in table and "mIoU" in table
    as_dict = report.to_dict()
    assert set(as_dict["variants"]) == {"cnn", "cnn+densecrf"}
    assert as_dict["variants"]["cnn"]["mean_iou"] == pytest.approx(cnn.compute()["mean_iou"])
    assert str(report) == table


class _WithCRF(nn.Module):
    """The shape of ``crfseg.models.with_crf``: a CNN and a CRF layer fed the RGB image."""

    def __init__(self, cnn: nn.Module) -> None:
        super().__init__()
        self.cnn = cnn
        self.crf = _Smoothing()

    def forward(self, x: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return self.crf(self.cnn(x), image)


class _Smoothing(nn.Module):
    """A learnable 3x3 averaging of the logits, checking that it sees 0-255 RGB."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.tensor(0.5))

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        if image.shape[1] != 3 or image.max() <= 1.0 or image.min() < 0:
            raise AssertionError("the CRF layer must get (N, 3, H, W) images in 0-255 units")
        blurred = nn.functional.avg_pool2d(logits, 3, stride=1, padding=1)
        return logits + self.weight * blurred


def test_end_to_end_variant_for_crf_wrapped_networks():
    wrapped = _WithCRF(_net())
    before = wrapped.crf.weight.item()
    train(wrapped, _train_set(), max_steps=3, batch_size=4, progress=False)
    assert wrapped.crf.weight.item() != before  # the CRF layer is trained end to end
    report = evaluate(wrapped, _val_set(), progress=False)
    assert list(report.metrics) == ["cnn", "end_to_end"]
    alone = evaluate(wrapped.cnn, _val_set(), progress=False)
    np.testing.assert_array_equal(report.metrics["cnn"].matrix, alone.metrics["cnn"].matrix)
    assert "CNN + CRFasRNN" in report.table()


def test_end_to_end_network_beside_the_cnn_trained_alone():
    cnn = _net()
    train(cnn, _train_set(), max_steps=3, batch_size=4, progress=False)
    wrapped = _WithCRF(_net(seed=1))
    train(wrapped, _train_set(), max_steps=3, batch_size=4, progress=False)
    report = evaluate(cnn, _val_set(), end_to_end=wrapped, progress=False)
    assert list(report.metrics) == ["cnn", "end_to_end"]
    alone = evaluate(cnn, _val_set(), progress=False)
    joint = evaluate(wrapped, _val_set(), progress=False)
    np.testing.assert_array_equal(report.metrics["cnn"].matrix, alone.metrics["cnn"].matrix)
    np.testing.assert_array_equal(report.metrics["end_to_end"].matrix,
                                  joint.metrics["end_to_end"].matrix)
    with pytest.raises(TypeError, match="end_to_end must be a network wrapped by "
                                        "crfseg.models.with_crf .* got Sequential"):
        evaluate(cnn, _val_set(), end_to_end=_net())


def test_helpers():
    seed_everything(5)
    a = torch.rand(3)
    seed_everything(5)
    assert torch.equal(a, torch.rand(3))
    ctx = init_distributed(device="cpu")
    assert (ctx.rank, ctx.world_size, ctx.is_main, ctx.distributed) == (0, 1, True, False)
    report = EvaluationReport({"cnn": SegmentationMetrics(2)}, ["a", "b"])
    assert np.isnan(report.mean_iou()["cnn"]) and "  -" in report.table()


# ---------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, error, message", [
    ({"max_steps": 0}, ValueError, "max_steps must be >= 1, got 0"),
    ({"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
    ({"batch_size": 13}, ValueError, r"the dataset has 12 samples, fewer than batch_size=13 x 1"),
    ({"optimizer": "adam"}, ValueError, "optimizer must be one of 'sgd', 'adamw'; got 'adam'"),
    ({"lr": 0}, ValueError, "lr must be > 0"),
    ({"momentum": 1.5}, ValueError, "momentum must be <= 1"),
    ({"weight_decay": -1}, ValueError, "weight_decay must be >= 0"),
    ({"poly_power": -1}, ValueError, "poly_power must be >= 0"),
    ({"aux_weight": -1}, ValueError, "aux_weight must be >= 0"),
    ({"grad_clip": 0}, ValueError, "grad_clip must be > 0"),
    ({"num_workers": -1}, ValueError, "num_workers must be >= 0"),
    ({"seed": -2}, ValueError, "seed must be >= 0"),
    ({"checkpoint_every": -1}, ValueError, "checkpoint_every must be >= 0"),
    ({"ignore_index": 1.5}, TypeError, "ignore_index must be an integer, got float"),
    ({"loss_fn": "ce"}, TypeError, "loss_fn must be callable, got str"),
    ({"parameters": 3}, TypeError, "parameters must be an iterable of tensors, got int"),
    ({"resume": True}, ValueError, r"resume=True needs checkpoint_dir"),
    ({"resume": 3}, TypeError, "resume must be a bool or a checkpoint path, got int"),
    ({"resume": "missing.pt"}, FileNotFoundError, "checkpoint to resume from not found"),
    ({"normalization": {"mean": (0, 0, 0)}}, ValueError,
     "normalization must be a dict with keys 'mean' and 'std'"),
    ({"parameters": []}, ValueError, "no parameter requires grad: nothing to train"),
])
def test_train_rejects_bad_arguments(kwargs, error, message):
    options = {"max_steps": 2, "batch_size": 4, "progress": False, **kwargs}
    with pytest.raises(error, match=message):
        train(_net(), _train_set(), **options)


def test_train_and_evaluate_reject_bad_models_and_data(tmp_path):
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got function"):
        train(lambda x: x, _train_set(), max_steps=1)
    with pytest.raises(TypeError, match="dataset must be a torch Dataset, got int"):
        train(_net(), 5, max_steps=1)
    with pytest.raises(ValueError, match=r"the model must return logits \(N, C, H, W\) or a dict "
                                         r"with 'out', got \(4, 20, 20\)"):
        train(_Squeeze(), _train_set(), max_steps=1, batch_size=4, progress=False)
    with pytest.raises(TypeError, match="model must be a torch.nn.Module, got str"):
        evaluate("net", _val_set())
    with pytest.raises(TypeError, match="crf must be a crfseg.crf.DenseCRF .* got int"):
        evaluate(_net(), _val_set(), crf=3)
    with pytest.raises(ValueError, match="num_classes is required when the dataset has no "
                                         "num_classes attribute"):
        evaluate(_net(), [(torch.zeros(3, 4, 4, dtype=torch.uint8), torch.zeros(4, 4).long())])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        evaluate(_net(), _val_set(), batch_size=0)
    with pytest.raises(ValueError, match=r"the model's logits are not finite \(NaN or inf\) for "
                                         r"synthetic:seed=2:index=0; its weights may have"):
        evaluate(_NaNAt(_net(), step=1), _val_set(), progress=False)
    with pytest.raises(ValueError, match=r"target contains label 2 .* outside \[0, 2\)"):
        evaluate(_net(), _val_set(), num_classes=2, class_names=["a", "b"], progress=False)


def test_load_training_state_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="training checkpoint not found"):
        load_training_state(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"could not read training checkpoint .*junk.pt"):
        load_training_state(tmp_path / "junk.pt")
    torch.save({"model": {}}, tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="is not a crfseg training checkpoint"):
        load_training_state(tmp_path / "weights.pt")
    with pytest.raises(ValueError, match="backend must be one of 'nccl', 'gloo'"):
        init_distributed(backend="mpi")
    with pytest.raises(ValueError, match="seed must be >= 0, got -1"):
        seed_everything(-1)


def test_finish_distributed_without_a_process_group_returns_the_code():
    assert finish_distributed(3) == 3
    assert finish_distributed() == 0
    with pytest.raises(ValueError, match="code must be <= 255, got 256"):
        finish_distributed(256)
    with pytest.raises(TypeError, match="code must be an integer, got float"):
        finish_distributed(1.5)


class _Squeeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x)[:, 0]


def test_torch_backend_crf_refines_each_batch_in_one_call(monkeypatch):
    from crfseg.training.evaluation import refine_batch

    model = _net()
    data = _val_set()
    crf = DenseCRF(n_iter=2, bilateral_sxy=10, backend="torch")
    calls = []
    original = DenseCRF.refine

    def counting(self, scores, image, input_type="auto"):
        calls.append((type(scores), tuple(scores.shape), scores.device))
        return original(self, scores, image, input_type)

    monkeypatch.setattr(DenseCRF, "refine", counting)
    report = evaluate(model, data, crf=crf, batch_size=2, progress=False)
    assert calls == [(torch.Tensor, (2, 3, 24, 24), torch.device("cpu"))] * 2
    expected = SegmentationMetrics(3)
    model.eval()
    with torch.no_grad():
        images = torch.stack([data[i][0] for i in range(len(data))]).float()
        targets = torch.stack([data[i][1] for i in range(len(data))])
        logits = model(normalize(images))
        for i in range(len(data)):
            labels = original(crf, logits[i], images[i].permute(1, 2, 0), "logits").argmax(0)
            expected.update(labels, targets[i])
    np.testing.assert_array_equal(report.metrics["cnn+densecrf"].matrix, expected.matrix)
    labels = refine_batch(crf, logits, images)
    assert labels.dtype == torch.int64 and labels.shape == (4, 24, 24)


def test_training_checkpoints_load_without_pickled_code(tmp_path):
    train(_net(), _train_set(), max_steps=1, batch_size=4, progress=False,
          checkpoint_dir=tmp_path)
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["format"] == "crfseg-training" and state["step"] == 1
    assert not list(tmp_path.glob("*.tmp"))


def test_train_settings_share_train_defaults():
    import inspect

    from crfseg.training import TrainSettings

    defaults = {name: p.default for name, p in inspect.signature(train).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    settings = TrainSettings.validated(max_steps=3)
    for name in TrainSettings.__dataclass_fields__:
        if name != "max_steps":
            assert getattr(settings, name) == defaults[name], name
    with pytest.raises(ValueError, match="optimizer must be one of 'sgd', 'adamw'"):
        TrainSettings.validated(max_steps=3, optimizer="adam")
    with pytest.raises(ValueError, match="max_steps must be >= 1"):
        TrainSettings.validated(max_steps=0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_backend_crf_evaluation_stays_on_the_gpu(monkeypatch):
    model = _net()
    crf = DenseCRF(n_iter=2, bilateral_sxy=10, backend="torch")
    devices = []
    original = DenseCRF.refine

    def recording(self, scores, image, input_type="auto"):
        devices.append(scores.device.type)
        return original(self, scores, image, input_type)

    monkeypatch.setattr(DenseCRF, "refine", recording)
    report = evaluate(model, _val_set(), crf=crf, batch_size=2, device="cuda", progress=False)
    assert devices == ["cuda", "cuda"] and report.num_images == 4
