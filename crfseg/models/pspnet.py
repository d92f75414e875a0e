"""Pyramid Scene Parsing Network (Zhao et al., 2017).

A dilated ResNet (output stride 8) followed by the pyramid pooling module:
the last feature map average-pooled to 1×1, 2×2, 3×3 and 6×6 bins, each
reduced by a 1×1 convolution, upsampled and concatenated with the map
itself.  ``aux=True`` adds the paper's deep-supervision head on the
second-to-last stage (:meth:`SegmentationModel.forward_aux`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from crfseg.models._base import BackboneSegmentationModel, build_on_backbone, conv_bn_relu
from crfseg.models.backbones import RESNETS, Backbone
from crfseg.models.weights import WeightsLike

__all__ = ["PSPNet", "PyramidPoolingModule", "PSPHead", "pspnet", "PSPNET_BACKBONES"]

PSPNET_BACKBONES = RESNETS + ("mobilenet_v3_large",)


class PyramidPoolingModule(nn.Module):
    """Concatenate a feature map with its pooled-and-upsampled pyramid.

    Parameters
    ----------
    in_channels : int
        Channels of the input map.
    bins : sequence of int, default (1, 2, 3, 6)
        Output sizes of the adaptive average poolings.
    branch_channels : int, optional
        Channels of each pooled branch; ``in_channels // len(bins)`` by default.

    Shapes
    ------
    ``(N, in_channels, h, w)`` → ``(N, in_channels + len(bins) * branch_channels, h, w)``
    (available as ``out_channels``).
    """

    def __init__(self, in_channels: int, bins: Sequence[int] = (1, 2, 3, 6),
                 branch_channels: int | None = None) -> None:
        super().__init__()
        branch_channels = branch_channels or in_channels // len(bins)
        self.branches = nn.ModuleList(
            nn.Sequential(nn.AdaptiveAvgPool2d(b), conv_bn_relu(in_channels, branch_channels, 1))
            for b in bins)
        self.out_channels = in_channels + len(bins) * branch_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [F.interpolate(branch(x), size=size, mode="bilinear", align_corners=False)
                  for branch in self.branches]
        return torch.cat([x, *pooled], dim=1)


class PSPHead(nn.Module):
    """Pyramid pooling → 3×3 conv (512) → dropout → 1×1 conv to the classes, on the last stage."""

    def __init__(self, in_channels: int, num_classes: int, channels: int = 512) -> None:
        super().__init__()
        self.ppm = PyramidPoolingModule(in_channels)
        self.classifier = nn.Sequential(conv_bn_relu(self.ppm.out_channels, channels),
                                        nn.Dropout2d(0.1), nn.Conv2d(channels, num_classes, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at the last stage's resolution."""
        return self.classifier(self.ppm(features[-1]))


class PSPNet(BackboneSegmentationModel):
    """PSPNet: a backbone and the pyramid pooling head.

    Parameters
    ----------
    backbone : Backbone
        Usually a dilated ResNet with output stride 8.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.

    Notes
    -----
    The 1×1 pooling branch has BatchNorm: in training mode a batch needs more
    than one image (torch refuses BatchNorm over a single value per channel).

    References
    ----------
    H. Zhao, J. Shi, X. Qi, X. Wang and J. Jia, "Pyramid Scene Parsing
    Network", CVPR 2017.

    Examples
    --------
    >>> model = pspnet(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False) -> None:
        super().__init__(backbone, PSPHead(backbone.channels[-1], num_classes), num_classes,
                         aux=aux)


def pspnet(*, num_classes: int, backbone: str = "resnet50", output_stride: int | None = None,
           aux: bool = False, backbone_weights: WeightsLike = None) -> PSPNet:
    """PSPNet on a torchvision backbone.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet50"
        One of :data:`PSPNET_BACKBONES`.
    output_stride : int, optional
        8 by default (the paper's), 16 or 32 allowed; MobileNetV3 gives 16 at best.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.

    Returns
    -------
    PSPNet
    """
    return build_on_backbone(PSPNet, "pspnet", choices=PSPNET_BACKBONES, preferred_stride=8,
                             num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights)
