"""Inference on whole images: normalisation, optional overlapping tiles, logits out.

``predict_logits`` turns an ``(H, W, 3)`` uint8 image into the ``(C, H, W)``
float32 logits that ``crfseg refine --unary`` and :class:`crfseg.crf.DenseCRF`
read.  Large images can run in overlapping square tiles whose logits are
averaged where they overlap, so memory stays bounded by the tile size.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from crfseg._validation import check_array, check_int, check_ndim, shape_of
from crfseg.models._base import SegmentationModel

__all__ = ["predict_logits", "image_to_tensor", "tile_starts"]


def image_to_tensor(image: np.ndarray, model: SegmentationModel,
                    device: torch.device | str | None = None) -> torch.Tensor:
    """Scale a uint8 image to [0, 1], normalise it with ``model.normalization``.

    Parameters
    ----------
    image : (H, W) or (H, W, K) uint8 ndarray
        ``K`` must equal ``model.in_channels`` (a 2-D image counts as ``K = 1``).
    model : SegmentationModel
        Gives ``in_channels`` and ``normalization``.
    device : torch.device or str, optional
        Where the tensor goes (the CPU when None).

    Returns
    -------
    (1, K, H, W) float32 Tensor

    Raises
    ------
    TypeError
        Not a uint8 numpy array.
    ValueError
        A channel count the model does not take, or an empty image.
    """
    check_array("image", image, allow_tensor=False)
    check_ndim("image", image, (2, 3), "(H, W) or (H, W, K)")
    if image.dtype != np.uint8:
        raise TypeError(f"image must be uint8 (0-255), got dtype {image.dtype}")
    channels = 1 if image.ndim == 2 else image.shape[2]
    if channels != model.in_channels:
        raise ValueError(
            f"image has {channels} channel(s) (shape {shape_of(image)}) but the model expects "
            f"{model.in_channels}"
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise ValueError(f"image must not be empty, got shape {shape_of(image)}")
    x = torch.from_numpy(np.ascontiguousarray(image)).to(device=device)
    x = x.reshape(image.shape[0], image.shape[1], channels).permute(2, 0, 1)[None]
    mean = torch.tensor(model.normalization["mean"], dtype=torch.float32, device=x.device)
    std = torch.tensor(model.normalization["std"], dtype=torch.float32, device=x.device)
    return (x.float() / 255.0 - mean[:, None, None]) / std[:, None, None]


def tile_starts(size: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of length ``tile`` covering ``[0, size)``, overlapping by ``overlap``.

    The last tile is shifted back to end exactly at ``size``; a ``size`` no
    larger than ``tile`` gives one tile at 0.

    Examples
    --------
    >>> tile_starts(10, 4, 1)
    [0, 3, 6]
    >>> tile_starts(11, 4, 1)
    [0, 3, 6, 7]
    """
    if size <= tile:
        return [0]
    step = tile - overlap
    starts = list(range(0, size - tile + 1, step))
    if starts[-1] != size - tile:
        starts.append(size - tile)
    return starts


def predict_logits(model: SegmentationModel, image: np.ndarray, *, tile: int | None = None,
                   overlap: int | None = None,
                   device: torch.device | str | None = None) -> np.ndarray:
    """Logits of one image, whole or in overlapping tiles.

    Parameters
    ----------
    model : SegmentationModel
        Put in eval mode and moved to ``device``.
    image : (H, W) or (H, W, K) uint8 ndarray
        ``K = model.in_channels``.
    tile : int, optional
        Tile side in pixels; the whole image runs at once when None or when
        the image fits in one tile.
    overlap : int, optional
        Pixels shared by neighbouring tiles (``tile // 4`` by default), where
        their logits are averaged.
    device : torch.device or str, optional
        Where the network runs; the model's current device when None.

    Returns
    -------
    logits : (C, H, W) float32 ndarray

    Raises
    ------
    ValueError
        Wrong channel count, ``tile < 1`` or ``overlap`` outside ``[0, tile)``.

    Examples
    --------
    >>> from crfseg.models import get_model
    >>> model = get_model("enet", 4)
    >>> image = np.zeros((40, 70, 3), dtype=np.uint8)
    >>> predict_logits(model, image, tile=32).shape
    (4, 40, 70)
    """
    if not isinstance(model, SegmentationModel):
        raise TypeError(f"model must be a crfseg SegmentationModel, got {type(model).__name__}")
    if tile is not None:
        tile = check_int("tile", tile, low=1)
        overlap = tile // 4 if overlap is None else check_int("overlap", overlap, low=0,
                                                               high=tile - 1)
    elif overlap is not None:
        raise ValueError("overlap applies to tiled inference; give tile as well")
    if device is None:
        device = next(model.parameters()).device
    model = model.to(device).eval()
    x = image_to_tensor(image, model, device)
    height, width = x.shape[-2:]
    with torch.inference_mode():
        if tile is None or (height <= tile and width <= tile):
            logits = model(x)[0]
        else:
            logits = _tiled(model, x, tile, overlap)
    return logits.float().cpu().numpy()


def _tiled(model: Any, x: torch.Tensor, tile: int, overlap: int) -> torch.Tensor:
    height, width = x.shape[-2:]
    total = torch.zeros((model.num_classes, height, width), dtype=torch.float32, device=x.device)
    count = torch.zeros((1, height, width), dtype=torch.float32, device=x.device)
    for top in tile_starts(height, tile, overlap):
        for left in tile_starts(width, tile, overlap):
            window = (slice(top, top + tile), slice(left, left + tile))
            total[(slice(None), *window)] += model(x[(..., *window)])[0].float()
            count[(slice(None), *window)] += 1
    return total / count
