"""SegNet (Badrinarayanan et al., 2017).

The encoder is the 13 convolutions of VGG16-BN (torchvision's, so ImageNet
weights load into it); the decoder mirrors it and upsamples with the
encoder's max-pooling indices, which is what keeps boundaries sharp without
skip features.  Unpooling to each encoder map's recorded size makes every
input size work.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg.models._base import SegmentationModel, check_backbone_options, conv_bn_relu
from crfseg.models.backbones import build_classifier
from crfseg.models.weights import WeightsLike

__all__ = ["SegNet", "segnet", "SEGNET_BACKBONES"]

SEGNET_BACKBONES = ("vgg16_bn",)

# Decoder widths, deepest block first: each block ends at the width of the
# encoder block it mirrors' input; the very last convolution gives the scores.
_DECODER = ((512, 512, 512), (512, 512, 256), (256, 256, 128), (128, 64), (64, 64))


class SegNet(SegmentationModel):
    """Encoder–decoder with pooling-index unpooling.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    encoder : nn.Sequential
        torchvision's ``vgg16_bn().features`` (13 conv–BN–ReLU and 5 max-poolings).

    Notes
    -----
    Inputs must be at least 32×32 (five 2×2 poolings).

    References
    ----------
    V. Badrinarayanan, A. Kendall and R. Cipolla, "SegNet: A Deep Convolutional
    Encoder-Decoder Architecture for Image Segmentation", IEEE TPAMI 39(12), 2017.

    Examples
    --------
    >>> model = segnet(num_classes=3).eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, num_classes: int, encoder: nn.Sequential) -> None:
        super().__init__(num_classes, 3, min_size=32)
        blocks, current = [], []
        for layer in encoder:
            if isinstance(layer, nn.MaxPool2d):
                blocks.append(nn.Sequential(*current))
                current = []
            else:
                current.append(layer)
        self.encoder = nn.ModuleList(blocks)
        decoder = []
        in_channels = 512
        for widths in _DECODER:
            layers = []
            for width in widths[:-1]:
                layers.append(conv_bn_relu(in_channels, width))
                in_channels = width
            decoder.append(nn.Sequential(*layers, conv_bn_relu(in_channels, widths[-1])))
            in_channels = widths[-1]
        # The last block's final layer scores the classes: no BN or ReLU after it.
        decoder[-1][-1] = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.decoder = nn.ModuleList(decoder)

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        pooled = []
        for block in self.encoder:
            x = block(x)
            size = x.shape[-2:]
            x, indices = F.max_pool2d(x, 2, stride=2, return_indices=True)
            pooled.append((indices, size))
        for block in self.decoder:
            indices, size = pooled.pop()
            x = F.max_unpool2d(x, indices, 2, stride=2, output_size=size)
            x = block(x)
        return x, None


def segnet(*, num_classes: int, backbone: str = "vgg16_bn", output_stride: int | None = None,
           aux: bool = False, backbone_weights: WeightsLike = None) -> SegNet:
    """SegNet on a VGG16-BN encoder.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : {"vgg16_bn"}
        The encoder, as in the paper.
    output_stride : {None, 32}
        Fixed at 32.
    aux : bool, default False
        Must be False: SegNet has no auxiliary head.
    backbone_weights : WeightsEnum, str, path or None
        VGG16-BN ImageNet weights for the encoder (the paper's initialisation).

    Returns
    -------
    SegNet
    """
    check_backbone_options("segnet", num_classes=num_classes, backbone=backbone,
                           choices=SEGNET_BACKBONES, output_stride=output_stride,
                           preferred_stride=32, aux=aux)
    if aux:
        raise ValueError("segnet has no auxiliary head; got aux=True")
    encoder = build_classifier(backbone, backbone_weights).features
    return SegNet(num_classes, encoder)
