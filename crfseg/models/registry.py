"""The model registry: ``get_model(name, num_classes, ...)`` and ``list_models()``.

Names are looked up in one plain dict; an unknown name raises a KeyError
listing the choices.  torchvision's own segmentation models are registered as
``"torchvision:<builder>"`` and wrapped so that they, too, return a logits
tensor rather than torchvision's ``{"out": ..., "aux": ...}`` dict.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import nn

from crfseg._validation import check_bool, check_int
from crfseg.models._base import SegmentationModel
from crfseg.models.backbones import build_classifier
from crfseg.models.deeplabv3 import DEEPLABV3_BACKBONES, deeplabv3
from crfseg.models.deeplabv3plus import DEEPLABV3PLUS_BACKBONES, deeplabv3plus
from crfseg.models.duc_hdc import DUC_HDC_BACKBONES, duc_hdc
from crfseg.models.enet import enet
from crfseg.models.fc_densenet import fc_densenet56, fc_densenet67, fc_densenet103
from crfseg.models.fcn import FCN_BACKBONES, fcn8s, fcn16s, fcn32s
from crfseg.models.gcn import GCN_BACKBONES, gcn
from crfseg.models.pspnet import PSPNET_BACKBONES, pspnet
from crfseg.models.segnet import SEGNET_BACKBONES, segnet
from crfseg.models.unet import unet
from crfseg.models.upernet import UPERNET_BACKBONES, upernet
from crfseg.models.weights import WeightsLike, load_matching, read_state_dict, resolve_weights

__all__ = ["get_model", "list_models", "list_backbones", "TorchvisionSegmentation",
           "TORCHVISION_MODELS"]

#: torchvision segmentation builders available as ``"torchvision:<name>"``.
TORCHVISION_MODELS = (
    "fcn_resnet50",
    "fcn_resnet101",
    "deeplabv3_resnet50",
    "deeplabv3_resnet101",
    "deeplabv3_mobilenet_v3_large",
    "lraspp_mobilenet_v3_large",
)
_TORCHVISION_PREFIX = "torchvision:"


class TorchvisionSegmentation(SegmentationModel):
    """A torchvision segmentation model whose ``forward`` returns the ``"out"`` logits.

    Parameters
    ----------
    model : nn.Module
        A model from ``torchvision.models.segmentation`` (returns a dict).
    num_classes : int
        Its number of classes.

    Notes
    -----
    ``load_state_dict`` also accepts torchvision's own key names (without the
    ``model.`` prefix), so torchvision's published files load directly.

    Examples
    --------
    >>> model = get_model("torchvision:lraspp_mobilenet_v3_large", 3).eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    """

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__(num_classes, 3)
        self.model = model

    def _forward(self, x: torch.Tensor,
                 with_aux: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(x)
        return out["out"], out.get("aux") if with_aux else None

    def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False) -> Any:
        """As ``nn.Module.load_state_dict``; torchvision's key names are accepted too."""
        if state_dict and not any(key.startswith("model.") for key in state_dict):
            state_dict = {f"model.{key}": value for key, value in state_dict.items()}
        return super().load_state_dict(state_dict, strict=strict, assign=assign)


def _torchvision_builder(tv_name: str) -> Callable[..., SegmentationModel]:
    backbone_name = tv_name.split("_", 1)[1]
    has_aux = not tv_name.startswith("lraspp")

    def build(*, num_classes: int, backbone: str | None = None, output_stride: int | None = None,
              aux: bool = False, backbone_weights: WeightsLike = None,
              weights: WeightsLike = None) -> TorchvisionSegmentation:
        check_int("num_classes", num_classes, low=1)
        check_bool("aux", aux)
        if backbone not in (None, backbone_name):
            raise ValueError(f"torchvision:{tv_name} is built on {backbone_name}; "
                             f"got backbone={backbone!r}")
        if output_stride is not None:
            raise ValueError(f"torchvision:{tv_name} has a fixed output stride; "
                             f"got output_stride={output_stride!r}")
        if aux and not has_aux:
            raise ValueError(f"torchvision:{tv_name} has no auxiliary head; got aux=True")
        resolved = resolve_weights(tv_name, weights)
        resolved_backbone = resolve_weights(backbone_name, backbone_weights, "backbone_weights")
        kwargs: dict[str, Any] = {"num_classes": num_classes, "weights_backbone": None}
        if isinstance(resolved, torchvision.models.WeightsEnum):
            kwargs["weights"] = resolved
            kwargs["weights_backbone"] = None
        elif isinstance(resolved_backbone, torchvision.models.WeightsEnum):
            kwargs["weights_backbone"] = resolved_backbone
        if has_aux:
            # torchvision's published weights include the auxiliary head.
            kwargs["aux_loss"] = True if "weights" in kwargs else aux
        model = torchvision.models.get_model(tv_name, **kwargs)
        if has_aux and not aux:
            model.aux_classifier = None
        if isinstance(resolved_backbone, Path) and "weights" not in kwargs:
            _transfer_backbone(model.backbone, build_classifier(backbone_name, resolved_backbone))
        wrapped = TorchvisionSegmentation(model, num_classes)
        if isinstance(resolved, Path):
            load_matching(wrapped, read_state_dict(resolved))
        return wrapped

    build.__name__ = tv_name
    build.__doc__ = f"torchvision's ``{tv_name}`` wrapped to return a logits tensor."
    return build


def _transfer_backbone(target: nn.Module, classifier: nn.Module) -> None:
    """Copy a classification network's weights into torchvision's feature-getter backbone."""
    source = getattr(classifier, "features", classifier).state_dict()
    wanted = target.state_dict()
    load_matching(target, {key: source[key] for key in wanted if key in source},
                  "backbone_weights")


_BUILDERS: dict[str, Callable[..., SegmentationModel]] = {
    "fcn32s": fcn32s,
    "fcn16s": fcn16s,
    "fcn8s": fcn8s,
    "unet": unet,
    "segnet": segnet,
    "enet": enet,
    "pspnet": pspnet,
    "deeplabv3": deeplabv3,
    "deeplabv3plus": deeplabv3plus,
    "gcn": gcn,
    "upernet": upernet,
    "duc_hdc": duc_hdc,
    "fc_densenet56": fc_densenet56,
    "fc_densenet67": fc_densenet67,
    "fc_densenet103": fc_densenet103,
    **{_TORCHVISION_PREFIX + name: _torchvision_builder(name) for name in TORCHVISION_MODELS},
}

_BACKBONES: dict[str, tuple[str, ...]] = {
    "fcn32s": FCN_BACKBONES,
    "fcn16s": FCN_BACKBONES,
    "fcn8s": FCN_BACKBONES,
    "segnet": SEGNET_BACKBONES,
    "pspnet": PSPNET_BACKBONES,
    "deeplabv3": DEEPLABV3_BACKBONES,
    "deeplabv3plus": DEEPLABV3PLUS_BACKBONES,
    "gcn": GCN_BACKBONES,
    "upernet": UPERNET_BACKBONES,
    "duc_hdc": DUC_HDC_BACKBONES,
    **{_TORCHVISION_PREFIX + name: (name.split("_", 1)[1],) for name in TORCHVISION_MODELS},
}


def list_models() -> tuple[str, ...]:
    """Names :func:`get_model` accepts: crfseg's architectures, then ``torchvision:*``.

    Examples
    --------
    >>> "deeplabv3plus" in list_models(), "torchvision:deeplabv3_resnet50" in list_models()
    (True, True)
    """
    return tuple(_BUILDERS)


def _lookup(name: Any) -> Callable[..., SegmentationModel]:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if name not in _BUILDERS:
        raise KeyError(f"unknown model {name!r}; choose from {', '.join(_BUILDERS)}")
    return _BUILDERS[name]


def list_backbones(name: str) -> tuple[str, ...]:
    """Backbones model ``name`` can be built on; empty for models built as in their paper.

    Raises
    ------
    KeyError
        Unknown ``name`` (the message lists the choices).

    Examples
    --------
    >>> list_backbones("segnet"), list_backbones("enet")
    (('vgg16_bn',), ())
    """
    _lookup(name)
    return _BACKBONES.get(name, ())


def get_model(name: str, num_classes: int, *, backbone: str | None = None,
              output_stride: int | None = None, aux: bool = False,
              weights: WeightsLike = None, backbone_weights: WeightsLike = None,
              **kwargs: Any) -> SegmentationModel:
    """Build a segmentation network by name.

    Parameters
    ----------
    name : str
        One of :func:`list_models`: ``fcn32s``, ``fcn16s``, ``fcn8s``, ``unet``,
        ``segnet``, ``enet``, ``pspnet``, ``deeplabv3``, ``deeplabv3plus``,
        ``gcn``, ``upernet``, ``duc_hdc``, ``fc_densenet56/67/103`` or
        ``torchvision:<builder>``.
    num_classes : int
        Number of classes ``C``.
    backbone : str, optional
        One of :func:`list_backbones` for ``name``; the architecture's default
        when None.  Must stay None for U-Net, ENet and FC-DenseNet.
    output_stride : int, optional
        Stride of the backbone's last stage (8, 16 or 32 by dilation, where the
        backbone allows); the architecture's default when None.
    aux : bool, default False
        Add the auxiliary (deep-supervision) head, read by ``forward_aux``.
    weights : WeightsEnum, str, path or None
        Weights of the whole network: a local file (a ``state_dict`` of the
        same model, or a crfseg checkpoint); for ``torchvision:*`` models also
        torchvision's enum or its name (downloaded on first use).
    backbone_weights : WeightsEnum, str, path or None
        ImageNet weights of the backbone: torchvision's enum, its name
        (downloaded on first use) or a local ``state_dict`` file of the
        torchvision classification network.
    **kwargs
        Architecture-specific options, e.g. ``base_width`` and ``in_channels``
        for U-Net, ``channels`` for UperNet, ``kernel_size`` for GCN.

    Returns
    -------
    SegmentationModel
        ``forward(x)`` maps ``(N, 3, H, W)`` to logits ``(N, C, H, W)``; its
        ``build_config`` holds the arguments that rebuild it (for checkpoints).

    Raises
    ------
    KeyError
        Unknown ``name`` (the message lists the choices).
    ValueError
        Unknown backbone, unavailable output stride, weights that cannot be
        resolved or do not match.

    Examples
    --------
    >>> model = get_model("enet", 3).eval()
    >>> model(torch.zeros(1, 3, 33, 47)).shape
    torch.Size([1, 3, 33, 47])
    >>> get_model("deeplabv3", 3, backbone="resnet18").build_config["backbone"]
    'resnet18'
    """
    builder = _lookup(name)
    args: dict[str, Any] = {"output_stride": output_stride, "aux": aux,
                            "backbone_weights": backbone_weights, **kwargs}
    if backbone is not None:
        args["backbone"] = backbone
    if name.startswith(_TORCHVISION_PREFIX):
        model = builder(num_classes=num_classes, weights=weights, **args)
    else:
        model = builder(num_classes=num_classes, **args)
        if weights is not None:
            load_matching(model, read_state_dict(_local_file(name, weights)))
    model.build_config = {"name": name, "num_classes": num_classes, "backbone": backbone,
                          "output_stride": output_stride, "aux": aux, **kwargs}
    return model


def _local_file(name: str, weights: WeightsLike) -> Path:
    if isinstance(weights, (str, os.PathLike)) and Path(weights).is_file():
        return Path(weights)
    raise ValueError(
        f"weights for {name!r} must be a local file (a state_dict or a crfseg checkpoint); "
        f"crfseg publishes no pretrained {name} weights, got {weights!r}; "
        "use backbone_weights= for ImageNet backbone weights"
    )
