"""U-Net (Ronneberger et al., 2015).

Four 2×2 max-poolings down, four 2×2 transposed convolutions up, each
resolution joined to its mirror by a skip connection; widths 64 … 1024 as in
the paper (31 M parameters).  Convolutions are padded so the output has the
input's size (the paper's unpadded ones crop the skips and shrink the output)
and followed by BatchNorm (``batch_norm=False`` gives the paper's plain
conv–ReLU).  Odd sizes are handled by zero-padding each upsampled map to its
skip's size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import check_bool, check_int
from crfseg.models._base import SegmentationModel, reject_backbone_options

__all__ = ["UNet", "unet"]


def _double_conv(in_channels: int, out_channels: int, batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for channels in (in_channels, out_channels):
        layers.append(nn.Conv2d(channels, out_channels, 3, padding=1, bias=not batch_norm))
        if batch_norm:
            layers.append(nn.BatchNorm2d(out_channels))
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class UNet(SegmentationModel):
    """U-Net with ``depth`` poolings and ``base_width`` channels at full resolution.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    in_channels : int, default 3
        Channels of the input image.
    base_width : int, default 64
        Channels of the first level; level ``k`` has ``base_width * 2**k``.
    depth : int, default 4
        Number of poolings (and of upsamplings).
    batch_norm : bool, default True
        BatchNorm after every convolution.

    Notes
    -----
    Inputs must be at least ``2**depth`` pixels high and wide.

    References
    ----------
    O. Ronneberger, P. Fischer and T. Brox, "U-Net: Convolutional Networks for
    Biomedical Image Segmentation", MICCAI 2015.

    Examples
    --------
    >>> model = UNet(num_classes=2, base_width=8).eval()
    >>> model(torch.zeros(1, 3, 97, 130)).shape
    torch.Size([1, 2, 97, 130])
    """

    def __init__(self, num_classes: int, *, in_channels: int = 3, base_width: int = 64,
                 depth: int = 4, batch_norm: bool = True) -> None:
        depth = check_int("depth", depth, low=1)
        super().__init__(num_classes, in_channels, min_size=2 ** depth)
        base_width = check_int("base_width", base_width, low=1)
        check_bool("batch_norm", batch_norm)
        widths = [base_width * 2 ** k for k in range(depth + 1)]
        self.down = nn.ModuleList([_double_conv(in_channels, widths[0], batch_norm)])
        self.down.extend(_double_conv(widths[k - 1], widths[k], batch_norm)
                         for k in range(1, depth + 1))
        self.up = nn.ModuleList(nn.ConvTranspose2d(widths[k], widths[k - 1], 2, stride=2)
                                for k in range(depth, 0, -1))
        self.up_conv = nn.ModuleList(_double_conv(widths[k], widths[k - 1], batch_norm)
                                     for k in range(depth, 0, -1))
        self.classifier = nn.Conv2d(widths[0], num_classes, 1)

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, conv in zip(self.up, self.up_conv, strict=True):
            skip = skips.pop()
            x = up(x)
            x = F.pad(x, (0, skip.shape[-1] - x.shape[-1], 0, skip.shape[-2] - x.shape[-2]))
            x = conv(torch.cat([skip, x], dim=1))
        return self.classifier(x), None


def unet(*, num_classes: int, backbone: None = None, output_stride: None = None,
         aux: bool = False, backbone_weights: None = None, in_channels: int = 3,
         base_width: int = 64, depth: int = 4, batch_norm: bool = True) -> UNet:
    """U-Net as in its paper (no backbone options).

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone, output_stride, backbone_weights : None
        Accepted for a uniform registry signature; anything else is an error.
    aux : bool, default False
        Must be False: U-Net has no auxiliary head.
    in_channels, base_width, depth, batch_norm
        As :class:`UNet`.

    Returns
    -------
    UNet
    """
    reject_backbone_options("unet", num_classes=num_classes, backbone=backbone,
                            output_stride=output_stride, aux=aux,
                            backbone_weights=backbone_weights)
    return UNet(num_classes, in_channels=in_channels, base_width=base_width, depth=depth,
                batch_norm=batch_norm)
