"""ENet (Paszke et al., 2016): a 0.37 M-parameter network for real-time segmentation.

An initial block (a strided 3×3 convolution beside a max-pooling), then
residual bottlenecks: regular, dilated, asymmetric (5×1 then 1×5),
downsampling (with pooling indices) and upsampling (unpooling with those
indices), following the paper's Table 1.  PReLU in the encoder, ReLU in the
decoder.  The unpooling needs sizes divisible by 8: other inputs are padded
and the output cropped (``size_divisor=8``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg.models._base import SegmentationModel, reject_backbone_options

__all__ = ["ENet", "enet"]


def _activation(channels: int, relu: bool) -> nn.Module:
    return nn.ReLU(inplace=True) if relu else nn.PReLU(channels)


def _conv_bn_act(in_channels: int, out_channels: int, kernel_size, relu: bool, *,
                 stride: int = 1, padding=0, dilation: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                  dilation=dilation, bias=False),
        nn.BatchNorm2d(out_channels),
        _activation(out_channels, relu),
    )


class _InitialBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int = 16) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels - in_channels, 3, stride=2, padding=1,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.bn(torch.cat([self.conv(x), F.max_pool2d(x, 2)], dim=1)))


class _Bottleneck(nn.Module):
    """Regular, dilated or asymmetric bottleneck with an identity shortcut."""

    def __init__(self, channels: int, *, dilation: int = 1, asymmetric: bool = False,
                 dropout: float = 0.1, relu: bool = False) -> None:
        super().__init__()
        inner = channels // 4
        if asymmetric:
            middle = nn.Sequential(
                nn.Conv2d(inner, inner, (5, 1), padding=(2, 0), bias=False),
                nn.Conv2d(inner, inner, (1, 5), padding=(0, 2), bias=False),
                nn.BatchNorm2d(inner), _activation(inner, relu))
        else:
            middle = _conv_bn_act(inner, inner, 3, relu, padding=dilation, dilation=dilation)
        self.branch = nn.Sequential(
            _conv_bn_act(channels, inner, 1, relu), middle,
            nn.Conv2d(inner, channels, 1, bias=False), nn.BatchNorm2d(channels),
            nn.Dropout2d(dropout))
        self.act = _activation(channels, relu)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.branch(x))


class _Downsample(nn.Module):
    """Halves the resolution; the shortcut is max-pooling (indices kept) plus zero channels."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        inner = in_channels // 4
        self.extra_channels = out_channels - in_channels
        self.branch = nn.Sequential(
            _conv_bn_act(in_channels, inner, 2, False, stride=2),
            _conv_bn_act(inner, inner, 3, False, padding=1),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout))
        self.act = nn.PReLU(out_channels)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shortcut, indices = F.max_pool2d(x, 2, stride=2, return_indices=True)
        shortcut = F.pad(shortcut, (0, 0, 0, 0, 0, self.extra_channels))
        return self.act(shortcut + self.branch(x)), indices


class _Upsample(nn.Module):
    """Doubles the resolution; the shortcut unpools with the matching downsampling's indices."""

    def __init__(self, in_channels: int, out_channels: int, dropout: float) -> None:
        super().__init__()
        inner = in_channels // 4
        self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                      nn.BatchNorm2d(out_channels))
        self.branch = nn.Sequential(
            _conv_bn_act(in_channels, inner, 1, True),
            nn.ConvTranspose2d(inner, inner, 3, stride=2, padding=1, output_padding=1,
                               bias=False),
            nn.BatchNorm2d(inner), nn.ReLU(inplace=True),
            nn.Conv2d(inner, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels),
            nn.Dropout2d(dropout))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
        shortcut = F.max_unpool2d(self.shortcut(x), indices, 2, stride=2)
        return self.act(shortcut + self.branch(x))


def _stage_2_or_3(dropout: float) -> list[nn.Module]:
    # Table 1: regular, dilated 2, asymmetric 5, dilated 4, regular, dilated 8,
    # asymmetric 5, dilated 16.
    return [
        _Bottleneck(128, dropout=dropout),
        _Bottleneck(128, dilation=2, dropout=dropout),
        _Bottleneck(128, asymmetric=True, dropout=dropout),
        _Bottleneck(128, dilation=4, dropout=dropout),
        _Bottleneck(128, dropout=dropout),
        _Bottleneck(128, dilation=8, dropout=dropout),
        _Bottleneck(128, asymmetric=True, dropout=dropout),
        _Bottleneck(128, dilation=16, dropout=dropout),
    ]


class ENet(SegmentationModel):
    """ENet as in the paper's Table 1.

    Parameters
    ----------
    num_classes : int
        Number of classes ``C``.
    in_channels : int, default 3
        Channels of the input image (at most 15: the initial block's
        convolution supplies the other ``16 - in_channels`` channels).

    Notes
    -----
    Input height and width are padded to multiples of 8 and the output cropped.

    References
    ----------
    A. Paszke, A. Chaurasia, S. Kim and E. Culurciello, "ENet: A Deep Neural
    Network Architecture for Real-Time Semantic Segmentation", arXiv:1606.02147, 2016.

    Examples
    --------
    >>> model = ENet(num_classes=3).eval()
    >>> model(torch.zeros(1, 3, 97, 130)).shape
    torch.Size([1, 3, 97, 130])
    """

    def __init__(self, num_classes: int, *, in_channels: int = 3) -> None:
        if not 1 <= in_channels <= 15:
            raise ValueError(f"in_channels must be in [1, 15] for ENet, got {in_channels}")
        super().__init__(num_classes, in_channels, size_divisor=8)
        self.initial = _InitialBlock(in_channels)
        self.down1 = _Downsample(16, 64, dropout=0.01)
        self.stage1 = nn.Sequential(*[_Bottleneck(64, dropout=0.01) for _ in range(4)])
        self.down2 = _Downsample(64, 128, dropout=0.1)
        self.stage2 = nn.Sequential(*_stage_2_or_3(0.1))
        self.stage3 = nn.Sequential(*_stage_2_or_3(0.1))
        self.up4 = _Upsample(128, 64, dropout=0.1)
        self.stage4 = nn.Sequential(*[_Bottleneck(64, relu=True) for _ in range(2)])
        self.up5 = _Upsample(64, 16, dropout=0.1)
        self.stage5 = _Bottleneck(16, relu=True)
        self.fullconv = nn.ConvTranspose2d(16, num_classes, 3, stride=2, padding=1,
                                           output_padding=1, bias=False)

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        x = self.initial(x)
        x, indices1 = self.down1(x)
        x, indices2 = self.down2(self.stage1(x))
        x = self.stage3(self.stage2(x))
        x = self.stage4(self.up4(x, indices2))
        x = self.stage5(self.up5(x, indices1))
        return self.fullconv(x), None


def enet(*, num_classes: int, backbone: None = None, output_stride: None = None,
         aux: bool = False, backbone_weights: None = None, in_channels: int = 3) -> ENet:
    """ENet as in its paper (no backbone options).

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone, output_stride, backbone_weights : None
        Accepted for a uniform registry signature; anything else is an error.
    aux : bool, default False
        Must be False: ENet has no auxiliary head.
    in_channels : int, default 3
        Channels of the input image.

    Returns
    -------
    ENet
    """
    reject_backbone_options("enet", num_classes=num_classes, backbone=backbone,
                            output_stride=output_stride, aux=aux,
                            backbone_weights=backbone_weights)
    return ENet(num_classes, in_channels=in_channels)
