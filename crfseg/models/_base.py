"""The small base every crfseg segmentation network shares.

:class:`SegmentationModel` checks the input, pads it when the architecture
needs sizes divisible by some factor, and returns logits at the input's
resolution; subclasses only implement ``_forward``.
:class:`BackboneSegmentationModel` is torchvision's ``_SimpleSegmentationModel``
for crfseg: a backbone, a head over its stage outputs and an optional
auxiliary head.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import check_bool, check_int, shape_of
from crfseg.models.backbones import OUTPUT_STRIDES, Backbone, build_backbone
from crfseg.models.weights import WeightsLike

__all__ = [
    "SegmentationModel",
    "BackboneSegmentationModel",
    "FCNHead",
    "IMAGENET_NORMALIZATION",
    "conv_bn_relu",
    "check_backbone_options",
    "reject_backbone_options",
    "build_on_backbone",
]

#: Mean and standard deviation (of images scaled to [0, 1]) every torchvision backbone expects.
IMAGENET_NORMALIZATION: dict[str, tuple[float, ...]] = {
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
}


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3,
                 dilation: int = 1) -> nn.Sequential:
    """Convolution (size-preserving padding, no bias) → BatchNorm → ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, padding=dilation * (kernel_size // 2),
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SegmentationModel(nn.Module):
    """Base class: ``forward(x)`` gives logits ``(N, C, H, W)`` at the input's size.

    Parameters
    ----------
    num_classes : int
        Number of output channels ``C``.
    in_channels : int, default 3
        Channels the network expects in its input.
    size_divisor : int, default 1
        When greater than 1 the input is zero-padded at the bottom and right
        to a multiple of it (architectures whose unpooling needs even sizes),
        and the output cropped back.
    min_size : int, default 1
        Smallest height and width the architecture accepts (its poolings
        must not reduce a side to zero); smaller inputs raise a ValueError.

    Attributes
    ----------
    normalization : dict
        ``{"mean": ..., "std": ...}`` applied to images scaled to [0, 1]
        before they enter the network (ImageNet's by default).
    class_names : tuple of str or None
        Set by :func:`crfseg.models.load_checkpoint` when the checkpoint has them.
    palette : (K, 3) uint8 ndarray or None
        Set by :func:`crfseg.models.load_checkpoint` when the checkpoint has one.
    build_config : dict or None
        The :func:`crfseg.models.get_model` arguments that rebuild this model.
    checkpoint_extra : dict
        The ``extra`` data of the checkpoint it was loaded from (empty otherwise).
    """

    def __init__(self, num_classes: int, in_channels: int = 3, size_divisor: int = 1,
                 min_size: int = 1) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes, low=1)
        self.in_channels = check_int("in_channels", in_channels, low=1)
        self.size_divisor = check_int("size_divisor", size_divisor, low=1)
        self.min_size = check_int("min_size", min_size, low=1)
        self.normalization: dict[str, tuple[float, ...]] = dict(IMAGENET_NORMALIZATION)
        self.class_names: tuple[str, ...] | None = None
        self.palette: Any = None
        self.build_config: dict[str, Any] | None = None
        self.checkpoint_extra: dict[str, Any] = {}

    def check_input(self, x: Any) -> None:
        """Raise a clear error unless ``x`` is a float ``(N, in_channels, H, W)`` tensor."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"x must be (N, {self.in_channels}, H, W) for {type(self).__name__} "
                f"with in_channels={self.in_channels}, got shape {shape_of(x)}"
            )
        if not x.is_floating_point():
            raise TypeError(f"x must be a floating-point tensor, got dtype {x.dtype}; "
                            "normalise images before the network")
        if x.shape[0] < 1 or x.shape[2] < 1 or x.shape[3] < 1:
            raise ValueError(f"x must not be empty, got shape {shape_of(x)}")
        if min(x.shape[2], x.shape[3]) < self.min_size:
            raise ValueError(
                f"{type(self).__name__} needs inputs of at least {self.min_size}x{self.min_size} "
                f"pixels (its poolings would empty smaller ones), got shape {shape_of(x)}; "
                "pad or resize the image"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes, H, W)`` of a batch ``x`` of ``(N, in_channels, H, W)``."""
        return self._run(x, with_aux=False)[0]

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits and auxiliary-head logits (``None`` without one), both ``(N, C, H, W)``.

        The auxiliary output is the deep-supervision loss term of PSPNet and
        torchvision's ``aux_loss``; :meth:`forward` skips computing it.
        """
        return self._run(x, with_aux=True)

    def _run(self, x: torch.Tensor, with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        self.check_input(x)
        height, width = x.shape[-2:]
        x = _pad_to_multiple(x, self.size_divisor)
        out, aux = self._forward(x, with_aux)
        size = x.shape[-2:]
        out = _resize_and_crop(out, size, height, width)
        if aux is not None:
            aux = _resize_and_crop(aux, size, height, width)
        return out, aux

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (at any resolution, resized by the caller) and optional auxiliary logits."""
        raise NotImplementedError


def _pad_to_multiple(x: torch.Tensor, divisor: int) -> torch.Tensor:
    pad_h = -x.shape[-2] % divisor
    pad_w = -x.shape[-1] % divisor
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h))
    return x


def _resize_and_crop(out: torch.Tensor, size: Sequence[int], height: int,
                     width: int) -> torch.Tensor:
    if tuple(out.shape[-2:]) != tuple(size):
        out = F.interpolate(out, size=tuple(size), mode="bilinear", align_corners=False)
    return out[..., :height, :width]


class FCNHead(nn.Sequential):
    """3×3 conv (in/4 channels) → BN → ReLU → dropout → 1×1 conv: FCN's and the auxiliary head.

    Parameters
    ----------
    in_channels : int
        Channels of the feature map.
    num_classes : int
        Output channels.
    """

    def __init__(self, in_channels: int, num_classes: int) -> None:
        inter = max(in_channels // 4, 16)
        super().__init__(conv_bn_relu(in_channels, inter), nn.Dropout2d(0.1),
                         nn.Conv2d(inter, num_classes, 1))


class BackboneSegmentationModel(SegmentationModel):
    """A backbone, a head over all its stage outputs, and an optional auxiliary head.

    Parameters
    ----------
    backbone : Backbone
        The feature extractor.
    head : nn.Module
        Called with the list of stage outputs; returns ``(N, C, h, w)`` logits.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Add an :class:`FCNHead` on the second-to-last stage (deep supervision).
    size_divisor : int, default 1
        See :class:`SegmentationModel`.
    """

    def __init__(self, backbone: Backbone, head: nn.Module, num_classes: int, *,
                 aux: bool = False, size_divisor: int = 1) -> None:
        # VGG's poolings round down: below 32 pixels its last stage is empty.
        min_size = 32 if backbone.name.startswith("vgg") else 1
        super().__init__(num_classes, 3, size_divisor, min_size)
        self.backbone = backbone
        self.head = head
        self.aux_head = FCNHead(backbone.channels[-2], num_classes) if aux else None

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self.backbone(x)
        out = self.head(features)
        aux = self.aux_head(features[-2]) if with_aux and self.aux_head is not None else None
        return out, aux


def check_backbone_options(arch: str, *, num_classes: int, backbone: str,
                           choices: Sequence[str], output_stride: int | None,
                           preferred_stride: int, aux: bool) -> int:
    """Validate an architecture's arguments before building; return the output stride to use.

    ``output_stride=None`` picks ``preferred_stride`` when the backbone can
    give it, else the smallest stride the backbone supports.
    """
    check_int("num_classes", num_classes, low=1)
    check_bool("aux", aux)
    if not isinstance(backbone, str) or backbone not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ValueError(f"unknown backbone {backbone!r} for {arch}; choose from {listed}")
    strides = OUTPUT_STRIDES[backbone]
    if output_stride is None:
        return preferred_stride if preferred_stride in strides else min(strides)
    if isinstance(output_stride, bool) or output_stride not in strides:
        listed = ", ".join(str(s) for s in strides)
        raise ValueError(
            f"output_stride={output_stride!r} is not available for {arch} on {backbone}; "
            f"choose from {listed}"
        )
    return int(output_stride)


def reject_backbone_options(arch: str, *, num_classes: int, backbone: Any = None,
                            output_stride: Any = None, aux: bool = False,
                            backbone_weights: Any = None) -> None:
    """Validate an architecture built as in its paper, which takes no backbone options."""
    check_int("num_classes", num_classes, low=1)
    check_bool("aux", aux)
    given = {"backbone": backbone, "output_stride": output_stride,
             "backbone_weights": backbone_weights}
    for name, value in given.items():
        if value is not None:
            raise ValueError(
                f"{arch} is built as in its paper and has no {name} option; got {name}={value!r}"
            )
    if aux:
        raise ValueError(f"{arch} has no auxiliary head; got aux=True")


def build_on_backbone(model_cls: type, arch: str, *, choices: Sequence[str],
                      preferred_stride: int, num_classes: int, backbone: str,
                      output_stride: int | None, aux: bool, backbone_weights: WeightsLike,
                      fc_conv: bool = False, **model_kwargs: Any) -> SegmentationModel:
    """The common builder: validate, build the backbone, then ``model_cls(backbone, ...)``."""
    stride = check_backbone_options(arch, num_classes=num_classes, backbone=backbone,
                                    choices=choices, output_stride=output_stride,
                                    preferred_stride=preferred_stride, aux=aux)
    net = build_backbone(backbone, output_stride=stride, weights=backbone_weights,
                         fc_conv=fc_conv)
    return model_cls(net, num_classes, aux=aux, **model_kwargs)
