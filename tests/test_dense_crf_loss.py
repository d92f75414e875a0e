"""The dense CRF loss against the lattice operator written out, the exact Gaussian, its rules."""

from __future__ import annotations

import math

import pytest
import torch

from crfseg.crf import PermutohedralLattice
from crfseg.losses import DenseCRFLoss, dense_crf_loss
from crfseg.losses.functional import DENSE_CRF_SCALE


def features_of(image: torch.Tensor, sxy: float, srgb: float) -> torch.Tensor:
    """``(P, d)`` features of one image ``(K, *S)``: positions / sxy (x first, as densecrf
    orders them; the lattice is not symmetric in its axes), then intensities / srgb."""
    spatial = image.shape[1:]
    grids = torch.meshgrid(*[torch.arange(s, dtype=torch.float64) for s in spatial],
                           indexing="ij")
    columns = [g.reshape(-1) / sxy for g in grids[::-1]]
    columns += [channel.reshape(-1).double() / srgb for channel in image]
    return torch.stack(columns, 1)


def reference_loss(logits, image, sxy, srgb, roi=None, *, exact_gaussian=False):
    """``(N,)`` ``sum_k S_kᵀ W (1 - S_k)`` with ``W`` written out as a dense matrix.

    ``W`` is the lattice's operator (its filter of the identity) or, with
    ``exact_gaussian``, the Gaussian itself; its diagonal is zeroed.
    """
    losses = []
    for i in range(logits.shape[0]):
        feats = features_of(image[i], sxy, srgb)
        if exact_gaussian:
            w = torch.exp(-0.5 * torch.cdist(feats, feats) ** 2)
        else:
            points = feats.shape[0]
            w = PermutohedralLattice(feats).filter(torch.eye(points, dtype=torch.float64))
        w.fill_diagonal_(0.0)
        probs = torch.softmax(logits[i].double(), 0).reshape(logits.shape[1], -1)
        mask = torch.ones(probs.shape[1], dtype=torch.float64) if roi is None \
            else (roi[i].reshape(-1) != 0).double()
        inside, outside = probs * mask, (1 - probs) * mask
        losses.append((inside * (outside @ w.T)).sum())
    return torch.stack(losses)


def two_region_image(n, k, spatial, generator):
    """Dark left half, bright right half, a little noise: ``(n, k, *spatial)`` float64."""
    image = torch.full((n, k, *spatial), 40.0, dtype=torch.float64)
    image[..., spatial[-1] // 2:] = 200.0
    return image + 5.0 * torch.randn(image.shape, generator=generator, dtype=torch.float64)


@pytest.mark.parametrize("spatial,k", [((7, 9), 3), ((7, 9), 1), ((3, 4, 5), 1), ((3, 4, 5), 3)])
def test_equals_the_lattice_operator_without_its_diagonal(spatial, k):
    g = torch.Generator().manual_seed(1)
    image = two_region_image(2, k, spatial, g)
    logits = torch.randn((2, 3, *spatial), generator=g, dtype=torch.float64)
    roi = torch.rand((2, *spatial), generator=g) > 0.3
    for r in (None, roi):
        got = dense_crf_loss(logits, image, sxy=3.0, srgb=20.0, roi=r, reduction="none")
        expected = reference_loss(logits, image, 3.0, 20.0, r)
        torch.testing.assert_close(got, expected, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("spatial,k", [((12, 12), 1), ((4, 6, 6), 1), ((12, 12), 3),
                                       ((4, 6, 6), 3)])
def test_is_proportional_to_the_exact_gaussian_loss(spatial, k):
    g = torch.Generator().manual_seed(2)
    image = two_region_image(1, k, spatial, g)
    d = len(spatial) + k
    ratios = []
    for _ in range(3):
        logits = 2.0 * torch.randn((1, 3, *spatial), generator=g, dtype=torch.float64)
        got = dense_crf_loss(logits, image, sxy=3.0, srgb=15.0, reduction="sum")
        exact = reference_loss(logits, image, 3.0, 15.0, exact_gaussian=True).sum()
        ratios.append(float(got / exact))
    # one fixed multiple for every labelling of a scene, near the documented factor
    assert max(ratios) / min(ratios) < 1.05, ratios
    assert abs(sum(ratios) / 3 / DENSE_CRF_SCALE[d] - 1) < 0.2, (ratios, DENSE_CRF_SCALE[d])


def test_a_labelling_that_follows_the_edges_costs_less_than_one_that_cuts_them():
    image = torch.zeros(2, 3, 16, 16)
    image[..., 8:] = 255.0
    image[1] = image[1].transpose(1, 2).clone()
    follows = torch.zeros(2, 2, 16, 16)
    follows[:, 0] = 6.0 * (image[:, 0] == 0)
    follows[:, 1] = 6.0 * (image[:, 0] != 0)
    cuts = follows.transpose(2, 3)
    kept = dense_crf_loss(follows, image, sxy=5.0, reduction="none")
    cut = dense_crf_loss(cuts, image, sxy=5.0, reduction="none")
    assert (kept * 20 < cut).all(), (kept, cut)
    volume = image[:, :1, None].expand(2, 1, 4, 16, 16)
    follows3, cuts3 = follows[:, :, None].expand(2, 2, 4, 16, 16), cuts[:, :, None].expand(
        2, 2, 4, 16, 16)
    assert (dense_crf_loss(follows3, volume, sxy=5.0, reduction="none") * 20
            < dense_crf_loss(cuts3, volume, sxy=5.0, reduction="none")).all()


@pytest.mark.parametrize("spatial", [(4, 5), (2, 3, 4)])
def test_gradcheck_float64(spatial):
    g = torch.Generator().manual_seed(3)
    image = two_region_image(2, 2, spatial, g)
    logits = torch.randn((2, 3, *spatial), generator=g, dtype=torch.float64, requires_grad=True)
    roi = torch.ones((2, *spatial), dtype=torch.bool)
    roi[0, 0] = False
    for r in (None, roi):
        assert torch.autograd.gradcheck(
            lambda x, r=r: dense_crf_loss(x, image, sxy=2.0, srgb=30.0, roi=r), (logits,))


def test_roi_zeroes_the_contribution_and_the_gradient_of_masked_pixels():
    g = torch.Generator().manual_seed(4)
    image = two_region_image(2, 3, (10, 12), g)
    logits = torch.randn((2, 4, 10, 12), generator=g, dtype=torch.float64, requires_grad=True)
    roi = torch.ones(2, 10, 12, dtype=torch.bool)
    roi[:, :, 9:] = False
    roi[1, :3] = False
    loss = dense_crf_loss(logits, image, sxy=4.0, roi=roi, reduction="sum")
    (grad,) = torch.autograd.grad(loss, logits)
    assert (grad.permute(1, 0, 2, 3)[:, ~roi] == 0).all()
    assert (grad.permute(1, 0, 2, 3)[:, roi] != 0).any()
    changed = logits.detach().clone()
    changed.permute(1, 0, 2, 3)[:, ~roi] = 50.0 * torch.randn(4, int((~roi).sum()),
                                                              dtype=torch.float64)
    torch.testing.assert_close(dense_crf_loss(changed, image, sxy=4.0, roi=roi, reduction="sum"),
                               loss.detach(), rtol=1e-12, atol=0)
    # a float mask means the same as a boolean one; an empty roi gives 0 without NaN
    torch.testing.assert_close(dense_crf_loss(logits, image, sxy=4.0, roi=roi.double(),
                                              reduction="sum"), loss)
    empty = dense_crf_loss(logits, image, sxy=4.0, roi=torch.zeros_like(roi))
    (grad,) = torch.autograd.grad(empty, logits)
    assert empty.item() == 0.0 and (grad == 0).all()


def test_images_of_a_batch_never_mix_and_reductions_agree():
    g = torch.Generator().manual_seed(5)
    image = two_region_image(3, 3, (8, 10), g)
    logits = torch.randn((3, 2, 8, 10), generator=g, dtype=torch.float64)
    roi = torch.rand((3, 8, 10), generator=g) > 0.2
    each = dense_crf_loss(logits, image, sxy=5.0, roi=roi, reduction="none")
    alone = torch.cat([dense_crf_loss(logits[i:i + 1], image[i:i + 1], sxy=5.0,
                                      roi=roi[i:i + 1], reduction="none") for i in range(3)])
    torch.testing.assert_close(each, alone, rtol=1e-12, atol=1e-12)
    total = dense_crf_loss(logits, image, sxy=5.0, roi=roi, reduction="sum")
    torch.testing.assert_close(total, each.sum())
    torch.testing.assert_close(dense_crf_loss(logits, image, sxy=5.0, roi=roi),
                               total / roi.sum())
    torch.testing.assert_close(dense_crf_loss(logits, image, sxy=5.0),
                               dense_crf_loss(logits, image, sxy=5.0, reduction="sum") / 240)


def test_dtypes_and_the_module(device):
    g = torch.Generator().manual_seed(6)
    image = (255 * torch.rand((2, 3, 6, 7), generator=g)).to(torch.uint8).to(device)
    logits = torch.randn((2, 3, 6, 7), generator=g).to(device)
    value = dense_crf_loss(logits, image, sxy=3.0)
    assert value.dtype == torch.float32 and value.device == image.device
    torch.testing.assert_close(value.double(), dense_crf_loss(logits.double(), image, sxy=3.0),
                               rtol=1e-4, atol=0)
    assert dense_crf_loss(logits.half(), image, sxy=3.0).dtype == torch.float32
    module = DenseCRFLoss(sxy=3.0, srgb=15.0, reduction="none")
    assert "sxy=3.0" in repr(module)
    torch.testing.assert_close(module(logits, image),
                               dense_crf_loss(logits, image, sxy=3.0, reduction="none"))
    roi = torch.ones(2, 6, 7, dtype=torch.bool, device=device)
    roi[:, 0] = False
    torch.testing.assert_close(module(logits, image, roi),
                               dense_crf_loss(logits, image, sxy=3.0, roi=roi, reduction="none"))


def test_uniform_image_and_confident_uniform_labels_cost_nothing():
    image = torch.full((1, 3, 5, 5), 100.0)
    logits = torch.zeros(1, 2, 5, 5)
    logits[:, 0] = 30.0
    assert dense_crf_loss(logits, image).item() == pytest.approx(0.0, abs=1e-9)
    # undecided pixels pay for every affinity: C (1/C)(1 - 1/C) per pair
    half = dense_crf_loss(torch.zeros(1, 2, 5, 5, dtype=torch.float64),
                          image.double(), sxy=1e3, srgb=1e3, reduction="sum")
    assert math.isfinite(half.item()) and half.item() > 0


GOOD = {"logits": torch.zeros(1, 2, 4, 5), "image": torch.zeros(1, 3, 4, 5)}


@pytest.mark.parametrize("change,error,match", [
    ({"logits": [[0.0]]}, TypeError, "logits must be a torch.Tensor"),
    ({"logits": torch.zeros(2, 4, 5)}, ValueError, r"logits must be \(N, C, H, W\)"),
    ({"logits": torch.zeros(1, 2, 4, 5, dtype=torch.long)}, TypeError, "floating-point"),
    ({"logits": torch.zeros(1, 1, 4, 5), "image": torch.zeros(1, 3, 4, 5)}, ValueError,
     "at least 2 classes"),
    ({"logits": torch.zeros(0, 2, 4, 5), "image": torch.zeros(0, 3, 4, 5)}, ValueError,
     "must not be empty"),
    ({"image": torch.zeros(1, 3, 4, 6)}, ValueError, r"image must be \(N, K, H, W\)"),
    ({"image": torch.zeros(1, 3, 2, 4, 5)}, ValueError, r"image must be \(N, K, H, W\)"),
    ({"logits": torch.zeros(1, 2, 3, 4, 5)}, ValueError, r"image must be \(N, K, D, H, W\)"),
    ({"image": torch.zeros(1, 0, 4, 5)}, ValueError, "at least one channel"),
    ({"image": torch.zeros(1, 3, 4, 5, dtype=torch.bool)}, TypeError, "real intensities"),
    ({"image": "img"}, TypeError, "image must be a torch.Tensor"),
    ({"logits": torch.full((1, 2, 4, 5), math.nan)}, ValueError, "logits contains 40 non-finite"),
    ({"image": torch.full((1, 3, 4, 5), math.inf)}, ValueError, "image contains 60 non-finite"),
    ({"roi": torch.ones(1, 4, 4)}, ValueError, r"roi must have shape \(N, H, W\)"),
    ({"roi": torch.ones(1, 1, 4, 5)}, ValueError, r"roi must have shape"),
    ({"roi": torch.full((1, 4, 5), math.nan)}, ValueError, "roi contains"),
    ({"roi": torch.ones(1, 4, 5, dtype=torch.complex64)}, TypeError, "roi must be a boolean"),
    ({"roi": [[1]]}, TypeError, "roi must be a torch.Tensor"),
    ({"sxy": 0.0}, ValueError, "sxy must be > 0"),
    ({"sxy": "80"}, TypeError, "sxy must be a real number"),
    ({"srgb": -1.0}, ValueError, "srgb must be > 0"),
    ({"srgb": math.nan}, ValueError, "srgb must be finite"),
    ({"reduction": "max"}, ValueError, "reduction must be one of"),
])
def test_bad_input(change, error, match):
    args = {**GOOD, **change}
    logits, image = args.pop("logits"), args.pop("image")
    with pytest.raises(error, match=match):
        dense_crf_loss(logits, image, **args)


@pytest.mark.parametrize("settings,error,match", [
    ({"sxy": -2.0}, ValueError, "sxy must be > 0"),
    ({"srgb": None}, TypeError, "srgb must be a real number"),
    ({"reduction": "avg"}, ValueError, "reduction must be one of"),
])
def test_module_checks_its_settings_when_built(settings, error, match):
    with pytest.raises(error, match=match):
        DenseCRFLoss(**settings)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_inputs_on_different_devices():
    with pytest.raises(ValueError, match="image must be on the device of logits"):
        dense_crf_loss(GOOD["logits"].cuda(), GOOD["image"])
    with pytest.raises(ValueError, match="roi must be on the device of logits"):
        dense_crf_loss(GOOD["logits"], GOOD["image"], roi=torch.ones(1, 4, 5, device="cuda"))


@pytest.mark.parametrize("d", [2, 3, 5])
def test_lattice_diagonal_compiled_and_tensor_walks_match_the_filtered_identity(d):
    from crfseg.crf.lattice import PermutohedralLattice, compiled_engine_available
    from crfseg.losses._dense_crf import lattice_diagonal

    if not compiled_engine_available():
        pytest.skip("crfseg._lattice is not built")
    features = torch.randn(1, d, 6, 7, generator=torch.Generator().manual_seed(d),
                           dtype=torch.float64) * 1.5
    points = 6 * 7
    for engine in ("compiled", "tensor"):
        lattice = PermutohedralLattice(features, engine=engine)
        identity = torch.eye(points, dtype=torch.float64).reshape(points, 1, 6, 7)
        columns = [lattice.filter(identity[i:i + 1].expand(1, 1, 6, 7).contiguous())
                   .reshape(-1)[i] for i in range(points)]
        exact = torch.stack(columns)
        torch.testing.assert_close(lattice_diagonal(lattice).double(), exact, rtol=1e-9,
                                   atol=1e-12)
