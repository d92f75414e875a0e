"""UperNet (Xiao et al., 2018): a feature pyramid with pyramid pooling on top.

The last stage goes through PSPNet's pyramid pooling module; a top-down
feature pyramid (1×1 lateral convolutions, upsample-and-add, 3×3 smoothing)
brings it down to stride 4, where all pyramid levels are upsampled,
concatenated and fused by a 3×3 convolution before the class scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import check_int
from crfseg.models._base import BackboneSegmentationModel, build_on_backbone, conv_bn_relu
from crfseg.models.backbones import RESNETS, Backbone
from crfseg.models.pspnet import PyramidPoolingModule
from crfseg.models.weights import WeightsLike

__all__ = ["UperNet", "UperNetHead", "upernet", "UPERNET_BACKBONES"]

UPERNET_BACKBONES = RESNETS + ("mobilenet_v3_large", "densenet121")


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class UperNetHead(nn.Module):
    """PPM on the last stage, FPN over all stages, fusion at the finest stage.

    Parameters
    ----------
    backbone : Backbone
        Multi-stage backbone (ResNet: strides 4, 8, 16, 32).
    num_classes : int
        Number of classes ``C``.
    channels : int, default 512
        Width of the pyramid (the paper's 512).
    """

    def __init__(self, backbone: Backbone, num_classes: int, channels: int = 512) -> None:
        super().__init__()
        top = backbone.channels[-1]
        self.ppm = PyramidPoolingModule(top, branch_channels=channels)
        self.ppm_conv = conv_bn_relu(self.ppm.out_channels, channels)
        self.lateral = nn.ModuleList(conv_bn_relu(c, channels, 1)
                                     for c in backbone.channels[:-1])
        self.smooth = nn.ModuleList(conv_bn_relu(channels, channels)
                                    for _ in backbone.channels[:-1])
        self.fuse = conv_bn_relu(channels * len(backbone.channels), channels)
        self.classifier = nn.Conv2d(channels, num_classes, 1)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at the first stage's resolution."""
        top = self.ppm_conv(self.ppm(features[-1]))
        levels = [top]
        for index in range(len(features) - 2, -1, -1):
            lateral = self.lateral[index](features[index])
            top = lateral + _upsample(top, lateral.shape[-2:])
            levels.insert(0, self.smooth[index](top))
        size = levels[0].shape[-2:]
        fused = torch.cat([levels[0]] + [_upsample(level, size) for level in levels[1:]], dim=1)
        return self.classifier(self.fuse(fused))


class UperNet(BackboneSegmentationModel):
    """UperNet's semantic-segmentation branch on a torchvision backbone.

    Parameters
    ----------
    backbone : Backbone
        Multi-stage backbone.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    channels : int, default 512
        Width of the feature pyramid.

    Notes
    -----
    The 1×1 pooling branch has BatchNorm: training needs batches of more than one image.

    References
    ----------
    T. Xiao, Y. Liu, B. Zhou, Y. Jiang and J. Sun, "Unified Perceptual Parsing
    for Scene Understanding", ECCV 2018.

    Examples
    --------
    >>> model = upernet(num_classes=3, backbone="resnet18", channels=32).eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False,
                 channels: int = 512) -> None:
        channels = check_int("channels", channels, low=1)
        super().__init__(backbone, UperNetHead(backbone, num_classes, channels), num_classes,
                         aux=aux)


def upernet(*, num_classes: int, backbone: str = "resnet50", output_stride: int | None = None,
            aux: bool = False, backbone_weights: WeightsLike = None,
            channels: int = 512) -> UperNet:
    """UperNet on a torchvision backbone.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet50"
        One of :data:`UPERNET_BACKBONES`.
    output_stride : int, optional
        32 by default, as the paper; ResNets also accept 16 and 8.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.
    channels : int, default 512
        Width of the feature pyramid.

    Returns
    -------
    UperNet
    """
    return build_on_backbone(UperNet, "upernet", choices=UPERNET_BACKBONES,
                             preferred_stride=32, num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights, channels=channels)
