"""Fully Convolutional Networks: FCN-32s, FCN-16s and FCN-8s (Long et al., 2015).

On a VGG16 backbone the classifier's fc6/fc7 become 7×7 and 1×1
convolutions (initialised from the ImageNet classifier when
``backbone_weights`` are given), as in the paper; on the other backbones a
3×3 convolution head scores the last stage.  FCN-16s and FCN-8s add scores
from the stride-16 and stride-8 stages; those skip scorers start at zero, so
training begins from the coarser net's prediction, as the paper does.
Upsampling is bilinear to the skip's exact size (the paper learns it), which
makes every input size work without the paper's 100-pixel padding.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import check_choice
from crfseg.models._base import BackboneSegmentationModel, FCNHead, build_on_backbone
from crfseg.models.backbones import BACKBONES, VGGS, Backbone
from crfseg.models.weights import WeightsLike

__all__ = ["FCN", "FCNDecoder", "fcn32s", "fcn16s", "fcn8s", "FCN_BACKBONES"]

FCN_BACKBONES = BACKBONES


class FCNDecoder(nn.Module):
    """Scores the last stage and adds the scores of ``skips`` earlier stages.

    Parameters
    ----------
    backbone : Backbone
        Its ``fc_conv`` (VGG's fc6/fc7), when present, runs on the last stage.
    num_classes : int
        Number of classes ``C``.
    skips : {0, 1, 2}
        0 for FCN-32s, 1 for FCN-16s, 2 for FCN-8s.
    """

    def __init__(self, backbone: Backbone, num_classes: int, skips: int) -> None:
        super().__init__()
        if backbone.fc_conv is not None:
            self.score = nn.Sequential(nn.Conv2d(4096, num_classes, 1))
        else:
            self.score = FCNHead(backbone.channels[-1], num_classes)
        self.skip_scores = nn.ModuleList()
        for stage in range(2, 2 + skips):
            scorer = nn.Conv2d(backbone.channels[-stage], num_classes, 1)
            nn.init.zeros_(scorer.weight)
            nn.init.zeros_(scorer.bias)
            self.skip_scores.append(scorer)
        self.fc_conv = backbone.fc_conv

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at the finest skip's resolution."""
        top = features[-1] if self.fc_conv is None else self.fc_conv(features[-1])
        out = self.score(top)
        for stage, scorer in enumerate(self.skip_scores, start=2):
            skip = scorer(features[-stage])
            out = F.interpolate(out, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            out = out + skip
        return out


class FCN(BackboneSegmentationModel):
    """FCN-32s / 16s / 8s on any backbone of :data:`FCN_BACKBONES`.

    Parameters
    ----------
    backbone : Backbone
        Built with ``fc_conv=True`` for VGG, as the paper.
    num_classes : int
        Number of classes ``C``.
    skips : {0, 1, 2}, default 2
        Skip connections: 0 → FCN-32s, 1 → FCN-16s, 2 → FCN-8s.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.

    References
    ----------
    J. Long, E. Shelhamer and T. Darrell, "Fully Convolutional Networks for
    Semantic Segmentation", CVPR 2015.

    Examples
    --------
    >>> model = fcn8s(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, skips: int = 2,
                 aux: bool = False) -> None:
        check_choice("skips", skips, (0, 1, 2))
        super().__init__(backbone, FCNDecoder(backbone, num_classes, skips), num_classes, aux=aux)


def _fcn(arch: str, skips: int, num_classes: int, backbone: str, output_stride: int | None,
         aux: bool, backbone_weights: WeightsLike) -> FCN:
    return build_on_backbone(FCN, arch, choices=FCN_BACKBONES, preferred_stride=32,
                             num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights, fc_conv=backbone in VGGS,
                             skips=skips)


def fcn32s(*, num_classes: int, backbone: str = "vgg16", output_stride: int | None = None,
           aux: bool = False, backbone_weights: WeightsLike = None) -> FCN:
    """FCN-32s: the last stage's scores upsampled 32×.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "vgg16"
        One of :data:`FCN_BACKBONES`.
    output_stride : int, optional
        32 by default; ResNets also allow 16 and 8 (dilated), MobileNetV3 16.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone (see :mod:`crfseg.models.weights`).

    Returns
    -------
    FCN
    """
    return _fcn("fcn32s", 0, num_classes, backbone, output_stride, aux, backbone_weights)


def fcn16s(*, num_classes: int, backbone: str = "vgg16", output_stride: int | None = None,
           aux: bool = False, backbone_weights: WeightsLike = None) -> FCN:
    """FCN-16s: FCN-32s plus the stride-16 stage's scores. Arguments as :func:`fcn32s`."""
    return _fcn("fcn16s", 1, num_classes, backbone, output_stride, aux, backbone_weights)


def fcn8s(*, num_classes: int, backbone: str = "vgg16", output_stride: int | None = None,
          aux: bool = False, backbone_weights: WeightsLike = None) -> FCN:
    """FCN-8s: FCN-16s plus the stride-8 stage's scores. Arguments as :func:`fcn32s`."""
    return _fcn("fcn8s", 2, num_classes, backbone, output_stride, aux, backbone_weights)
