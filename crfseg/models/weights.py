"""Where pretrained weights come from: torchvision's enums or a local file.

A ``weights`` argument anywhere in :mod:`crfseg.models` is one of

* ``None`` — random initialisation, nothing is read or downloaded;
* a torchvision weights enum member (``ResNet50_Weights.IMAGENET1K_V1``), or
  its name as a string (``"IMAGENET1K_V1"``, ``"ResNet50_Weights.IMAGENET1K_V1"``,
  ``"DEFAULT"``) — fetched by torchvision's own download mechanism and cache;
* a path to a local file holding a ``state_dict`` (``torch.save(model.state_dict())``)
  or a crfseg checkpoint, which is read without any network access.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision.models import WeightsEnum, get_model_weights

__all__ = ["WeightsLike", "resolve_weights", "read_state_dict", "load_weights", "load_matching",
           "safe_torch_load"]

WeightsLike = WeightsEnum | str | os.PathLike | None

# Files saved by torch.save conventionally end in one of these; a string with
# such a suffix is a path even before we look at the file system.
_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")


def resolve_weights(torchvision_name: str, weights: WeightsLike,
                    argument: str = "weights") -> WeightsEnum | Path | None:
    """Turn a ``weights`` argument into a torchvision enum member or a local path.

    Nothing is downloaded here: an enum member is only looked up.

    Parameters
    ----------
    torchvision_name : str
        The torchvision builder the weights belong to, e.g. ``"resnet50"`` or
        ``"deeplabv3_resnet50"``.
    weights : WeightsEnum, str, path or None
        See the module docstring.
    argument : str, default "weights"
        The argument's name, used in error messages.

    Returns
    -------
    WeightsEnum member, Path or None

    Raises
    ------
    ValueError
        An enum of another model, an unknown enum name, or a missing file.
    TypeError
        Anything else.

    Examples
    --------
    >>> resolve_weights("resnet18", "IMAGENET1K_V1")
    ResNet18_Weights.IMAGENET1K_V1
    >>> resolve_weights("resnet18", None) is None
    True
    """
    if weights is None:
        return None
    enum_cls = get_model_weights(torchvision_name)
    if isinstance(weights, WeightsEnum):
        if not isinstance(weights, enum_cls):
            raise ValueError(
                f"{argument} must be a member of {enum_cls.__name__} for {torchvision_name}, "
                f"got {type(weights).__name__}.{weights.name}"
            )
        return weights
    if isinstance(weights, os.PathLike) or (
        isinstance(weights, str) and (weights.endswith(_FILE_SUFFIXES) or os.sep in weights
                                      or Path(weights).is_file())
    ):
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"{argument} file {str(path)!r} does not exist")
        return path
    if isinstance(weights, str):
        prefix = enum_cls.__name__ + "."
        name = weights[len(prefix):] if weights.startswith(prefix) else weights
        if name in enum_cls.__members__:
            return enum_cls[name]
        choices = ", ".join(repr(n) for n in enum_cls.__members__)
        raise ValueError(
            f"{argument}={weights!r} is neither a file nor a member of {enum_cls.__name__} "
            f"(choose from {choices})"
        )
    raise TypeError(
        f"{argument} must be None, a torchvision weights enum, its name or a file path, "
        f"got {type(weights).__name__}"
    )


def read_state_dict(path: str | os.PathLike, argument: str = "weights") -> dict[str, torch.Tensor]:
    """Read a ``state_dict`` from a local file (a bare one or a crfseg checkpoint's).

    Parameters
    ----------
    path : str or path
        A file written by ``torch.save``.
    argument : str, default "weights"
        The argument's name, used in error messages.

    Returns
    -------
    dict of str to Tensor, on the CPU

    Raises
    ------
    ValueError
        The file cannot be read by ``torch.load`` or holds no ``state_dict``.
    """
    content = safe_torch_load(path, f"{argument} file")
    if isinstance(content, dict) and isinstance(content.get("state_dict"), dict):
        content = content["state_dict"]
    if not isinstance(content, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in content.items()
    ):
        raise ValueError(
            f"{argument} file {str(path)!r} does not hold a state_dict "
            f"(a mapping of parameter names to tensors), got {type(content).__name__}"
        )
    return content


def safe_torch_load(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)`` on the CPU; any failure becomes a one-line ValueError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch reports truncation and foreign files with many types
        raise ValueError(
            f"{what} {str(path)!r} cannot be read: it is truncated, was not written by "
            f"torch.save, or holds more than tensors and plain values ({type(err).__name__})"
        ) from None


def load_weights(module: nn.Module, torchvision_name: str, weights: WeightsLike,
                 argument: str = "weights", progress: bool = True) -> None:
    """Load ``weights`` into ``module`` in place (enum: download; path: read).

    Parameters
    ----------
    module : nn.Module
        The model whose ``state_dict`` the weights match.
    torchvision_name : str
        The torchvision builder the enum must belong to.
    weights : WeightsEnum, str, path or None
        See the module docstring; ``None`` leaves ``module`` untouched.
    argument : str, default "weights"
        The argument's name, used in error messages.
    progress : bool, default True
        Show torchvision's download progress bar.

    Raises
    ------
    ValueError
        Unresolvable weights, or a ``state_dict`` whose names or shapes do not
        match ``module``.
    """
    resolved = resolve_weights(torchvision_name, weights, argument)
    if resolved is None:
        return
    if isinstance(resolved, Path):
        state_dict = read_state_dict(resolved, argument)
    else:
        state_dict = resolved.get_state_dict(progress=progress, check_hash=True)
    load_matching(module, state_dict, argument)


def load_matching(module: nn.Module, state_dict: dict[str, Any], argument: str = "weights") -> None:
    """``module.load_state_dict(state_dict)`` with a short, clear error on mismatch."""
    try:
        module.load_state_dict(state_dict, strict=True)
    except RuntimeError as err:
        own = module.state_dict()
        missing = sorted(set(own) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(own))
        resized = sorted(k for k in set(own) & set(state_dict)
                         if tuple(own[k].shape) != tuple(state_dict[k].shape))
        parts = []
        for label, keys in (("missing", missing), ("unexpected", unexpected),
                            ("of another shape", resized)):
            if keys:
                parts.append(f"{len(keys)} {label} (e.g. {keys[0]!r})")
        detail = "; ".join(parts) or str(err)
        raise ValueError(
            f"{argument} do not match {type(module).__name__}: {detail}; were they saved "
            "from a model built with the same architecture, backbone and num_classes?"
        ) from err
