"""CRFasRNN and with_crf: DenseCRF agreement, gradients, batches, training, errors."""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from crfseg.crf import DenseCRF
from crfseg.datasets import SyntheticShapes
from crfseg.losses.functional import cross_entropy
from crfseg.metrics import iou_score
from crfseg.models import CRFasRNN, CRFWrapped, with_crf


def _inputs(num=2, classes=3, height=12, width=14, seed=0, dtype=torch.float32):
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(num, classes, height, width, generator=gen, dtype=dtype)
    image = torch.rand(num, 3, height, width, generator=gen, dtype=dtype) * 255
    return logits, image


def test_untrained_layer_equals_densecrf(rng):
    logits, image = _inputs(num=2, classes=4, height=30, width=40)
    refined = CRFasRNN(4).eval()(logits, image)
    expected = DenseCRF(backend="torch").refine(logits, image)
    # the layer's Potts form 1 - I differs from DenseCRF's -I by a constant per pixel, which
    # the softmax removes up to float32 rounding
    torch.testing.assert_close(torch.softmax(refined, 1), expected, atol=1e-4, rtol=0)
    # and so pydensecrf's marginals, image by image
    rgb = image.round().to(torch.uint8)
    refined = CRFasRNN(4)(logits, rgb)
    for i in range(2):
        reference = DenseCRF().refine(logits[i].numpy(), rgb[i].permute(1, 2, 0).numpy())
        np.testing.assert_allclose(torch.softmax(refined[i], 0).detach().numpy(), reference,
                                   atol=1e-4)


def test_gradcheck_logits_and_parameters():
    # The lattice is piecewise smooth in the kernel widths (a point that changes simplex
    # changes the lattice), so the widths are checked at a generic point, away from the
    # exact binary fractions where grid positions sit on simplex boundaries.
    crf = CRFasRNN(3, n_iter=3, theta_alpha=3.7, theta_beta=31.3, theta_gamma=1.7,
                   learn_thetas=True).double()
    logits, image = _inputs(num=2, classes=3, height=5, width=6, dtype=torch.float64)
    logits.requires_grad_()
    params = {name: p.detach().clone().requires_grad_() for name, p in crf.named_parameters()}
    gamma = params.pop("log_thetas")[2:].detach()
    alpha_beta = crf.log_thetas[:2].detach().clone().requires_grad_()

    def run(logits, compat, spatial, bilateral, alpha_beta):
        state = {"compatibility": compat, "spatial_weights": spatial,
                 "bilateral_weights": bilateral, "log_thetas": torch.cat([alpha_beta, gamma])}
        return functional_call(crf, state, (logits, image))

    inputs = (logits, params["compatibility"], params["spatial_weights"],
              params["bilateral_weights"], alpha_beta)
    assert torch.autograd.gradcheck(run, inputs, fast_mode=True)


def test_gradients_reach_every_parameter():
    crf = CRFasRNN(3, n_iter=2, theta_alpha=5.0, learn_thetas=True)
    logits, image = _inputs()
    logits.requires_grad_()
    target = torch.randint(0, 3, (2, 12, 14), generator=torch.Generator().manual_seed(1))
    F.cross_entropy(crf(logits, image), target).backward()
    assert logits.grad is not None and bool(logits.grad.abs().sum() > 0)
    names = {name for name, _ in crf.named_parameters()}
    assert names == {"compatibility", "spatial_weights", "bilateral_weights", "log_thetas"}
    for name, param in crf.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


def test_fixed_parameters_are_buffers():
    crf = CRFasRNN(5, learn_compatibility=False, learn_kernel_weights=False)
    assert [name for name, _ in crf.named_parameters()] == []
    assert {name for name, _ in crf.named_buffers()} == {
        "compatibility", "spatial_weights", "bilateral_weights", "log_thetas"}
    torch.testing.assert_close(crf.compatibility, 1 - torch.eye(5))
    assert crf.theta_alpha == pytest.approx(80.0)
    assert crf.theta_beta == pytest.approx(13.0)
    assert crf.theta_gamma == pytest.approx(3.0)


@pytest.mark.parametrize("classes", [2, 7, 40])
def test_any_class_count_and_batches_of_different_images(classes):
    logits, image = _inputs(num=3, classes=classes, height=10, width=9, seed=classes)
    crf = CRFasRNN(classes, n_iter=3, theta_alpha=6.0)
    batched = crf(logits, image)
    assert batched.shape == logits.shape and batched.dtype == torch.float32
    for i in range(3):
        single = crf(logits[i:i + 1], image[i:i + 1])
        torch.testing.assert_close(batched[i:i + 1], single, atol=1e-5, rtol=1e-5)


def test_bitwise_repeatable_on_cpu():
    logits, image = _inputs(num=2, classes=4, height=16, width=16)
    results = []
    for _ in range(2):
        crf = CRFasRNN(4, n_iter=3, learn_thetas=True)
        x = logits.clone().requires_grad_()
        out = crf(x, image)
        out.square().sum().backward()
        results.append((out.detach(), x.grad, crf.compatibility.grad, crf.log_thetas.grad))
    for first, second in zip(*results):
        assert torch.equal(first, second)


def test_iteration_counts():
    logits, image = _inputs()
    assert torch.equal(CRFasRNN(3, n_iter=0)(logits, image), logits)
    with pytest.raises(ValueError, match="n_iter must be <= 2147483647"):
        CRFasRNN(3, n_iter=2**31)
    with pytest.raises(ValueError, match="eval_n_iter must be <= 2147483647"):
        CRFasRNN(3, eval_n_iter=2**31)
    crf = CRFasRNN(3, n_iter=1, eval_n_iter=4)
    train_out = crf.train()(logits, image)
    eval_out = crf.eval()(logits, image)
    torch.testing.assert_close(train_out, CRFasRNN(3, n_iter=1)(logits, image))
    torch.testing.assert_close(eval_out, CRFasRNN(3, n_iter=4)(logits, image), atol=1e-4,
                               rtol=1e-5)
    assert "eval_n_iter=4" in repr(crf)


def test_class_bias_is_a_fixed_offset_on_the_input_logits():
    logits, image = _inputs(classes=3)
    bias = torch.tensor([0.5, -1.0, 2.0])
    assert torch.equal(CRFasRNN(3, n_iter=0, class_bias=bias.tolist())(logits, image),
                       logits + bias[:, None, None])
    crf = CRFasRNN(3, n_iter=2, class_bias=bias.tolist())
    torch.testing.assert_close(crf(logits, image),
                               CRFasRNN(3, n_iter=2)(logits + bias[:, None, None], image))
    # a buffer: saved with the layer, never trained
    assert "class_bias" in crf.state_dict()
    assert "class_bias" not in dict(crf.named_parameters())
    assert "class_bias" not in CRFasRNN(3).state_dict()
    crf(logits, image).sum().backward()
    assert crf.compatibility.grad is not None
    with pytest.raises(ValueError, match="class_bias has 2 offsets but there are "
                                         "num_classes=3 classes"):
        CRFasRNN(3, class_bias=[0.0, 1.0])
    with pytest.raises(ValueError, match=r"class_bias\[0\] must be finite"):
        CRFasRNN(2, class_bias=[float("nan"), 1.0])
    with pytest.raises(TypeError, match="class_bias must be a sequence of one offset per class"):
        CRFasRNN(2, class_bias=1.0)


def test_float64_and_half_inputs():
    logits, image = _inputs(dtype=torch.float64)
    out = CRFasRNN(3, n_iter=2)(logits, image)
    assert out.dtype == torch.float64
    half = CRFasRNN(3, n_iter=2)(logits.half(), image.round().to(torch.uint8))
    assert half.dtype == torch.float32


def test_deterministic_mode_matches(device):
    logits, image = _inputs(num=2, classes=4, height=20, width=18)
    expected = CRFasRNN(4, n_iter=3)(logits, image)
    for deterministic in (False, True):
        crf = CRFasRNN(4, n_iter=3, deterministic=deterministic).to(device)
        out = crf(logits.to(device), image.to(device))
        assert out.device.type == device.type
        torch.testing.assert_close(out.cpu(), expected, atol=1e-4, rtol=1e-5)
        if deterministic:
            assert torch.equal(out, crf(logits.to(device), image.to(device)))


class _TinyNet(nn.Module):
    def __init__(self, classes, as_dict=False, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(3, classes, 3, padding=1, stride=stride)
        self.as_dict = as_dict
        self.normalization = {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}

    def forward(self, x):
        out = self.conv(x)
        if self.as_dict:
            return OrderedDict(out=out, aux=out * 2)
        return out


def test_with_crf_wraps_tensor_and_dict_outputs():
    _, image = _inputs(num=2, classes=3, height=16, width=16)
    crf = CRFasRNN(3, n_iter=2)
    net = with_crf(_TinyNet(3), crf)
    assert isinstance(net, CRFWrapped) and net.cnn is not None and net.crf is crf
    assert net.normalization == {"mean": (0.5, 0.5, 0.5), "std": (0.25, 0.25, 0.25)}
    inputs = (image / 255 - 0.5) / 0.25
    out = net(inputs, image)
    torch.testing.assert_close(out, crf(net.cnn(inputs), image))
    dict_net = with_crf(_TinyNet(3, as_dict=True), crf)
    dict_net.cnn.conv = net.cnn.conv
    result = dict_net(inputs, image)
    assert isinstance(result, OrderedDict) and set(result) == {"out", "aux"}
    torch.testing.assert_close(result["out"], out)
    torch.testing.assert_close(result["aux"], net.cnn(inputs) * 2)
    # logits at a coarser stride are resized to the images first
    coarse = with_crf(_TinyNet(3, stride=2), crf)
    assert coarse(image).shape == (2, 3, 16, 16)
    out.sum().backward()
    assert net.cnn.conv.weight.grad is not None and crf.compatibility.grad is not None


def _coarse_noisy_logits(target, classes, seed, factor=8):
    """What a CNN at output stride 8 might say: blocky, blurred, noisy."""
    gen = torch.Generator().manual_seed(seed)
    onehot = F.one_hot(target, classes).permute(0, 3, 1, 2).float()
    coarse = F.interpolate(F.avg_pool2d(onehot, factor), size=target.shape[-2:],
                           mode="bilinear", align_corners=False)
    return 3.0 * torch.log(coarse + 0.1) + torch.randn(coarse.shape, generator=gen)


def _scenes(num, seed, classes=4, size=48):
    data = SyntheticShapes(num_images=num, size=size, num_classes=classes, seed=seed,
                           max_objects=4)
    images = torch.stack([data[i][0] for i in range(num)]).float()
    target = torch.stack([data[i][1] for i in range(num)]).long()
    return images, target, _coarse_noisy_logits(target, classes, seed)


def test_training_the_layer_beats_raw_unaries_and_the_untrained_crf():
    classes = 4
    train_images, train_target, train_logits = _scenes(32, seed=0)
    test_images, test_target, test_logits = _scenes(16, seed=1)
    torch.manual_seed(0)
    crf = CRFasRNN(classes)  # the default settings, as a user starts

    def miou(logits):
        return iou_score(logits.argmax(1), test_target, classes)

    with torch.no_grad():
        raw = miou(test_logits)
        untrained = miou(crf.eval()(test_logits, test_images))
    optimizer = torch.optim.Adam(crf.parameters(), lr=0.05)
    crf.train()
    for _ in range(200):
        batch = torch.randint(0, 32, (4,))
        loss = cross_entropy(crf(train_logits[batch], train_images[batch]), train_target[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        trained = miou(crf.eval()(test_logits, test_images))
    assert untrained > raw + 0.05
    assert trained > untrained + 0.01


def test_errors():
    logits, image = _inputs()
    with pytest.raises(ValueError, match="num_classes must be >= 2"):
        CRFasRNN(1)
    with pytest.raises(TypeError, match="num_classes must be an integer"):
        CRFasRNN(3.0)
    with pytest.raises(ValueError, match="n_iter must be >= 0"):
        CRFasRNN(3, n_iter=-1)
    with pytest.raises(ValueError, match="eval_n_iter must be >= 0"):
        CRFasRNN(3, eval_n_iter=-2)
    with pytest.raises(ValueError, match="theta_alpha must be > 0"):
        CRFasRNN(3, theta_alpha=0.0)
    with pytest.raises(ValueError, match="theta_beta must be finite"):
        CRFasRNN(3, theta_beta=float("inf"))
    with pytest.raises(ValueError, match="theta_gamma must be finite"):
        CRFasRNN(3, theta_gamma=float("nan"))
    with pytest.raises(ValueError, match="bilateral_weight must be finite"):
        CRFasRNN(3, bilateral_weight=float("nan"))
    with pytest.raises(ValueError, match="spatial_weight must be finite"):
        CRFasRNN(3, spatial_weight=float("-inf"))
    with pytest.raises(TypeError, match="learn_thetas must be a bool"):
        CRFasRNN(3, learn_thetas="yes")
    with pytest.raises(TypeError, match="deterministic must be a bool"):
        CRFasRNN(3, deterministic=1)
    with pytest.raises(ValueError, match="normalization must be one of"):
        CRFasRNN(3, normalization="l2")
    crf = CRFasRNN(3, n_iter=1)
    with pytest.raises(TypeError, match="logits must be a torch tensor"):
        crf(logits.numpy(), image)
    with pytest.raises(ValueError, match=r"logits must be \(N, C, H, W\)"):
        crf(logits[0], image)
    with pytest.raises(TypeError, match="logits must be a floating-point"):
        crf(logits.long(), image)
    with pytest.raises(ValueError, match="logits have C=4 classes but the layer was built for"):
        crf(torch.cat([logits, logits[:, :1]], 1), image)
    with pytest.raises(ValueError, match=r"image must be RGB \(N, 3, H, W\)"):
        crf(logits, image[:, :2])
    with pytest.raises(ValueError, match="image must match the logits' batch and spatial size"):
        crf(logits, image[:1])
    with pytest.raises(ValueError, match="image must match the logits' batch and spatial size"):
        crf(logits, image[..., :-1])
    with pytest.raises(TypeError, match="image must be uint8 or a float tensor"):
        crf(logits, image.long())
    bad = logits.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="logits contains non-finite"):
        crf(bad, image)
    with pytest.raises(ValueError, match="image contains non-finite"):
        crf(logits, image.clone().fill_(float("inf")))
    with pytest.warns(UserWarning, match="outside 0-255"):
        crf(logits, image * 2)
    with pytest.warns(UserWarning, match=r"lie in \[0, 1\]"):
        crf(logits, image / 255)
    with pytest.raises(TypeError, match="model must be a torch nn.Module"):
        with_crf(lambda x: x, crf)
    with pytest.raises(TypeError, match="crf must be a torch nn.Module"):
        with_crf(_TinyNet(3), DenseCRF())
    broken = with_crf(nn.Flatten(), crf)
    with pytest.raises(ValueError, match=r"the network must return logits \(N, C, H, W\)"):
        broken(image)
