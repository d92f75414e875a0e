"""CRF-as-RNN: the fully connected CRF as a trainable layer (Zheng et al., 2015).

Mean-field inference of the dense CRF unrolled for ``n_iter`` steps, each a
differentiable function of the logits, the kernel weights, the label
compatibility and (optionally) the kernel widths.  The Gaussian filtering
runs on a permutohedral lattice in PyTorch (:mod:`crfseg.crf.lattice`):
the same code on CPU and CUDA, any number of classes, batches of different
images, no compiled extension.  The engine is the one behind
``DenseCRF(backend="torch")``, so an untrained layer with its default
settings reproduces DenseCRF's marginals.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import (
    check_bool,
    check_choice,
    check_floating_dtype,
    check_int,
    check_number,
    is_tensor,
    shape_of,
)
from crfseg.crf.dense import prepare_image
from crfseg.crf.lattice import NORMALIZATIONS
from crfseg.crf.mean_field import bilateral_features, mean_field, spatial_features

__all__ = ["CRFasRNN", "CRFWrapped", "with_crf"]


class CRFasRNN(nn.Module):
    """The dense CRF's mean-field inference as a layer: logits in, refined logits out.

    Each of ``n_iter`` steps computes ``Q = softmax(scores)``, filters it with
    a spatial Gaussian (width ``theta_gamma`` pixels) and a bilateral one
    (``theta_alpha`` pixels, ``theta_beta`` colour levels), weighs the two
    messages per class, applies the ``(C, C)`` label compatibility ``μ`` and
    subtracts the result from the input logits::

        scores = logits - (w_s * K_s Q + w_b * K_b Q) @ μ.T

    Parameters
    ----------
    num_classes : int
        Number of classes ``C`` (>= 2).
    n_iter : int, default 5
        Mean-field iterations in training mode.
    eval_n_iter : int, optional
        Iterations in eval mode (Zheng et al. train with 5 and test with 10);
        default ``n_iter``.
    theta_alpha : float, default 80
        Spatial standard deviation of the bilateral kernel, in pixels.
    theta_beta : float, default 13
        Colour standard deviation of the bilateral kernel, in 0–255 units.
    theta_gamma : float, default 3
        Standard deviation of the spatial kernel, in pixels.
    bilateral_weight : float, default 10
        Initial weight of the bilateral kernel (every class).
    spatial_weight : float, default 3
        Initial weight of the spatial kernel (every class).
    learn_compatibility : bool, default True
        Learn ``μ``, initialised to the Potts model ``1 - I``.
    learn_kernel_weights : bool, default True
        Learn one spatial and one bilateral weight per class.
    learn_thetas : bool, default False
        Learn the three widths through their logarithms (so they stay
        positive); gradients reach them through the lattice's barycentric
        weights.  The lattice filter is piecewise smooth in the widths: the
        gradient is exact while every pixel stays in its lattice simplex and
        ignores the jumps where one changes simplex (as densecrf's own
        kernel gradient does).
    normalization : {"symmetric", "before", "after", "none"}, default "symmetric"
        Kernel normalisation (densecrf's default is symmetric).
    deterministic : bool, default False
        Gather-based splat and slice, bitwise repeatable on CUDA (CPU
        results are repeatable either way).
    class_bias : (C,) sequence of float, optional
        Fixed offsets added to the input logits before inference (a buffer,
        not learned): a per-class recalibration such as
        ``unary_scale * DenseCRFParams.class_bias`` fitted by ``crfseg tune
        --class-bias``.  None: no offset (and no buffer).

    Every setting after ``num_classes`` is keyword-only.

    Attributes
    ----------
    compatibility : (C, C) Parameter or buffer
    spatial_weights, bilateral_weights : (C,) Parameter or buffer
    log_thetas : (3,) Parameter or buffer
        ``log`` of ``(theta_alpha, theta_beta, theta_gamma)``.
    class_bias : (C,) buffer
        Only when ``class_bias`` is given.

    References
    ----------
    S. Zheng, S. Jayasumana, B. Romera-Paredes, V. Vineet, Z. Su, D. Du,
    C. Huang and P. H. S. Torr, "Conditional Random Fields as Recurrent
    Neural Networks", ICCV 2015.

    P. Krähenbühl and V. Koltun, "Efficient Inference in Fully Connected CRFs
    with Gaussian Edge Potentials", NIPS 2011.

    Examples
    --------
    >>> import torch
    >>> crf = CRFasRNN(num_classes=4, n_iter=2)
    >>> logits = torch.randn(2, 4, 24, 32, requires_grad=True)
    >>> image = torch.rand(2, 3, 24, 32) * 255
    >>> refined = crf(logits, image)
    >>> refined.shape
    torch.Size([2, 4, 24, 32])
    >>> refined.sum().backward()
    >>> crf.compatibility.grad.shape
    torch.Size([4, 4])
    """

    def __init__(
        self,
        num_classes: int,
        *,
        n_iter: int = 5,
        eval_n_iter: int | None = None,
        theta_alpha: float = 80.0,
        theta_beta: float = 13.0,
        theta_gamma: float = 3.0,
        bilateral_weight: float = 10.0,
        spatial_weight: float = 3.0,
        learn_compatibility: bool = True,
        learn_kernel_weights: bool = True,
        learn_thetas: bool = False,
        normalization: str = "symmetric",
        deterministic: bool = False,
        class_bias: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, low=2)
        self.n_iter = check_int("n_iter", n_iter, low=0, high=2**31 - 1)
        self.eval_n_iter = (None if eval_n_iter is None
                            else check_int("eval_n_iter", eval_n_iter, low=0, high=2**31 - 1))
        thetas = [check_number(name, value, low=0, low_inclusive=False)
                  for name, value in (("theta_alpha", theta_alpha), ("theta_beta", theta_beta),
                                      ("theta_gamma", theta_gamma))]
        bilateral_weight = check_number("bilateral_weight", bilateral_weight)
        spatial_weight = check_number("spatial_weight", spatial_weight)
        check_choice("normalization", normalization, NORMALIZATIONS)
        self.normalization = normalization
        self.deterministic = check_bool("deterministic", deterministic)
        c = self.num_classes
        self._register("compatibility", 1.0 - torch.eye(c),
                       check_bool("learn_compatibility", learn_compatibility))
        learn_weights = check_bool("learn_kernel_weights", learn_kernel_weights)
        self._register("spatial_weights", torch.full((c,), spatial_weight), learn_weights)
        self._register("bilateral_weights", torch.full((c,), bilateral_weight), learn_weights)
        self._register("log_thetas", torch.tensor([math.log(t) for t in thetas]),
                       check_bool("learn_thetas", learn_thetas))
        if class_bias is not None:
            from crfseg.io import _check_class_factors

            bias = _check_class_factors("class_bias", class_bias, c, signed=True)
            self.register_buffer("class_bias", torch.tensor(bias))

    def _register(self, name: str, value: torch.Tensor, learn: bool) -> None:
        if learn:
            self.register_parameter(name, nn.Parameter(value))
        else:
            self.register_buffer(name, value)

    @property
    def theta_alpha(self) -> float:
        """Current spatial width of the bilateral kernel, in pixels."""
        return float(self.log_thetas[0].exp())

    @property
    def theta_beta(self) -> float:
        """Current colour width of the bilateral kernel, in 0–255 units."""
        return float(self.log_thetas[1].exp())

    @property
    def theta_gamma(self) -> float:
        """Current width of the spatial kernel, in pixels."""
        return float(self.log_thetas[2].exp())

    def extra_repr(self) -> str:
        return (f"num_classes={self.num_classes}, n_iter={self.n_iter}, "
                f"eval_n_iter={self.eval_n_iter}, normalization={self.normalization!r}")

    def _check_inputs(self, logits: Any, image: Any) -> None:
        for name, x in (("logits", logits), ("image", image)):
            if not is_tensor(x):
                raise TypeError(f"{name} must be a torch tensor, got {type(x).__name__}")
            if x.ndim != 4:
                raise ValueError(f"{name} must be (N, C, H, W), got shape {shape_of(x)}")
        check_floating_dtype("logits", logits)
        if logits.shape[1] != self.num_classes:
            raise ValueError(
                f"logits have C={logits.shape[1]} classes but the layer was built for "
                f"num_classes={self.num_classes}")
        num, _, height, width = logits.shape
        if image.shape[1] != 3:
            raise ValueError(f"image must be RGB (N, 3, H, W), got shape {shape_of(image)}")
        if image.shape[0] != num or tuple(image.shape[2:]) != (height, width):
            raise ValueError(
                f"image must match the logits' batch and spatial size (N, 3, H, W) = "
                f"({num}, 3, {height}, {width}), got shape {shape_of(image)}")
        for name, x in (("logits", logits), ("image", image)):
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise ValueError(f"{name} contains non-finite values (NaN or inf)")
        prepare_image(image, integers=False)

    def forward(self, logits: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Refine ``logits`` with mean field over the image's dense CRF.

        Parameters
        ----------
        logits : (N, C, H, W) float Tensor
            Unary scores (pre-softmax), e.g. a CNN's output.
        image : (N, 3, H, W) Tensor
            The RGB images, uint8 or float in 0–255 units, on the logits'
            device.

        Returns
        -------
        refined : (N, C, H, W) Tensor
            Refined logits (pre-softmax), float32 (float64 for float64
            logits); ``logits`` (plus the class bias, if any) when the
            iteration count is 0.
        """
        self._check_inputs(logits, image)
        n_iter = self.n_iter if self.training or self.eval_n_iter is None else self.eval_n_iter
        dtype = torch.float64 if logits.dtype == torch.float64 else torch.float32
        with torch.autocast(device_type=logits.device.type, enabled=False):
            scores = logits.to(dtype)
            if getattr(self, "class_bias", None) is not None:
                scores = scores + self.class_bias.to(dtype)[:, None, None]
            rgb = image.to(dtype)
            thetas = self.log_thetas.to(dtype).exp()
            num, _, height, width = scores.shape
            compat = self.compatibility.to(dtype)
            kernels = [
                (spatial_features(num, height, width, thetas[2], device=scores.device,
                                  dtype=dtype),
                 compat * self.spatial_weights.to(dtype)),
                (bilateral_features(rgb, thetas[0], thetas[1]),
                 compat * self.bilateral_weights.to(dtype)),
            ]
            return mean_field(scores, kernels, n_iter, normalization=self.normalization,
                              deterministic=self.deterministic)


class CRFWrapped(nn.Module):
    """A segmentation network followed by a CRF layer: ``crf(cnn(image), rgb)``.

    Usually built by :func:`with_crf`, which validates its arguments.

    Parameters
    ----------
    cnn : nn.Module
        Returns logits ``(N, C, h, w)`` or a dict with ``"out"``.
    crf : nn.Module
        Called as ``crf(logits, rgb)``, e.g. :class:`CRFasRNN`.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = CRFWrapped(nn.Conv2d(3, 2, 1), CRFasRNN(2, n_iter=1))
    >>> net(torch.rand(1, 3, 8, 8) * 255).shape
    torch.Size([1, 2, 8, 8])
    """

    def __init__(self, cnn: nn.Module, crf: nn.Module) -> None:
        super().__init__()
        self.cnn = cnn
        self.crf = crf

    @property
    def normalization(self) -> Any:
        """The network's input normalisation, when it declares one."""
        return getattr(self.cnn, "normalization", None)

    def forward(self, image: torch.Tensor, rgb: torch.Tensor | None = None) -> Any:
        """Logits of the network, refined by the CRF.

        Parameters
        ----------
        image : (N, 3, H, W) Tensor
            The network's input (normalised as the network expects).
        rgb : (N, 3, H, W) Tensor, optional
            The same images in 0–255 units for the CRF's bilateral kernel;
            default ``image`` itself (for networks fed 0–255 images).

        Returns
        -------
        Tensor or dict
            Refined logits ``(N, C, H, W)`` at the images' size (the
            network's logits are resized bilinearly first when they are
            smaller); a dict when the network returns one, with ``"out"``
            refined and the other entries kept.
        """
        output = self.cnn(image)
        logits = output["out"] if isinstance(output, dict) else output
        if not is_tensor(logits) or logits.ndim != 4:
            got = shape_of(logits) if is_tensor(logits) else type(logits).__name__
            raise ValueError(f"the network must return logits (N, C, H, W) or a dict with "
                             f"'out', got {got}")
        rgb = image if rgb is None else rgb
        if is_tensor(rgb) and rgb.ndim == 4 and tuple(logits.shape[-2:]) != tuple(rgb.shape[-2:]):
            logits = F.interpolate(logits, size=tuple(rgb.shape[-2:]), mode="bilinear",
                                   align_corners=False)
        refined = self.crf(logits, rgb)
        if isinstance(output, dict):
            output = type(output)(output)
            output["out"] = refined
            return output
        return refined


def with_crf(model: nn.Module, crf: nn.Module) -> CRFWrapped:
    """Append a CRF layer to a segmentation network, as one module.

    Parameters
    ----------
    model : nn.Module
        Any network returning logits ``(N, C, H, W)`` or a torchvision-style
        dict with ``"out"``.
    crf : nn.Module
        A layer called as ``crf(logits, rgb)``, typically :class:`CRFasRNN`.

    Returns
    -------
    CRFWrapped
        ``forward(image, rgb=None)``: the network on ``image``, then the CRF
        with the 0–255 ``rgb`` images (default ``image``).  ``.cnn`` and
        ``.crf`` give the parts back.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> net = with_crf(nn.Conv2d(3, 4, 3, padding=1), CRFasRNN(4, n_iter=1))
    >>> image = torch.rand(1, 3, 16, 16) * 255
    >>> net(image).shape
    torch.Size([1, 4, 16, 16])
    """
    for name, module in (("model", model), ("crf", crf)):
        if not isinstance(module, nn.Module):
            raise TypeError(f"{name} must be a torch nn.Module, got {type(module).__name__}")
    return CRFWrapped(model, crf)
