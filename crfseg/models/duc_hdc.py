"""DUC-HDC (Wang et al., 2018, "Understanding Convolution for Semantic Segmentation").

Hybrid dilated convolution (HDC): the dilated ResNet's blocks cycle through
rates (1, 2, 5, 9) in ``layer3`` and (5, 9, 17) in ``layer4`` instead of a
constant rate, so that the dilated kernels' footprints cover every pixel
(no "gridding").  Dense upsampling convolution (DUC): a 3×3 convolution
predicts ``C · 8²`` channels at stride 8, rearranged into a full-resolution
``C``-channel map (pixel shuffle) rather than interpolated.  Inputs are padded
to a multiple of 8 and the output cropped (``size_divisor=8``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from crfseg.models._base import BackboneSegmentationModel, build_on_backbone
from crfseg.models.backbones import RESNETS, Backbone, set_block_dilations
from crfseg.models.weights import WeightsLike

__all__ = ["DUCHDC", "DenseUpsamplingConvolution", "duc_hdc", "DUC_HDC_BACKBONES",
           "HDC_RATES"]

DUC_HDC_BACKBONES = RESNETS
#: Dilation rates cycled through the blocks of ``layer3`` and ``layer4``.
HDC_RATES: tuple[tuple[int, ...], tuple[int, ...]] = ((1, 2, 5, 9), (5, 9, 17))


class DenseUpsamplingConvolution(nn.Module):
    """3×3 conv to ``C · r²`` channels, then pixel shuffle to ``r×`` the resolution.

    Parameters
    ----------
    in_channels : int
        Channels of the stride-``r`` feature map.
    num_classes : int
        ``C``.
    upscale : int, default 8
        ``r``.

    Shapes
    ------
    ``(N, in_channels, h, w)`` → ``(N, C, r·h, r·w)``.
    """

    def __init__(self, in_channels: int, num_classes: int, upscale: int = 8) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, num_classes * upscale ** 2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(upscale)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits at the input's (padded) resolution, from the last stage."""
        return self.shuffle(self.conv(features[-1]))


class DUCHDC(BackboneSegmentationModel):
    """ResNet with hybrid dilated convolutions and a dense upsampling convolution.

    Parameters
    ----------
    backbone : Backbone
        A ResNet built at output stride 8; its ``layer3``/``layer4`` dilations
        are replaced by ``hdc_rates``.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    hdc_rates : pair of sequences of int, default :data:`HDC_RATES`
        Rates cycled through ``layer3`` and ``layer4``.

    References
    ----------
    P. Wang, P. Chen, Y. Yuan, D. Liu, Z. Huang, X. Hou and G. Cottrell,
    "Understanding Convolution for Semantic Segmentation", WACV 2018.

    Examples
    --------
    >>> model = duc_hdc(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False,
                 hdc_rates: Sequence[Sequence[int]] = HDC_RATES) -> None:
        if backbone.name not in RESNETS or backbone.reductions[-1] != 8:
            raise ValueError(
                "DUCHDC needs a ResNet backbone at output stride 8, got "
                f"{backbone.name} at output stride {backbone.reductions[-1]}"
            )
        for stage, rates in zip(backbone.stages[2:], hdc_rates, strict=True):
            set_block_dilations(stage, rates)
        super().__init__(backbone, DenseUpsamplingConvolution(backbone.channels[-1], num_classes),
                         num_classes, aux=aux, size_divisor=8)


def duc_hdc(*, num_classes: int, backbone: str = "resnet101", output_stride: int | None = None,
            aux: bool = False, backbone_weights: WeightsLike = None) -> DUCHDC:
    """DUC-HDC on a torchvision ResNet.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet101"
        One of :data:`DUC_HDC_BACKBONES` (the paper uses ResNet-101 and ResNet-152).
    output_stride : {None, 8}
        Fixed at 8.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.

    Returns
    -------
    DUCHDC
    """
    if output_stride not in (None, 8):
        raise ValueError(f"duc_hdc works at output_stride 8 only; got {output_stride!r}")
    return build_on_backbone(DUCHDC, "duc_hdc", choices=DUC_HDC_BACKBONES, preferred_stride=8,
                             num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights)
