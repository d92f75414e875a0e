"""DeepLabV3 (Chen et al., 2017): atrous spatial pyramid pooling on a dilated backbone.

The head is torchvision's ``DeepLabHead`` (ASPP with rates 6/12/18 at output
stride 16, doubled at 8, and image pooling, then a 3×3 convolution); the
backbone is any of :data:`DEEPLABV3_BACKBONES` at output stride 8, 16 or 32.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from crfseg.models._base import BackboneSegmentationModel, build_on_backbone
from crfseg.models.backbones import RESNETS, Backbone
from crfseg.models.weights import WeightsLike

__all__ = ["DeepLabV3", "DeepLabV3Head", "deeplabv3", "atrous_rates", "DEEPLABV3_BACKBONES"]

DEEPLABV3_BACKBONES = RESNETS + ("mobilenet_v3_large",)


def atrous_rates(output_stride: int) -> tuple[int, int, int]:
    """ASPP dilation rates for an output stride: (6, 12, 18) at 16, scaled as 16/stride.

    Examples
    --------
    >>> atrous_rates(8)
    (12, 24, 36)
    """
    scale = 16 / output_stride
    return tuple(max(1, round(rate * scale)) for rate in (6, 12, 18))


class DeepLabV3Head(nn.Module):
    """torchvision's ``DeepLabHead`` on the last stage, with rates for its stride."""

    def __init__(self, backbone: Backbone, num_classes: int) -> None:
        super().__init__()
        self.head = DeepLabHead(backbone.channels[-1], num_classes,
                                atrous_rates(backbone.reductions[-1]))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at the last stage's resolution."""
        return self.head(features[-1])


class DeepLabV3(BackboneSegmentationModel):
    """DeepLabV3: a backbone and an ASPP head.

    Parameters
    ----------
    backbone : Backbone
        Usually a ResNet at output stride 8 or 16.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.

    Notes
    -----
    The image-pooling branch has BatchNorm over a 1×1 map: in training mode a
    batch needs more than one image.

    References
    ----------
    L.-C. Chen, G. Papandreou, F. Schroff and H. Adam, "Rethinking Atrous
    Convolution for Semantic Image Segmentation", arXiv:1706.05587, 2017.

    Examples
    --------
    >>> model = deeplabv3(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False) -> None:
        super().__init__(backbone, DeepLabV3Head(backbone, num_classes), num_classes, aux=aux)


def deeplabv3(*, num_classes: int, backbone: str = "resnet50", output_stride: int | None = None,
              aux: bool = False, backbone_weights: WeightsLike = None) -> DeepLabV3:
    """DeepLabV3 on a torchvision backbone.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet50"
        One of :data:`DEEPLABV3_BACKBONES`.
    output_stride : int, optional
        16 by default (8 and 32 allowed for ResNets, 32 for MobileNetV3).
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.

    Returns
    -------
    DeepLabV3
    """
    return build_on_backbone(DeepLabV3, "deeplabv3", choices=DEEPLABV3_BACKBONES,
                             preferred_stride=16, num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights)
