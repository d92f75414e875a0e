"""Values, gradients and corner cases of crfseg.losses against NumPy oracles and peers."""

from __future__ import annotations

import math

import _loss_oracles as oracle
import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from torch.autograd import gradcheck

import crfseg.losses as L

# name -> (function, keyword arguments used in the generic tests)
LOSSES = {
    "cross_entropy": (L.cross_entropy, {}),
    "focal_loss": (L.focal_loss, {}),
    "distance_penalized_ce": (L.distance_penalized_ce, {}),
    "dice_loss": (L.dice_loss, {}),
    "generalized_dice_loss": (L.generalized_dice_loss, {}),
    "ce_dice_loss": (L.ce_dice_loss, {}),
    "jaccard_loss": (L.jaccard_loss, {}),
    "tversky_loss": (L.tversky_loss, {}),
    "focal_tversky_loss": (L.focal_tversky_loss, {}),
    "lovasz_softmax": (L.lovasz_softmax, {}),
    "lovasz_softmax_per_image": (L.lovasz_softmax, {"per_image": True}),
    "boundary_loss": (L.boundary_loss, {}),
    "hausdorff_dt_loss": (L.hausdorff_dt_loss, {}),
    "combo_loss": (L.combo_loss, {}),
    "exp_log_loss": (L.exp_log_loss, {}),
}
ZERO_AT_OPTIMUM = [name for name in LOSSES if name != "boundary_loss"]


def make_batch(rng, n=2, c=3, h=4, w=5, *, ignored=0.2, dtype=torch.float64,
               device="cpu", scale=2.0):
    """Random logits and blocky targets with some ignored pixels."""
    logits = torch.tensor(rng.normal(scale=scale, size=(n, c, h, w)), dtype=dtype, device=device)
    target = rng.integers(0, c, size=(n, h, w))
    target[:, : h // 2, : w // 2] = 0  # a block so that every image has a contour
    target[rng.random((n, h, w)) < ignored] = 255
    return logits, torch.tensor(target, device=device)


def call(name, logits, target, **extra):
    function, kwargs = LOSSES[name]
    return function(logits, target, **{**kwargs, **extra})


def as_np(logits, target):
    return logits.detach().cpu().double().numpy(), target.cpu().numpy()


# --------------------------------------------------------------------------- hand values


def test_cross_entropy_hand_value():
    logits = torch.tensor([[[[2.0, 0.0, 1.0]], [[0.0, 0.0, 1.0]]]])
    target = torch.tensor([[[0, 1, 255]]])
    expected = (math.log1p(math.exp(-2.0)) + math.log(2.0)) / 2
    assert L.cross_entropy(logits, target).item() == pytest.approx(expected, rel=1e-6)
    weighted = L.cross_entropy(logits, target, class_weights=[1.0, 3.0])
    assert weighted.item() == pytest.approx(
        (math.log1p(math.exp(-2.0)) + 3 * math.log(2.0)) / 4, rel=1e-6)


def test_dice_family_hand_values():
    # p = 1/2 everywhere; target 0 0 1 1: per class tp = 1, sum p = 2, sum g = 2
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[0, 0, 1, 1]]])
    assert L.dice_loss(logits, target).item() == pytest.approx(0.5)
    assert L.dice_loss(logits, target, squared=True).item() == pytest.approx(1 - 2 / 3)
    assert L.dice_loss(logits, target, smooth=1.0).item() == pytest.approx(1 - 3 / 5)
    assert L.jaccard_loss(logits, target).item() == pytest.approx(1 - 1 / 3)
    assert L.tversky_loss(logits, target, alpha=0.2, beta=0.6).item() == pytest.approx(
        1 - 1 / 1.8)
    assert L.focal_tversky_loss(logits, target, gamma=2.0).item() == pytest.approx(
        (1 - 1 / 2) ** 0.5)
    assert L.generalized_dice_loss(logits, target).item() == pytest.approx(0.5)


def test_tversky_alpha_weights_false_positives():
    # class 1 over-predicted: only false positives for it, only false negatives for class 0
    logits = torch.tensor([[[[0.0, 0.0, 0.0, 0.0]], [[9.0, 9.0, 9.0, 9.0]]]],
                          dtype=torch.float64)
    target = torch.tensor([[[0, 0, 1, 1]]])
    fp_heavy = L.tversky_loss(logits, target, alpha=1.0, beta=0.0, reduction="none")
    fn_heavy = L.tversky_loss(logits, target, alpha=0.0, beta=1.0, reduction="none")
    assert fp_heavy[1] > 0.4 and fp_heavy[1] > 10 * fn_heavy[1]  # class 1: false positives
    assert fn_heavy[0] > 0.9 and fn_heavy[0] > fp_heavy[0]  # class 0: false negatives


def test_focal_tversky_exponent_is_applied_per_class():
    logits = torch.tensor([[[[3.0, 0.0, 0.0, -1.0]], [[0.0, 2.0, 0.0, 1.0]]]],
                          dtype=torch.float64)
    target = torch.tensor([[[0, 1, 1, 1]]])
    per_class = L.tversky_loss(logits, target, reduction="none")
    value = L.focal_tversky_loss(logits, target)
    assert value.item() == pytest.approx((per_class ** 0.75).mean().item())
    assert value.item() != pytest.approx(per_class.mean().item() ** 0.75)


def test_lovasz_hand_value():
    # one class-0 pixel predicted with p = 0.8 and one class-1 pixel with p(1) = 0.8
    logits = torch.tensor([[[[math.log(4.0), 0.0]], [[0.0, math.log(4.0)]]]])
    target = torch.tensor([[[0, 1]]])
    # class 0: errors [0.2 (g=1), 0.2 (g=0)]: J increments 0.5 then 0.5 -> 0.2
    assert L.lovasz_softmax(logits, target).item() == pytest.approx(0.2, rel=1e-5)


def test_boundary_and_hausdorff_hand_values():
    logits = torch.tensor([[[[2.0, 0.0, 0.0]], [[0.0, 0.0, 2.0]]]], dtype=torch.float64)
    target = torch.tensor([[[0, 0, 1]]])
    p0 = torch.sigmoid(torch.tensor(2.0, dtype=torch.float64)).item()
    # phi_0 = [-1.5, -0.5, 0.5], phi_1 = [1.5, 0.5, -0.5]
    pixel = [p0 * -1.5 + (1 - p0) * 1.5, 0.0, (1 - p0) * 0.5 + p0 * -0.5]
    assert L.boundary_loss(logits, target).item() == pytest.approx(sum(pixel) / 3)
    # the prediction is [0, 0, 1] (argmax tie goes to class 0), equal to the target:
    # d_p = d_g = [1.5, 0.5, 0.5] for both classes, so the weight is 2 d^2
    errors = [(1 - p0) ** 2, 0.25, (1 - p0) ** 2]
    weights = [2 * 1.5**2, 2 * 0.5**2, 2 * 0.5**2]
    expected = sum(e * w for e, w in zip(errors, weights)) / 3
    assert L.hausdorff_dt_loss(logits, target).item() == pytest.approx(expected)


def test_distance_penalized_ce_changes_the_value():
    logits = torch.zeros(1, 2, 1, 4)
    target = torch.tensor([[[0, 0, 0, 1]]])  # D = [0, 0.5, 1, 1]
    ce = L.cross_entropy(logits, target).item()
    value = L.distance_penalized_ce(logits, target).item()
    assert value == pytest.approx(ce * (1 + 1.5 + 2 + 2) / 4)
    assert value > 1.5 * ce


def test_combo_and_exp_log_hand_values():
    logits = torch.zeros(1, 2, 1, 2, dtype=torch.float64)
    target = torch.tensor([[[0, 1]]])
    # per pixel and class: -(beta ln 1/2) on the true class, -(1 - beta) ln 1/2 on the other
    wce = (0.7 + 0.3) * math.log(2) / 2
    assert L.combo_loss(logits, target, alpha=0.4, beta=0.7).item() == pytest.approx(
        0.4 * wce + 0.6 * 0.5)
    dice_c = 2 / 3  # (2 * 1/2 + 1) / (1 + 1 + 1)
    expected = 0.8 * (-math.log(dice_c)) ** 0.3 + 0.2 * math.sqrt(2) * math.log(2) ** 0.3
    assert L.exp_log_loss(logits, target).item() == pytest.approx(expected)


# --------------------------------------------------------------------------- NumPy oracles


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("include_absent", [False, True])
def test_region_losses_match_oracle(rng, per_image, include_absent):
    logits, target = make_batch(rng, c=4)
    target[target == 3] = 2  # class 3 absent: exercises the absent-class rule
    x, t = as_np(logits, target)
    opts = {"per_image": per_image, "include_absent": include_absent}
    for smooth in (0.0, 0.5):
        for squared in (False, True):
            got = L.dice_loss(logits, target, smooth=smooth, squared=squared, **opts)
            want = oracle.dice(x, t, smooth=smooth, squared=squared, **opts)
            assert got.item() == pytest.approx(want, rel=1e-10)
        assert L.jaccard_loss(logits, target, smooth=smooth, **opts).item() == pytest.approx(
            oracle.jaccard(x, t, smooth=smooth, **opts), rel=1e-10)
        assert L.tversky_loss(logits, target, alpha=0.2, beta=0.9, smooth=smooth,
                              **opts).item() == pytest.approx(
            oracle.tversky(x, t, 0.2, 0.9, smooth=smooth, **opts), rel=1e-10)
        assert L.focal_tversky_loss(logits, target, smooth=smooth, **opts).item() == pytest.approx(
            oracle.tversky(x, t, 0.3, 0.7, smooth=smooth, gamma=4 / 3, **opts), rel=1e-10)
    assert L.generalized_dice_loss(logits, target, **opts).item() == pytest.approx(
        oracle.generalized_dice(x, t, **opts), rel=1e-10)


def test_pixel_losses_match_oracle(rng):
    logits, target = make_batch(rng)
    x, t = as_np(logits, target)
    weights = [0.5, 2.0, 1.0]
    assert L.cross_entropy(logits, target, class_weights=weights).item() == pytest.approx(
        oracle.cross_entropy(x, t, weights=weights), rel=1e-10)
    for gamma in (0.5, 2.0):
        got = L.focal_loss(logits, target, gamma=gamma, alpha=[0.25, 0.5, 1.0])
        assert got.item() == pytest.approx(
            oracle.cross_entropy(x, t, focal_gamma=gamma, alpha=[0.25, 0.5, 1.0]), rel=1e-10)
    assert L.distance_penalized_ce(logits, target).item() == pytest.approx(
        oracle.distance_penalized_ce(x, t), rel=1e-10)
    assert L.combo_loss(logits, target, alpha=0.3, beta=0.8).item() == pytest.approx(
        oracle.combo(x, t, alpha=0.3, beta=0.8), rel=1e-10)
    assert L.exp_log_loss(logits, target).item() == pytest.approx(oracle.exp_log(x, t),
                                                                   rel=1e-10)
    assert L.exp_log_loss(logits, target, gamma=1.0, class_weights=weights,
                          smooth=0.0).item() == pytest.approx(
        oracle.exp_log(x, t, gamma=1.0, class_weights=weights, smooth=0.0), rel=1e-10)


def test_boundary_losses_match_oracle(rng):
    logits, target = make_batch(rng, h=5, w=5)
    x, t = as_np(logits, target)
    assert L.boundary_loss(logits, target).item() == pytest.approx(oracle.boundary(x, t),
                                                                   rel=1e-10)
    for alpha in (1.0, 2.0):
        assert L.hausdorff_dt_loss(logits, target, alpha=alpha).item() == pytest.approx(
            oracle.hausdorff_dt(x, t, alpha=alpha), rel=1e-10)


@pytest.mark.parametrize("per_image", [False, True])
@pytest.mark.parametrize("classes", ["present", "all", [0, 2]])
def test_lovasz_matches_set_function_oracle(rng, per_image, classes):
    logits, target = make_batch(rng, c=4)
    target[target == 3] = 1
    x, t = as_np(logits, target)
    got = L.lovasz_softmax(logits, target, classes=classes, per_image=per_image)
    assert got.item() == pytest.approx(oracle.lovasz(x, t, classes, per_image), rel=1e-10)


def test_lovasz_equals_jaccard_loss_on_hard_predictions():
    # with one-hot probabilities the Lovasz extension is the Jaccard loss itself
    target = torch.tensor([[[0, 0, 1, 1, 1, 2]]])
    pred = torch.tensor([[[0, 1, 1, 1, 2, 2]]])
    logits = 80.0 * TF.one_hot(pred, 3).permute(0, 3, 1, 2).double()
    ious = [1 / 2, 2 / 4, 1 / 2]
    assert L.lovasz_softmax(logits, target).item() == pytest.approx(1 - sum(ious) / 3)


# --------------------------------------------------------------------------- peers


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(rng, reduction):
    logits, target = make_batch(rng, dtype=torch.float32)
    weights = torch.tensor([0.2, 1.0, 3.0])
    ours = L.cross_entropy(logits, target, class_weights=weights, reduction=reduction)
    theirs = TF.cross_entropy(logits, target, weight=weights, ignore_index=255,
                              reduction=reduction)
    torch.testing.assert_close(ours, theirs)


def test_focal_loss_binary_matches_torchvision_sigmoid_focal(rng):
    ops = pytest.importorskip("torchvision.ops")
    logits, target = make_batch(rng, c=2, ignored=0.0)
    for alpha in (0.25, 0.6):
        ours = L.focal_loss(logits, target, gamma=2.0, alpha=[1 - alpha, alpha])
        theirs = ops.sigmoid_focal_loss(logits[:, 1] - logits[:, 0], target.double(),
                                        alpha=alpha, gamma=2.0, reduction="mean")
        torch.testing.assert_close(ours, theirs)


def test_focal_gamma_zero_is_cross_entropy(rng):
    logits, target = make_batch(rng)
    torch.testing.assert_close(L.focal_loss(logits, target, gamma=0.0),
                               L.cross_entropy(logits, target))


def test_tversky_special_cases_are_dice_and_jaccard(rng):
    logits, target = make_batch(rng)
    torch.testing.assert_close(L.tversky_loss(logits, target, alpha=0.5, beta=0.5),
                               L.dice_loss(logits, target))
    torch.testing.assert_close(L.tversky_loss(logits, target, alpha=1.0, beta=1.0),
                               L.jaccard_loss(logits, target))


def test_ce_dice_is_the_weighted_sum(rng):
    logits, target = make_batch(rng)
    got = L.ce_dice_loss(logits, target, ce_weight=0.3, dice_weight=2.0, class_weights=[1, 2, 3],
                         per_image=True)
    want = (0.3 * L.cross_entropy(logits, target, class_weights=[1, 2, 3])
            + 2.0 * L.dice_loss(logits, target, per_image=True))
    torch.testing.assert_close(got, want)


def test_region_losses_match_monai_when_every_class_is_present(rng):
    monai = pytest.importorskip("monai.losses")
    logits, target = make_batch(rng, ignored=0.0, h=6, w=6)
    target[0, 0, :3] = torch.tensor([0, 1, 2])
    onehot = TF.one_hot(target, 3).permute(0, 3, 1, 2).double()
    common = {"softmax": True, "batch": True, "smooth_nr": 0.0, "smooth_dr": 0.0}
    torch.testing.assert_close(L.dice_loss(logits, target),
                               monai.DiceLoss(**common)(logits, onehot))
    torch.testing.assert_close(L.dice_loss(logits, target, squared=True),
                               monai.DiceLoss(squared_pred=True, **common)(logits, onehot))
    torch.testing.assert_close(L.tversky_loss(logits, target, alpha=0.3, beta=0.7),
                               monai.TverskyLoss(alpha=0.3, beta=0.7, **common)(logits, onehot))
    torch.testing.assert_close(L.generalized_dice_loss(logits, target),
                               monai.GeneralizedDiceLoss(**common)(logits, onehot))


# --------------------------------------------------------------------------- gradients


@pytest.mark.parametrize("name", list(LOSSES))
def test_gradcheck(rng, name):
    logits, target = make_batch(rng, n=2, c=3, h=3, w=4)
    logits.requires_grad_(True)
    assert gradcheck(lambda z: call(name, z, target), (logits,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", list(LOSSES))
def test_ignored_pixels_get_zero_gradient_and_no_say(rng, name):
    logits, target = make_batch(rng, ignored=0.3, h=5, w=5)
    ignored = (target == 255).unsqueeze(1).expand_as(logits)
    assert ignored.any()
    logits.requires_grad_(True)
    value = call(name, logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.count_nonzero(grad[ignored]) == 0
    assert torch.count_nonzero(grad[~ignored]) > 0
    if name != "hausdorff_dt_loss":  # its predicted contours use every pixel, by definition
        moved = logits.detach() + 5.0 * ignored * torch.randn_like(logits)
        torch.testing.assert_close(call(name, moved, target), value.detach())


@pytest.mark.parametrize("name", list(LOSSES))
def test_fully_ignored_batch_is_zero_with_zero_gradient(name):
    logits = torch.randn(2, 3, 4, 4, dtype=torch.float64, requires_grad=True)
    target = torch.full((2, 4, 4), 255)
    value = call(name, logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    assert value.item() == 0.0
    assert torch.count_nonzero(grad) == 0 and torch.isfinite(grad).all()


# --------------------------------------------------------------------------- edge cases


def perfect_logits(target, num_classes, scale=100.0, dtype=torch.float64):
    safe = torch.where(target == 255, 0, target)
    return scale * TF.one_hot(safe, num_classes).permute(0, 3, 1, 2).to(dtype)


@pytest.mark.parametrize("name", ZERO_AT_OPTIMUM)
def test_perfect_prediction_is_at_the_minimum(rng, name):
    _, target = make_batch(rng, ignored=0.1)
    logits = perfect_logits(target, 3).requires_grad_(True)
    value = call(name, logits, target)
    assert abs(value.item()) < 1e-9
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(grad).all()
    wrong = call(name, torch.randn_like(logits), target)
    assert wrong.item() > 0.01


def test_boundary_loss_minimum_is_each_pixel_on_its_own_class(rng):
    _, target = make_batch(rng, ignored=0.1)
    logits = perfect_logits(target, 3)
    maps = L.signed_distance_maps(target, 3)
    valid = target != 255
    minimum = maps.gather(1, torch.where(valid, target, 0)[:, None])[:, 0][valid].mean()
    assert L.boundary_loss(logits, target).item() == pytest.approx(minimum.item())
    assert minimum < 0
    for _ in range(5):
        assert L.boundary_loss(torch.randn_like(logits) * 3, target) > minimum


@pytest.mark.parametrize("name", list(LOSSES))
def test_two_classes_and_single_pixel_objects(name):
    target = torch.zeros(2, 5, 5, dtype=torch.long)
    target[0, 2, 2] = 1  # a single-pixel object
    target[1, 0, 4] = 1
    target[1, 4, 0] = 255
    logits = perfect_logits(target, 2)
    value = call(name, logits, target)
    assert torch.isfinite(value)
    if name in ZERO_AT_OPTIMUM:
        assert abs(value.item()) < 1e-9
    missed = logits.clone()
    missed[0, :, 2, 2] = torch.tensor([100.0, 0.0], dtype=torch.float64)  # miss one object
    assert call(name, missed, target) > value + 1e-3


REGION = ["dice_loss", "jaccard_loss", "tversky_loss", "focal_tversky_loss",
          "generalized_dice_loss", "lovasz_softmax"]


@pytest.mark.parametrize("name", REGION)
def test_class_absent_from_target_and_prediction_is_left_out(rng, name):
    logits, target = make_batch(rng)
    extra = torch.full_like(logits[:, :1], -40.0)  # class 3: never predicted, never present
    with_absent = torch.cat([logits, extra], dim=1)
    torch.testing.assert_close(call(name, with_absent, target), call(name, logits, target))


@pytest.mark.parametrize("name", ["dice_loss", "jaccard_loss", "tversky_loss"])
def test_include_absent_with_smoothing_scores_an_unpredicted_class_as_perfect(rng, name):
    logits, target = make_batch(rng)
    extra = torch.full_like(logits[:, :1], -40.0)
    with_absent = torch.cat([logits, extra], dim=1)
    kept = call(name, with_absent, target, include_absent=True, smooth=1.0,
                reduction="none")
    plain = call(name, logits, target, smooth=1.0, reduction="none")
    assert kept[3].item() == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(kept[:3], plain, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ["dice_loss", "jaccard_loss", "tversky_loss",
                                  "focal_tversky_loss"])
def test_class_only_predicted(name):
    target = torch.tensor([[[0, 0, 1, 1]]])
    logits = perfect_logits(target, 3)
    logits[0, 2, 0, 0] = 100.0  # class 2 predicted on one pixel, absent from the target
    left_out = call(name, logits, target, reduction="none")
    assert torch.isnan(left_out[2])
    kept = call(name, logits, target, include_absent=True, reduction="none")
    assert kept[2].item() == pytest.approx(1.0)  # nothing right, only a false positive
    assert call(name, logits, target, include_absent=True) > call(name, logits, target)


def test_generalized_dice_absent_class_is_finite_and_penalised_on_request():
    target = torch.tensor([[[0, 0, 1, 1]]])
    logits = perfect_logits(target, 3)
    logits[0, 2, 0, 0] = 100.0
    left_out = L.generalized_dice_loss(logits, target)
    kept = L.generalized_dice_loss(logits, target, include_absent=True)
    assert torch.isfinite(left_out) and torch.isfinite(kept)
    assert kept > left_out + 0.05


def test_lovasz_class_selection():
    target = torch.tensor([[[0, 0, 1, 1]]])
    logits = perfect_logits(target, 3, scale=3.0)
    logits[0, 2, 0, 0] = 10.0
    present = L.lovasz_softmax(logits, target, reduction="none")
    every = L.lovasz_softmax(logits, target, classes="all", reduction="none")
    assert torch.isnan(present[2]) and every[2] > 0.9
    chosen = L.lovasz_softmax(logits, target, classes=[2], reduction="none")
    assert torch.isnan(chosen[:2]).all()
    torch.testing.assert_close(chosen[2], every[2])


def test_reductions(rng):
    logits, target = make_batch(rng)
    valid = target != 255
    for name in ("cross_entropy", "focal_loss", "distance_penalized_ce", "boundary_loss",
                 "hausdorff_dt_loss"):
        none = call(name, logits, target, reduction="none")
        assert none.shape == target.shape and (none[~valid] == 0).all()
        torch.testing.assert_close(call(name, logits, target, reduction="sum"), none.sum())
        if name != "cross_entropy":
            torch.testing.assert_close(call(name, logits, target), none.sum() / valid.sum())
    for name in ("dice_loss", "jaccard_loss", "lovasz_softmax"):
        for per_image in (False, True):
            none = call(name, logits, target, per_image=per_image, reduction="none")
            assert none.shape == ((2, 3) if per_image else (3,))
            torch.testing.assert_close(
                call(name, logits, target, per_image=per_image, reduction="sum"), none.nansum())
            mean = call(name, logits, target, per_image=per_image)
            expected = none.nanmean(-1).mean() if per_image else none.nanmean()
            torch.testing.assert_close(mean, expected)
    per_image = L.generalized_dice_loss(logits, target, per_image=True, reduction="none")
    assert per_image.shape == (2,)
    torch.testing.assert_close(L.generalized_dice_loss(logits, target, per_image=True),
                               per_image.mean())


def test_region_none_with_per_image_leaves_out_an_empty_image(rng):
    logits, target = make_batch(rng)
    target[1] = 255
    none = L.dice_loss(logits, target, per_image=True, reduction="none")
    assert torch.isnan(none[1]).all()
    torch.testing.assert_close(L.dice_loss(logits, target, per_image=True),
                               L.dice_loss(logits[:1], target[:1], per_image=True))


@pytest.mark.parametrize("name", list(LOSSES))
def test_float32_device_and_half(rng, device, name):
    logits, target = make_batch(rng, dtype=torch.float32, device=device)
    value = call(name, logits, target)
    assert value.dtype == torch.float32 and value.device.type == device.type
    reference = call(name, logits.double().cpu(), target.cpu())
    assert value.item() == pytest.approx(reference.item(), rel=1e-4, abs=1e-5)
    half = call(name, logits.half(), target)
    assert half.dtype == torch.float32 and torch.isfinite(half)


def test_combo_stays_finite_when_softmax_saturates():
    target = torch.tensor([[[0, 1]]])
    logits = torch.tensor([[[[0.0, 0.0]], [[50.0, 50.0]]]], requires_grad=True)  # float32
    value = L.combo_loss(logits, target)
    (grad,) = torch.autograd.grad(value, logits)
    assert torch.isfinite(value) and torch.isfinite(grad).all() and value > 1.0


# --------------------------------------------------------------------------- helpers


def test_class_weights_from_labels_hand_values():
    images = [np.array([[0, 0], [1, 1]]), np.array([[0, 0, 0, 2, 255]])]
    inverse = L.class_weights_from_labels(images, 4, method="inverse")
    torch.testing.assert_close(inverse, torch.tensor([8 / 15, 8 / 6, 8 / 3, 0.0],
                                                     dtype=torch.float64))
    # f = [5/8, 2/4, 1/4]; median 1/2
    median = L.class_weights_from_labels(images, 4)
    torch.testing.assert_close(median, torch.tensor([0.8, 1.0, 2.0, 0.0], dtype=torch.float64))
    root = L.class_weights_from_labels(images, 4, method="inverse_sqrt")
    torch.testing.assert_close(root, torch.tensor([(8 / 5) ** 0.5, 2.0, 8**0.5, 0.0],
                                                  dtype=torch.float64))
    batch = torch.tensor([[[0, 1], [1, 1]], [[1, 1], [255, 1]]])
    torch.testing.assert_close(L.class_weights_from_labels(batch, 2, method="inverse"),
                               torch.tensor([7 / 2, 7 / 12], dtype=torch.float64))
    nothing = L.class_weights_from_labels(np.full((2, 2), 255), 3)
    assert (nothing == 0).all()


def test_median_weights_even_number_of_classes():
    labels = np.array([[0, 0, 0, 0, 0, 0, 1, 1, 2, 3]])  # f = [.6, .2, .1, .1]
    torch.testing.assert_close(L.class_weights_from_labels(labels, 4),
                               torch.tensor([0.25, 0.75, 1.5, 1.5], dtype=torch.float64))


def test_distance_maps_match_brute_force(rng):
    labels = rng.integers(0, 3, size=(2, 5, 6))
    labels[0, 1:3, 1:4] = 1
    labels[1, 0, 0] = 255
    host = np.where(labels == 255, -1, labels)
    signed = L.signed_distance_maps(labels, 3)
    assert signed.shape == (2, 3, 5, 6) and signed.dtype == np.float64
    for n in range(2):
        for c in range(3):
            np.testing.assert_allclose(signed[n, c], oracle.signed_distance(host[n], c))
        np.testing.assert_allclose(L.inverted_distance_maps(labels)[n],
                                   oracle.inverted_distance(host[n]))
    np.testing.assert_allclose(L.unsigned_distance_maps(labels, 3), np.abs(signed))
    tensor = L.signed_distance_maps(torch.from_numpy(labels[0]), 3)
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (3, 5, 6)
    np.testing.assert_allclose(tensor.numpy(), signed[0])


def test_distance_maps_without_contour_are_zero():
    full = np.zeros((3, 3), dtype=np.int64)
    assert (L.signed_distance_maps(full, 2) == 0).all()
    assert (L.inverted_distance_maps(full) == 0).all()
    checker = np.indices((3, 3)).sum(0) % 2
    assert (L.inverted_distance_maps(checker) == 1).all()


def test_precomputed_maps_give_the_same_loss(rng):
    logits, target = make_batch(rng)
    signed = L.signed_distance_maps(target, 3).to(logits.dtype)
    torch.testing.assert_close(L.boundary_loss(logits, target, distance_maps=signed),
                               L.boundary_loss(logits, target))
    torch.testing.assert_close(
        L.hausdorff_dt_loss(logits, target, distance_maps=L.unsigned_distance_maps(target, 3)),
        L.hausdorff_dt_loss(logits, target))
    torch.testing.assert_close(
        L.distance_penalized_ce(logits, target, distance_maps=L.inverted_distance_maps(target)),
        L.distance_penalized_ce(logits, target))


# --------------------------------------------------------------------------- modules

MODULES = {
    "cross_entropy": (L.CrossEntropyLoss, {"class_weights": [1.0, 2.0, 0.5]}),
    "focal_loss": (L.FocalLoss, {"gamma": 1.5, "alpha": [0.2, 0.3, 0.5]}),
    "distance_penalized_ce": (L.DistancePenalizedCELoss, {"class_weights": [1.0, 2.0, 0.5]}),
    "dice_loss": (L.DiceLoss, {"squared": True, "per_image": True, "smooth": 0.1}),
    "generalized_dice_loss": (L.GeneralizedDiceLoss, {"include_absent": True}),
    "ce_dice_loss": (L.CEDiceLoss, {"ce_weight": 0.5, "class_weights": [1.0, 2.0, 0.5]}),
    "jaccard_loss": (L.JaccardLoss, {"smooth": 1.0}),
    "tversky_loss": (L.TverskyLoss, {"alpha": 0.1, "beta": 0.9}),
    "focal_tversky_loss": (L.FocalTverskyLoss, {"gamma": 2.0}),
    "lovasz_softmax": (L.LovaszSoftmaxLoss, {"classes": "all"}),
    "boundary_loss": (L.BoundaryLoss, {"reduction": "sum"}),
    "hausdorff_dt_loss": (L.HausdorffDTLoss, {"alpha": 1.0}),
    "combo_loss": (L.ComboLoss, {"alpha": 0.2, "beta": 0.9}),
    "exp_log_loss": (L.ExpLogLoss, {"gamma": 0.5, "class_weights": [1.0, 2.0, 0.5]}),
}


@pytest.mark.parametrize("name", list(MODULES))
def test_module_calls_its_function(rng, name):
    cls, settings = MODULES[name]
    logits, target = make_batch(rng)
    module = cls(**settings)
    torch.testing.assert_close(module(logits, target), getattr(L, name)(logits, target,
                                                                        **settings))
    assert cls.__name__ in repr(module)
    moved = module.double()
    assert moved(logits, target).dtype == torch.float64


def test_module_buffers_follow_the_module():
    module = L.CrossEntropyLoss(class_weights=[1.0, 2.0])
    assert "class_weights" in dict(module.named_buffers())
    assert module.state_dict() == {}
    assert "class_weights=tensor([1.0, 2.0])" in repr(module)


def test_public_names():
    for name in L.__all__:
        assert hasattr(L, name), name
    assert len([n for n in L.__all__ if n.endswith("Loss")]) == 15
    assert {"dense_crf_loss", "DenseCRFLoss"} <= set(L.__all__)
    assert set(LOSSES) - {"lovasz_softmax_per_image"} <= set(L.__all__)
