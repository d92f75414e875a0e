"""FC-DenseNet, "The One Hundred Layers Tiramisu" (Jégou et al., 2017).

Dense blocks (BN–ReLU–3×3 conv–dropout layers, each fed the concatenation
of all previous outputs) on a U-shaped path with five poolings.  Going up,
only the features a block newly computed are upsampled (3×3 transposed
convolution, stride 2), cropped to the skip's size and concatenated with it,
which keeps the width in check.  FC-DenseNet56/67/103 are the paper's three
variants (1.5 M, 3.5 M and 9.4 M parameters).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from crfseg._validation import check_int, check_number
from crfseg.models._base import SegmentationModel, reject_backbone_options

__all__ = ["FCDenseNet", "fc_densenet56", "fc_densenet67", "fc_densenet103"]


def _layer(in_channels: int, out_channels: int, kernel_size: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(in_channels), nn.ReLU(inplace=True),
                         nn.Conv2d(in_channels, out_channels, kernel_size,
                                   padding=kernel_size // 2),
                         nn.Dropout2d(dropout))


class _DenseBlock(nn.Module):
    """``num_layers`` layers of ``growth_rate`` channels; returns only the new features."""

    def __init__(self, in_channels: int, num_layers: int, growth_rate: int,
                 dropout: float) -> None:
        super().__init__()
        self.layers = nn.ModuleList(_layer(in_channels + i * growth_rate, growth_rate, 3, dropout)
                                    for i in range(num_layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        new = []
        for layer in self.layers:
            out = layer(x)
            new.append(out)
            x = torch.cat([x, out], dim=1)
        return torch.cat(new, dim=1)


def _center_crop(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    top = (x.shape[-2] - size[0]) // 2
    left = (x.shape[-1] - size[1]) // 2
    return x[..., top:top + size[0], left:left + size[1]]


class FCDenseNet(SegmentationModel):
    """Fully convolutional DenseNet.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    layers_per_block : sequence of int
        ``2 · P + 1`` entries for ``P`` poolings: the down blocks, the
        bottleneck and the up blocks (e.g. FC-DenseNet103's
        ``(4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4)``).
    growth_rate : int
        Channels each layer adds.
    in_channels : int, default 3
        Channels of the input image.
    first_channels : int, default 48
        Channels of the first 3×3 convolution.
    dropout : float, default 0.2
        Dropout after every convolution.

    Notes
    -----
    Inputs must be at least ``2**P`` pixels high and wide (32 for the paper's models).

    References
    ----------
    S. Jégou, M. Drozdzal, D. Vazquez, A. Romero and Y. Bengio, "The One Hundred
    Layers Tiramisu: Fully Convolutional DenseNets for Semantic Segmentation",
    CVPR Workshops 2017.

    Examples
    --------
    >>> model = FCDenseNet(3, layers_per_block=(2, 2, 2), growth_rate=4).eval()
    >>> model(torch.zeros(1, 3, 97, 130)).shape
    torch.Size([1, 3, 97, 130])
    """

    def __init__(self, num_classes: int, layers_per_block: Sequence[int], growth_rate: int, *,
                 in_channels: int = 3, first_channels: int = 48, dropout: float = 0.2) -> None:
        blocks = [check_int("layers_per_block[i]", n, low=1) for n in layers_per_block]
        if len(blocks) % 2 == 0:
            raise ValueError(
                "layers_per_block must have an odd number of entries (down blocks, bottleneck, "
                f"up blocks), got {len(blocks)}"
            )
        super().__init__(num_classes, in_channels, min_size=2 ** (len(blocks) // 2))
        growth_rate = check_int("growth_rate", growth_rate, low=1)
        channels = check_int("first_channels", first_channels, low=1)
        dropout = check_number("dropout", dropout, low=0, high=1, high_inclusive=False)
        pools = len(blocks) // 2
        self.stem = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.down_blocks = nn.ModuleList()
        self.transitions_down = nn.ModuleList()
        skip_channels = []
        for num_layers in blocks[:pools]:
            self.down_blocks.append(_DenseBlock(channels, num_layers, growth_rate, dropout))
            channels += num_layers * growth_rate
            skip_channels.append(channels)
            self.transitions_down.append(nn.Sequential(_layer(channels, channels, 1, dropout),
                                                       nn.MaxPool2d(2)))
        self.bottleneck = _DenseBlock(channels, blocks[pools], growth_rate, dropout)
        self.transitions_up = nn.ModuleList()
        self.up_blocks = nn.ModuleList()
        upsampled = blocks[pools] * growth_rate
        for num_layers in blocks[pools + 1:]:
            self.transitions_up.append(nn.ConvTranspose2d(upsampled, upsampled, 3, stride=2))
            channels = upsampled + skip_channels.pop()
            self.up_blocks.append(_DenseBlock(channels, num_layers, growth_rate, dropout))
            upsampled = num_layers * growth_rate
        self.classifier = nn.Conv2d(channels + upsampled, num_classes, 1)

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.stem(x)
        skips = []
        for block, transition in zip(self.down_blocks, self.transitions_down, strict=True):
            x = torch.cat([x, block(x)], dim=1)
            skips.append(x)
            x = transition(x)
        new = self.bottleneck(x)
        for transition, block in zip(self.transitions_up, self.up_blocks, strict=True):
            skip = skips.pop()
            x = torch.cat([_center_crop(transition(new), skip.shape[-2:]), skip], dim=1)
            new = block(x)
        return self.classifier(torch.cat([x, new], dim=1)), None


_VARIANTS = {
    "fc_densenet56": ((4,) * 11, 12),
    "fc_densenet67": ((5,) * 11, 16),
    "fc_densenet103": ((4, 5, 7, 10, 12, 15, 12, 10, 7, 5, 4), 16),
}


def _variant(arch: str, num_classes: int, backbone: None, output_stride: None, aux: bool,
             backbone_weights: None, in_channels: int) -> FCDenseNet:
    reject_backbone_options(arch, num_classes=num_classes, backbone=backbone,
                            output_stride=output_stride, aux=aux,
                            backbone_weights=backbone_weights)
    layers, growth_rate = _VARIANTS[arch]
    return FCDenseNet(num_classes, layers, growth_rate, in_channels=in_channels)


def fc_densenet56(*, num_classes: int, backbone: None = None, output_stride: None = None,
                  aux: bool = False, backbone_weights: None = None,
                  in_channels: int = 3) -> FCDenseNet:
    """FC-DenseNet56: 4 layers per block, growth rate 12.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone, output_stride, backbone_weights : None
        Accepted for a uniform registry signature; anything else is an error.
    aux : bool, default False
        Must be False: FC-DenseNet has no auxiliary head.
    in_channels : int, default 3
        Channels of the input image.

    Returns
    -------
    FCDenseNet
    """
    return _variant("fc_densenet56", num_classes, backbone, output_stride, aux,
                    backbone_weights, in_channels)


def fc_densenet67(*, num_classes: int, backbone: None = None, output_stride: None = None,
                  aux: bool = False, backbone_weights: None = None,
                  in_channels: int = 3) -> FCDenseNet:
    """FC-DenseNet67: 5 layers per block, growth rate 16. Arguments as :func:`fc_densenet56`."""
    return _variant("fc_densenet67", num_classes, backbone, output_stride, aux,
                    backbone_weights, in_channels)


def fc_densenet103(*, num_classes: int, backbone: None = None, output_stride: None = None,
                   aux: bool = False, backbone_weights: None = None,
                   in_channels: int = 3) -> FCDenseNet:
    """FC-DenseNet103: 4–15 layers per block, growth rate 16. Arguments as :func:`fc_densenet56`."""
    return _variant("fc_densenet103", num_classes, backbone, output_stride, aux,
                    backbone_weights, in_channels)
