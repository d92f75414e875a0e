"""Global Convolutional Network (Peng et al., 2017, "Large Kernel Matters").

Each of the backbone's four stages is scored by a global convolution — a
k×1 then 1×k convolution summed with a 1×k then k×1 one, a k×k receptive
field at 2k/k² of the cost — followed by a boundary-refinement residual
block.  Coarser scores are upsampled, added to finer ones and refined again,
down to stride 4, then upsampled twice more with a refinement in between.
The paper learns those upsamplings as deconvolutions; here they are bilinear
to each map's exact size, which keeps every input size valid.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from crfseg._validation import check_int
from crfseg.models._base import BackboneSegmentationModel, build_on_backbone
from crfseg.models.backbones import RESNETS, Backbone
from crfseg.models.weights import WeightsLike

__all__ = ["GCN", "GCNHead", "GlobalConvolution", "BoundaryRefinement", "gcn", "GCN_BACKBONES"]

GCN_BACKBONES = RESNETS + ("densenet121",)


class GlobalConvolution(nn.Module):
    """``conv_1×k(conv_k×1(x)) + conv_k×1(conv_1×k(x))``: a separable k×k kernel.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out.
    kernel_size : int
        ``k``, odd.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int) -> None:
        super().__init__()
        k, p = kernel_size, kernel_size // 2
        self.left = nn.Sequential(nn.Conv2d(in_channels, out_channels, (k, 1), padding=(p, 0)),
                                  nn.Conv2d(out_channels, out_channels, (1, k), padding=(0, p)))
        self.right = nn.Sequential(nn.Conv2d(in_channels, out_channels, (1, k), padding=(0, p)),
                                   nn.Conv2d(out_channels, out_channels, (k, 1), padding=(p, 0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same spatial size, ``out_channels`` channels."""
        return self.left(x) + self.right(x)


class BoundaryRefinement(nn.Module):
    """Residual ``x + conv3×3(relu(conv3×3(x)))`` that sharpens score maps at boundaries."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1),
                                      nn.ReLU(inplace=True),
                                      nn.Conv2d(channels, channels, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Same shape as ``x``."""
        return x + self.residual(x)


def _upsample(x: torch.Tensor, size: torch.Size) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class GCNHead(nn.Module):
    """GCN + BR per stage, top-down sums with BR, then two upsampling steps with BR.

    Parameters
    ----------
    backbone : Backbone
        A four-stage backbone (strides 4, 8, 16, 32).
    num_classes : int
        Number of classes ``C`` (every score map has ``C`` channels).
    kernel_size : int, default 15
        ``k`` of the global convolutions (the paper's best).
    """

    def __init__(self, backbone: Backbone, num_classes: int, kernel_size: int = 15) -> None:
        super().__init__()
        self.gcn = nn.ModuleList(GlobalConvolution(c, num_classes, kernel_size)
                                 for c in backbone.channels)
        self.br_stage = nn.ModuleList(BoundaryRefinement(num_classes) for _ in backbone.channels)
        self.br_merge = nn.ModuleList(BoundaryRefinement(num_classes)
                                      for _ in backbone.channels[:-1])
        self.br_final = BoundaryRefinement(num_classes)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        """Logits ``(N, C, h, w)`` at half the stride of the first stage (stride 2)."""
        scores = [br(gcn(f)) for gcn, br, f in zip(self.gcn, self.br_stage, features,
                                                   strict=True)]
        out = scores[-1]
        for index in range(len(scores) - 2, -1, -1):
            out = self.br_merge[index](scores[index] + _upsample(out, scores[index].shape[-2:]))
        size = (out.shape[-2] * 2, out.shape[-1] * 2)
        return self.br_final(_upsample(out, size))


class GCN(BackboneSegmentationModel):
    """GCN: large separable kernels and boundary refinement on a four-stage backbone.

    Parameters
    ----------
    backbone : Backbone
        ResNet (the paper's) or DenseNet, four stages.
    num_classes : int
        Number of classes ``C``.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    kernel_size : int, default 15
        ``k`` of the global convolutions, odd.

    References
    ----------
    C. Peng, X. Zhang, G. Yu, G. Luo and J. Sun, "Large Kernel Matters —
    Improve Semantic Segmentation by Global Convolutional Network", CVPR 2017.

    Examples
    --------
    >>> model = gcn(num_classes=3, backbone="resnet18").eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, backbone: Backbone, num_classes: int, *, aux: bool = False,
                 kernel_size: int = 15) -> None:
        kernel_size = check_int("kernel_size", kernel_size, low=1)
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        super().__init__(backbone, GCNHead(backbone, num_classes, kernel_size), num_classes,
                         aux=aux)


def gcn(*, num_classes: int, backbone: str = "resnet50", output_stride: int | None = None,
        aux: bool = False, backbone_weights: WeightsLike = None, kernel_size: int = 15) -> GCN:
    """GCN on a torchvision backbone.

    Parameters
    ----------
    num_classes : int
        Number of classes.
    backbone : str, default "resnet50"
        One of :data:`GCN_BACKBONES`.
    output_stride : {None, 32}
        GCN decodes from stride 32; ResNets also accept 16 and 8.
    aux : bool, default False
        Auxiliary head on the second-to-last stage.
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone.
    kernel_size : int, default 15
        ``k`` of the global convolutions, odd.

    Returns
    -------
    GCN
    """
    return build_on_backbone(GCN, "gcn", choices=GCN_BACKBONES, preferred_stride=32,
                             num_classes=num_classes, backbone=backbone,
                             output_stride=output_stride, aux=aux,
                             backbone_weights=backbone_weights, kernel_size=kernel_size)
