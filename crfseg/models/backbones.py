"""Multi-scale feature extractors built from torchvision's classification networks.

A :class:`Backbone` returns the output of each of its stages, finest first;
``channels[i]`` and ``reductions[i]`` give the width and the stride (input
size over feature size) of stage ``i``.  ResNets reach an output stride of 16
or 8 by trading the stride of their last stages for dilation, as in DeepLab.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torchvision
from torch import nn

from crfseg._validation import check_choice
from crfseg.models.weights import WeightsLike, load_weights

__all__ = [
    "Backbone",
    "BACKBONES",
    "RESNETS",
    "VGGS",
    "OUTPUT_STRIDES",
    "build_backbone",
    "build_classifier",
    "set_block_dilations",
]

RESNETS = ("resnet18", "resnet34", "resnet50", "resnet101")
VGGS = ("vgg16", "vgg16_bn")
BACKBONES = RESNETS + VGGS + ("mobilenet_v3_large", "densenet121")

#: Output strides each backbone can be built with (the first is its natural one).
OUTPUT_STRIDES: dict[str, tuple[int, ...]] = {
    **{name: (32, 16, 8) for name in RESNETS},
    **{name: (32,) for name in VGGS},
    "mobilenet_v3_large": (32, 16),
    "densenet121": (32,),
}


class Backbone(nn.Module):
    """The stages of a classification network, returning every stage's output.

    Parameters
    ----------
    stem : nn.Module
        Layers before the first returned stage (``nn.Identity`` for none).
    stages : sequence of nn.Module
        Applied one after the other; each one's output is returned.
    channels : sequence of int
        Output channels of each stage.
    reductions : sequence of int
        Stride of each stage's output relative to the input.
    name : str
        The torchvision architecture it was built from.

    Examples
    --------
    >>> backbone = build_backbone("resnet18", output_stride=16)
    >>> [tuple(f.shape) for f in backbone(torch.zeros(1, 3, 64, 64))]
    [(1, 64, 16, 16), (1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 4, 4)]
    >>> backbone.reductions
    (4, 8, 16, 16)
    """

    def __init__(self, stem: nn.Module, stages: Sequence[nn.Module], channels: Sequence[int],
                 reductions: Sequence[int], name: str) -> None:
        super().__init__()
        self.stem = stem
        self.stages = nn.ModuleList(stages)
        self.channels = tuple(int(c) for c in channels)
        self.reductions = tuple(int(r) for r in reductions)
        self.name = name
        #: The classifier of a VGG turned into convolutions (FCN's fc6/fc7), else None.
        self.fc_conv: nn.Module | None = None

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Stage outputs ``[(N, channels[i], H / reductions[i], W / reductions[i]), ...]``."""
        features = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features


def build_classifier(name: str, weights: WeightsLike = None,
                     argument: str = "backbone_weights", **kwargs) -> nn.Module:
    """A torchvision classification network, with weights from an enum or a local file.

    Parameters
    ----------
    name : str
        One of :data:`BACKBONES`.
    weights : WeightsEnum, str, path or None
        torchvision's enum member (downloaded on first use), its name, or a file
        holding this network's ``state_dict``; ``None`` for random weights.
    argument : str, default "backbone_weights"
        The argument's name in error messages.
    **kwargs
        Passed to the torchvision builder (e.g. ``dilated=True``).

    Returns
    -------
    nn.Module
    """
    check_choice("backbone", name, BACKBONES)
    model = torchvision.models.get_model(name, weights=None, **kwargs)
    load_weights(model, name, weights, argument)
    return model


def build_backbone(name: str, *, output_stride: int = 32, weights: WeightsLike = None,
                   fc_conv: bool = False) -> Backbone:
    """Build a :class:`Backbone` from a torchvision classification network.

    Parameters
    ----------
    name : str
        One of :data:`BACKBONES`: ``resnet18/34/50/101``, ``vgg16``, ``vgg16_bn``,
        ``mobilenet_v3_large``, ``densenet121``.
    output_stride : int, default 32
        Stride of the last stage: one of ``OUTPUT_STRIDES[name]``.
    weights : WeightsEnum, str, path or None
        The classification network's weights (see :func:`build_classifier`).
    fc_conv : bool, default False
        VGG only: keep the fully connected classifier as 7×7 and 1×1
        convolutions in ``Backbone.fc_conv`` (the FCN paper's fc6/fc7).

    Returns
    -------
    Backbone
        ResNet, MobileNetV3 and DenseNet give 4 stages (strides 4, 8, 16, 32),
        VGG gives 5 (after each pooling: 2, 4, 8, 16, 32).

    Raises
    ------
    ValueError
        Unknown ``name``, an output stride the network cannot give, or
        ``fc_conv`` for a network that is not a VGG.

    References
    ----------
    L.-C. Chen et al., "Rethinking Atrous Convolution for Semantic Image
    Segmentation", arXiv:1706.05587, 2017 (output stride by dilation).

    Examples
    --------
    >>> build_backbone("vgg16").reductions
    (2, 4, 8, 16, 32)
    """
    check_choice("backbone", name, BACKBONES)
    check_choice(f"output_stride for backbone {name!r}", output_stride, OUTPUT_STRIDES[name])
    if fc_conv and name not in VGGS:
        raise ValueError(f"fc_conv is only available for VGG backbones, got backbone={name!r}")
    if name in RESNETS:
        return _resnet(name, output_stride, weights)
    if name in VGGS:
        return _vgg(name, weights, fc_conv)
    if name == "mobilenet_v3_large":
        return _mobilenet_v3(name, output_stride, weights)
    return _densenet(name, weights)


def set_block_dilations(layer: nn.Sequential, rates: Sequence[int]) -> None:
    """Remove the stride of a ResNet layer and dilate its blocks' 3×3 convolutions.

    Block ``i`` of ``layer`` gets dilation ``rates[i % len(rates)]`` (and the
    padding that keeps sizes), so a repeating pattern such as HDC's
    ``(1, 2, 5, 9)`` cycles through the layer.  Works for torchvision's
    ``BasicBlock`` and ``Bottleneck`` alike.

    Parameters
    ----------
    layer : nn.Sequential
        ``resnet.layer3`` or ``resnet.layer4``.
    rates : sequence of int
        Dilation rates, at least one.
    """
    for index, block in enumerate(layer):
        rate = int(rates[index % len(rates)])
        for conv in block.modules():
            if not isinstance(conv, nn.Conv2d):
                continue
            conv.stride = (1, 1)
            if conv.kernel_size == (3, 3):
                conv.dilation = (rate, rate)
                conv.padding = (rate, rate)


def _resnet(name: str, output_stride: int, weights: WeightsLike) -> Backbone:
    net = build_classifier(name, weights)
    # As torchvision's replace_stride_with_dilation: a dilated layer's first
    # block keeps the previous layer's rate, the others take the new one.
    dilate = {32: (), 16: ("layer4",), 8: ("layer3", "layer4")}[output_stride]
    rate = 1
    reductions = [4, 8, 16, 32]
    for index, layer_name in enumerate(("layer3", "layer4"), start=2):
        if layer_name in dilate:
            layer = getattr(net, layer_name)
            set_block_dilations(layer, [rate] + [rate * 2] * (len(layer) - 1))
            rate *= 2
            reductions[index] = reductions[index - 1]
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    stages = [net.layer1, net.layer2, net.layer3, net.layer4]
    expansion = 4 if name in ("resnet50", "resnet101") else 1
    channels = [64 * expansion, 128 * expansion, 256 * expansion, 512 * expansion]
    return Backbone(stem, stages, channels, reductions, name)


def _vgg(name: str, weights: WeightsLike, fc_conv: bool) -> Backbone:
    net = build_classifier(name, weights)
    stages, start, channels = [], 0, []
    for index, layer in enumerate(net.features):
        if isinstance(layer, nn.Conv2d):
            width = layer.out_channels
        if isinstance(layer, nn.MaxPool2d):
            stages.append(net.features[start:index + 1])
            channels.append(width)
            start = index + 1
    backbone = Backbone(nn.Identity(), stages, channels, (2, 4, 8, 16, 32), name)
    if fc_conv:
        backbone.fc_conv = _classifier_as_conv(net.classifier)
    return backbone


def _classifier_as_conv(classifier: nn.Sequential) -> nn.Sequential:
    """VGG's fc6 (25088→4096) and fc7 (4096→4096) as 7×7 and 1×1 convolutions."""
    fc6, fc7 = classifier[0], classifier[3]
    conv6 = nn.Conv2d(512, fc6.out_features, kernel_size=7, padding=3)
    conv7 = nn.Conv2d(fc6.out_features, fc7.out_features, kernel_size=1)
    with torch.no_grad():
        conv6.weight.copy_(fc6.weight.view(conv6.weight.shape))
        conv6.bias.copy_(fc6.bias)
        conv7.weight.copy_(fc7.weight.view(conv7.weight.shape))
        conv7.bias.copy_(fc7.bias)
    return nn.Sequential(conv6, nn.ReLU(inplace=True), nn.Dropout2d(0.5),
                         conv7, nn.ReLU(inplace=True), nn.Dropout2d(0.5))


def _mobilenet_v3(name: str, output_stride: int, weights: WeightsLike) -> Backbone:
    net = build_classifier(name, weights, dilated=output_stride == 16)
    blocks = net.features
    # A stage ends just before each block that halves the resolution
    # (torchvision marks them with ``_is_cn``), and at the last block.
    ends = [i - 1 for i, block in enumerate(blocks) if getattr(block, "_is_cn", False)]
    ends.append(len(blocks) - 1)
    starts = [0] + [end + 1 for end in ends[:-1]]
    bounds = list(zip(starts, ends, strict=True))[-4:]
    stem = blocks[:bounds[0][0]]
    stages = [blocks[first:last + 1] for first, last in bounds]
    channels = [blocks[last].out_channels for _, last in bounds]
    reductions = (4, 8, 16, output_stride)
    return Backbone(stem, stages, channels, reductions, name)


def _densenet(name: str, weights: WeightsLike) -> Backbone:
    f = build_classifier(name, weights).features
    stem = nn.Sequential(f.conv0, f.norm0, f.relu0, f.pool0)
    stages = [
        f.denseblock1,
        nn.Sequential(f.transition1, f.denseblock2),
        nn.Sequential(f.transition2, f.denseblock3),
        nn.Sequential(f.transition3, f.denseblock4, f.norm5, nn.ReLU(inplace=True)),
    ]
    channels = [f.transition1.conv.in_channels, f.transition2.conv.in_channels,
                f.transition3.conv.in_channels, f.norm5.num_features]
    return Backbone(stem, stages, channels, (4, 8, 16, 32), name)
