"""Self-describing model checkpoints: everything ``crfseg predict`` needs in one file.

A checkpoint records the architecture and the :func:`get_model` arguments
that rebuild it, the weights, the class names, the palette and the input
normalisation.  It holds only tensors and plain Python values, so it is read
with ``torch.load(weights_only=True)``: loading never runs pickled code.
"""

from __future__ import annotations

import io as _io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crfseg._validation import check_number
from crfseg.models._base import SegmentationModel
from crfseg.models.registry import get_model
from crfseg.models.weights import load_matching, safe_torch_load
from crfseg.palettes import check_palette

__all__ = ["save_checkpoint", "load_checkpoint", "write_torch_file", "CHECKPOINT_FORMAT",
           "CHECKPOINT_VERSION"]

CHECKPOINT_FORMAT = "crfseg-model"
CHECKPOINT_VERSION = 1
_PLAIN = (str, int, float, bool, type(None))


def _check_plain(name: str, value: Any) -> Any:
    """Require JSON-like data (what ``weights_only`` loading accepts); tuples become lists."""
    if isinstance(value, _PLAIN):
        return value
    if isinstance(value, (list, tuple)):
        return [_check_plain(f"{name}[{i}]", v) for i, v in enumerate(value)]
    if isinstance(value, Mapping):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{name} keys must be str, got {type(key).__name__}")
            out[key] = _check_plain(f"{name}[{key!r}]", v)
        return out
    raise TypeError(
        f"{name} must hold only str, int, float, bool, None, lists and dicts, "
        f"got {type(value).__name__}"
    )


def _check_class_names(class_names: Any, num_classes: int) -> list[str] | None:
    if class_names is None:
        return None
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise TypeError(f"class_names must be a sequence of str, got {type(class_names).__name__}")
    names = list(class_names)
    if len(names) != num_classes or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"class_names must be {num_classes} strings (one per class), got {len(names)} "
            f"entries of types {sorted({type(n).__name__ for n in names})}"
        )
    return names


def _check_normalization(normalization: Any, in_channels: int) -> dict[str, list[float]]:
    if not isinstance(normalization, Mapping) or set(normalization) != {"mean", "std"}:
        raise ValueError(
            "normalization must be a dict with exactly the keys 'mean' and 'std', got "
            f"{normalization!r}"
        )
    out = {}
    for key in ("mean", "std"):
        values = list(np.asarray(normalization[key], dtype=np.float64).ravel())
        if len(values) != in_channels:
            raise ValueError(f"normalization[{key!r}] must have {in_channels} values (one per "
                             f"input channel), got {len(values)}")
        low = 0.0 if key == "std" else None
        out[key] = [check_number(f"normalization[{key!r}]", v, low=low,
                                 low_inclusive=key != "std") for v in values]
    return out


def write_torch_file(path: str | os.PathLike, content: Mapping[str, Any]) -> Path:
    """Serialise ``content`` with ``torch.save`` and write it atomically.

    The one writer of crfseg's checkpoints (model checkpoints here, training
    states in :mod:`crfseg.training.checkpoint`): the bytes are built in
    memory and renamed into place, so an interrupted run never leaves a
    truncated file.  Keep ``content`` to tensors and plain values so that it
    reads back with ``torch.load(weights_only=True)``
    (:func:`crfseg.models.weights.safe_torch_load`).

    Parameters
    ----------
    path : str or path-like
        Output file; its folder must exist.
    content : dict
        What to store.

    Returns
    -------
    pathlib.Path
        The written file.

    Examples
    --------
    >>> import tempfile
    >>> from crfseg.models.weights import safe_torch_load
    >>> path = write_torch_file(f"{tempfile.mkdtemp()}/state.pt", {"step": 3})
    >>> safe_torch_load(path, "state")
    {'step': 3}
    """
    from crfseg import io

    if not isinstance(content, Mapping):
        raise TypeError(f"content must be a dict, got {type(content).__name__}")
    buffer = _io.BytesIO()
    torch.save(dict(content), buffer)
    return io.write_bytes(path, buffer.getvalue())


def save_checkpoint(path: str | os.PathLike, model: SegmentationModel, *,
                    class_names: Sequence[str] | None = None, palette: Any = None,
                    normalization: Mapping[str, Sequence[float]] | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Write a model and what it needs for inference to one file (atomically).

    Parameters
    ----------
    path : str or path-like
        Output file (conventionally ``.pt``); its folder must exist.
    model : SegmentationModel
        A model built by :func:`crfseg.models.get_model` (its ``build_config``
        says how to rebuild it).
    class_names : sequence of str, optional
        One name per class; the model's own ``class_names`` when None.
    palette : (K, 3) integer array, optional
        Colour of each class (``K >= num_classes``), for label PNGs; the
        model's own ``palette`` when None.
    normalization : dict, optional
        ``{"mean": [...], "std": [...]}``, one value per input channel, applied
        to images scaled to [0, 1]; the model's own ``normalization`` (ImageNet's
        unless changed) when None.
    extra : dict, optional
        Anything else worth keeping (epoch, scores, dataset): str, numbers,
        bools, None, lists and dicts.

    Returns
    -------
    pathlib.Path
        The written file.

    Raises
    ------
    TypeError
        ``model`` is not a :class:`SegmentationModel`, or ``extra`` holds other types.
    ValueError
        ``model`` was not built by ``get_model``; class names, palette or
        normalisation do not fit the model.

    Examples
    --------
    >>> import tempfile
    >>> from crfseg.models import get_model
    >>> model = get_model("enet", 2).eval()
    >>> folder = tempfile.mkdtemp()
    >>> path = save_checkpoint(f"{folder}/enet.pt", model, class_names=["bg", "fg"],
    ...                        palette=[[0, 0, 0], [255, 0, 0]])
    >>> load_checkpoint(path).class_names
    ('bg', 'fg')
    """
    if not isinstance(model, SegmentationModel):
        raise TypeError(f"model must be a crfseg SegmentationModel, got {type(model).__name__}")
    if model.build_config is None:
        raise ValueError(
            "model has no build_config: build it with crfseg.models.get_model so the "
            "checkpoint can rebuild it"
        )
    config = _check_plain("model.build_config", dict(model.build_config))
    num_classes = model.num_classes
    names = _check_class_names(class_names if class_names is not None else model.class_names,
                               num_classes)
    colours = palette if palette is not None else model.palette
    if colours is not None:
        colours = check_palette(colours, num_classes).astype(int).tolist()
    norm = _check_normalization(normalization if normalization is not None
                                else model.normalization, model.in_channels)
    content = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "architecture": config.pop("name"),
        "arguments": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "class_names": names,
        "palette": colours,
        "normalization": norm,
        "extra": _check_plain("extra", dict(extra or {})),
    }
    return write_torch_file(path, content)


def load_checkpoint(path: str | os.PathLike,
                    map_location: str | torch.device | None = None) -> SegmentationModel:
    """Rebuild a model from a :func:`save_checkpoint` file, ready for inference.

    Parameters
    ----------
    path : str or path-like
        The checkpoint.
    map_location : str or torch.device, optional
        Device the model is moved to (CPU when None).

    Returns
    -------
    SegmentationModel
        In eval mode, with ``class_names`` (tuple or None), ``palette``
        ((K, 3) uint8 ndarray or None), ``normalization`` and
        ``checkpoint_extra`` (the saved ``extra`` dict) set.

    Raises
    ------
    FileNotFoundError
        No such file.
    ValueError
        The file is truncated, not a torch file, not a crfseg model checkpoint,
        from a newer crfseg, or its weights do not fit its architecture.
    """
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"checkpoint file not found: {p}")
    if not p.is_file():
        raise ValueError(f"checkpoint path is not a file: {p}")
    try:
        device = torch.device(map_location if map_location is not None else "cpu")
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"map_location must name a torch device such as 'cpu' or 'cuda:0', "
                         f"got {map_location!r}") from err
    content = safe_torch_load(p, "checkpoint")
    if not isinstance(content, dict) or content.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(
            f"{p} is not a crfseg model checkpoint (no 'format': {CHECKPOINT_FORMAT!r} entry); "
            "write one with crfseg.models.save_checkpoint, or load a bare state_dict with "
            "get_model(..., weights=path)"
        )
    version = content.get("version")
    if not isinstance(version, int) or version > CHECKPOINT_VERSION:
        raise ValueError(f"{p} has checkpoint version {version!r}; this crfseg reads versions "
                         f"up to {CHECKPOINT_VERSION}")
    arguments = dict(content["arguments"])
    num_classes = arguments.pop("num_classes")
    model = get_model(content["architecture"], num_classes, **arguments)
    load_matching(model, content["state_dict"], f"checkpoint {p.name}")
    names = content.get("class_names")
    model.class_names = tuple(names) if names is not None else None
    palette = content.get("palette")
    model.palette = np.asarray(palette, dtype=np.uint8) if palette is not None else None
    model.normalization = {k: tuple(v) for k, v in content["normalization"].items()}
    model.checkpoint_extra = dict(content.get("extra") or {})
    return model.to(device).eval()
