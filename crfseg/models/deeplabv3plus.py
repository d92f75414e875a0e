"""DeepLabV3+ (Chen et al., 2018): DeepLabV3's ASPP with a light decoder.

The ASPP output (output stride 16) is upsampled 4× and concatenated with the
stride-4 backbone features reduced to 48 channels; two 3×3 convolutions
refine the boundaries before the class scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.segmentation.deeplabv3 import ASPP

from crfseg.models._base import BackboneSegmentationModel, build_on_backbone, conv_bn_relu
from crfseg.models.backbones import RESNETS, Backbone
from crfseg.models.deeplabv3 import atrous_rates
from crfseg.models.weights import WeightsLike

__all__ = ["DeepLabV3Plus", "DeepLabV3PlusHead", "deeplabv3plus", "DEEPLABV3PLUS_BACKBONES"]

DEEPLABV3PLUS_BACKBONES = RESNETS + ("mobilenet_v3_large",)


class DeepLabV3PlusHead(nn.Module):
    """ASPP on the last stage, decoded with the stride-4 stage.

    Parameters
    ----------
    backbone : Backbone
        Its first stage of stride 4 gives the low-level features.
    num_classes : int
        Number of classes ``C``.
    channels : int, default 256
        Width of ASPP and of the decoder.
    low_level_channels : int, default 48
        Width the low-level features are reduced to.
    """

    def __init__(self, backbone: Backbone, num_classes: int, channels: int = 256,
                 low_level_channels: int = 48) -> None:
        super().__init__()
        self.low_index = backbone.reductions.index(4)
        self.aspp = ASPP(backbone.channels[-1], atrous_rates(backbone.reductions[-1]), channels)
        self.reduce = conv_bn_relu(backbone.channels[self.low_index], low_level_channels, 1)
        self.decoder = nn.Sequential(conv_bn_relu(channels + low_level_channels, channels),
                                     conv_bn_relu(channels, channels),
                                     nn.Conv2d(channels, num_classes, 1))

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at stride 4."""
        low = self.reduce(features[self.low_index])
        high = F.interpolate(self.aspp(features[-1]), size=low.shape[-2:], mode="bilinear",
                             align_corners=False)
        return self.decoder(torch.cat([high, low], dim=1))


class DeepLabV3Plus(BackboneSegmentationModel):
    """DeepLabV3+: ASPP encoder and a decoder with stride-4 features.

    Parameters
    ----------
    backbone : Backbone
        Any backbone with a stride-4 stage, usually at output stride 16.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.

    Notes
    -----
    As DeepLabV3, training needs batches of more than one image.

    References
    ----------
    L.-C. Chen, Y. Zhu, G. Papandreou, F. Schroff and H. Adam, "Encoder-Decoder
    with Atrous Separable Convolution for Semantic Image Segmentation", ECCV 2018.

    Examples
    --------
    >>> model = deeplabv3plus(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False) -> None:
        super().__init__(backbone, DeepLabV3PlusHead(backbone, num_classes), num_classes,
                         aux=aux)


def deeplabv3plus(*, num_classes: int, backbone: str = "resnet50",
                  output_stride: int | None = None, aux: bool = False,
                  backbone_weights: WeightsLike = None) -> DeepLabV3Plus:
    """DeepLabV3+ on a torchvision backbone.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet50"
        One of :data:`DEEPLABV3PLUS_BACKBONES`.
    output_stride : int, optional
        16 by default (8 and 32 allowed for ResNets, 32 for MobileNetV3).
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.

    Returns
    -------
    DeepLabV3Plus
    """
    return build_on_backbone(DeepLabV3Plus, "deeplabv3plus", choices=DEEPLABV3PLUS_BACKBONES,
                             preferred_stride=16, num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights)
