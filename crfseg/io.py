"""Every file crfseg reads or writes: images, score arrays, label PNGs, overlays.

This is the only module that guesses an array layout (``read_scores``) and the
only one that touches files.  Every write is atomic: the bytes go to a
temporary file in the destination folder, which is then renamed over the
target, so an interrupted run never leaves a half-written file.
"""

from __future__ import annotations

import contextlib
import gzip
import io as _io
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from PIL import Image

from crfseg._validation import check_choice, check_finite, check_ndim, check_number, to_numpy
from crfseg.palettes import check_palette

__all__ = [
    "read_image",
    "read_labels",
    "read_scores",
    "write_labels",
    "write_scores",
    "write_image",
    "write_overlay",
    "write_boundaries",
    "write_panel",
    "write_json",
    "write_bytes",
    "read_crf_params",
    "write_crf_params",
    "colorize",
    "labels_fit_png",
    "check_label_path",
    "SCORE_LAYOUTS",
    "MAX_PNG_LABEL",
    "LabelEncoding",
    "read_label_map",
    "write_label_map",
    "parse_unknown",
    "VolumeInfo",
    "is_volume_file",
    "read_volume",
    "read_volume_scores",
    "read_label_volume",
    "write_volume",
]

SCORE_LAYOUTS = ("auto", "chw", "hwc", "nchw")
#: The largest label a (16-bit) label PNG holds.
MAX_PNG_LABEL = 65535
PathLike = str | os.PathLike


def _existing_file(path: PathLike, what: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{what} file not found: {p}")
    if not p.is_file():
        raise ValueError(f"{what} path is not a file: {p}")
    return p


def _atomic_write_bytes(path: PathLike, data: bytes) -> Path:
    target = Path(path)
    folder = target.parent if str(target.parent) else Path(".")
    if not folder.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {folder}")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return target


@contextlib.contextmanager
def _opencv_silenced() -> Iterator[None]:
    """Hold back OpenCV's own log lines ("PNG input buffer is incomplete") for a while.

    Threads decoding at once share one silent period: the level the first one
    found is restored when the last one leaves.
    """
    global _silenced_readers, _opencv_log_level
    logging = getattr(getattr(cv2, "utils", None), "logging", None)
    if logging is None:
        yield
        return
    with _silence_lock:
        if _silenced_readers == 0:
            _opencv_log_level = logging.getLogLevel()
            logging.setLogLevel(logging.LOG_LEVEL_SILENT)
        _silenced_readers += 1
    try:
        yield
    finally:
        with _silence_lock:
            _silenced_readers -= 1
            if _silenced_readers == 0:
                logging.setLogLevel(_opencv_log_level)


_silence_lock = threading.Lock()
_silenced_readers = 0
_opencv_log_level = 0


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file as RGB.

    PNG, JPEG, BMP and TIFF (anything OpenCV or Pillow decode).  Gray images
    are repeated to three channels, alpha is dropped, 16-bit images are scaled
    to 8 bits (``round(v / 257)``).

    Parameters
    ----------
    path : str or path-like
        The image file.

    Returns
    -------
    image : (H, W, 3) uint8 ndarray
        RGB channel order.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file cannot be decoded as an image, or holds floating-point pixels.
    """
    p = _existing_file(path, "image")
    raw = np.fromfile(p, dtype=np.uint8)
    with _opencv_silenced():  # crfseg reports an undecodable file in one line of its own
        img = cv2.imdecode(raw, cv2.IMREAD_UNCHANGED) if raw.size else None
    if img is None:
        try:
            with Image.open(p) as pil:
                img = np.array(pil.convert("RGB"))
        except Exception as exc:
            raise ValueError(f"could not decode image file {p}: {exc}") from None
    elif img.ndim == 3:
        img = img[:, :, :3]
        img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_BGR2RGB)
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ValueError(
            f"image file {p} holds {img.dtype} pixels; crfseg reads 8- and 16-bit images "
            "(convert floating-point images to 8-bit RGB first)"
        )
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    return np.ascontiguousarray(img)


def read_labels(path: PathLike) -> np.ndarray:
    """Read a label map: indices of a palette ("P") PNG, or a gray 8/16-bit image.

    Palette PNGs (VOC's ground truth) are read as indices, never as colours.

    Parameters
    ----------
    path : str or path-like
        The label file.

    Returns
    -------
    labels : (H, W) uint8 or uint16 ndarray

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If the file is not an image, or is an RGB (colour-coded) image.
    """
    p = _existing_file(path, "label")
    try:
        with Image.open(p) as pil:
            mode = pil.mode
            arr = np.array(pil)
    except Exception as exc:
        raise ValueError(f"could not decode label file {p}: {exc}") from None
    if mode in ("P", "L", "1"):
        return arr.astype(np.uint8)
    if mode.startswith("I"):
        if arr.size and (arr.min() < 0 or arr.max() > 65535):
            raise ValueError(f"label file {p} holds values outside 0-65535")
        return arr.astype(np.uint16)
    raise ValueError(
        f"label file {p} is a {mode} image; labels must be a palette (P) or gray PNG of class "
        "indices (colour-coded ground truth must be converted to indices first)"
    )


def read_scores(path: PathLike, image_shape: Sequence[int] | None = None,
                layout: str = "auto", key: str | None = None) -> np.ndarray:
    """Read class scores from ``.npy`` or ``.npz`` and return them channels first.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file, or a ``.npz`` file (its only array, or ``key``).
    image_shape : sequence of int, optional
        ``(H, W)`` (or ``(H, W, 3)``) of the matching image; with
        ``layout="auto"`` the layout is the one whose spatial axes match it.
    layout : {"auto", "chw", "hwc", "nchw"}, default "auto"
        Layout of the stored array: ``(C, H, W)``, ``(H, W, C)`` or ``(1, C, H, W)``.
        Without ``image_shape``, ``auto`` takes the smallest axis as the class axis
        and asks for ``layout=`` when that is ambiguous.
    key : str, optional
        Array name inside a ``.npz`` file holding several arrays.

    Returns
    -------
    scores : (C, H, W) float ndarray, or (H, W) for a binary map
        The stored dtype is kept (float32 stays float32).  A 2-D array is a
        binary map (the foreground's probability or logit), returned as it is.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        For an unknown extension, a missing or unneeded ``key``, a shape that
        fits no layout, or an ambiguous layout.
    TypeError
        If the stored array is not floating point.
    """
    check_choice("layout", layout, SCORE_LAYOUTS)
    p = _existing_file(path, "scores")
    suffix = p.suffix.lower()
    if suffix not in (".npy", ".npz"):
        raise ValueError(f"scores file must be .npy or .npz, got {p}")
    try:
        loaded = np.load(p, allow_pickle=False)
    except Exception as exc:
        raise ValueError(f"could not read scores file {p}: {exc}") from None
    if suffix == ".npz":
        names = list(loaded.files)
        if key is None:
            if len(names) != 1:
                raise ValueError(
                    f"{p} holds arrays {names}; choose one with key= (--key in the CLI)"
                )
            key = names[0]
        if key not in names:
            raise ValueError(f"{p} has no array {key!r}; it holds {names}")
        arr = loaded[key]
    else:
        if key is not None:
            raise ValueError(f"key= applies to .npz files only, got {p}")
        arr = loaded
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"scores in {p} must be floating point, got dtype {arr.dtype}")
    return _scores_to_chw(arr, image_shape, layout, str(p))


def _scores_to_chw(arr: np.ndarray, image_shape: Sequence[int] | None, layout: str,
                   source: str) -> np.ndarray:
    check_ndim(f"scores in {source}", arr, (2, 3, 4),
               "(C, H, W), (H, W, C), (1, C, H, W) or a binary (H, W) map")
    if arr.ndim == 2:  # a binary map: the foreground's probability (or logit)
        if image_shape is not None and arr.shape != tuple(image_shape[:2]):
            raise ValueError(f"the binary map in {source} has shape {arr.shape} but the image "
                             f"is {tuple(image_shape[:2])}")
        return arr
    if arr.ndim == 4:
        if arr.shape[0] != 1 or layout not in ("auto", "nchw"):
            raise ValueError(
                f"scores in {source} have shape {arr.shape}; a 4-D array must be (1, C, H, W)"
            )
        return arr[0]
    if layout == "nchw":
        raise ValueError(f"layout='nchw' needs a 4-D array, {source} has shape {arr.shape}")
    if layout == "chw":
        chw = arr
    elif layout == "hwc":
        chw = np.moveaxis(arr, -1, 0)
    else:
        chw = _guess_layout(arr, image_shape, source)
    if image_shape is not None and chw.shape[1:] != tuple(image_shape[:2]):
        raise ValueError(
            f"scores in {source} have spatial size {chw.shape[1:]} (as {layout}) but the image "
            f"is {tuple(image_shape[:2])}"
        )
    return chw


def _guess_layout(arr: np.ndarray, image_shape: Sequence[int] | None, source: str) -> np.ndarray:
    if image_shape is not None:
        hw = tuple(int(s) for s in image_shape[:2])
        fits = [name for name, spatial in (("chw", arr.shape[1:]), ("hwc", arr.shape[:2]))
                if spatial == hw]
        if len(fits) == 2:
            raise ValueError(
                f"scores in {source} have shape {arr.shape}, which fits both (C, H, W) and "
                f"(H, W, C) for an image of {hw}; pass layout='chw' or 'hwc' (--layout)"
            )
        if not fits:
            raise ValueError(
                f"scores in {source} have shape {arr.shape}, which matches the image size {hw} "
                "neither as (C, H, W) nor as (H, W, C)"
            )
        layout = fits[0]
    else:
        smallest = int(np.argmin(arr.shape))
        if list(arr.shape).count(arr.shape[smallest]) > 1 or smallest == 1:
            raise ValueError(
                f"cannot tell the class axis of scores of shape {arr.shape} in {source}; "
                "pass layout='chw' or 'hwc' (--layout), or give the image"
            )
        layout = "chw" if smallest == 0 else "hwc"
    return arr if layout == "chw" else np.moveaxis(arr, -1, 0)


def _check_labels(labels: Any) -> np.ndarray:
    arr = to_numpy(labels)
    check_ndim("labels", arr, 2, "(H, W)")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"labels must be an integer array, got dtype {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"labels must be non-negative to be written as PNG, got {arr.min()}")
    if arr.size and arr.max() > MAX_PNG_LABEL:
        raise ValueError(f"labels must be <= {MAX_PNG_LABEL} to fit a 16-bit PNG, got {arr.max()}")
    return arr


def labels_fit_png(labels: Any) -> bool:
    """Whether :func:`write_labels` can store ``labels`` (every label in ``0 … 65535``).

    Parameters
    ----------
    labels : (H, W) integer ndarray or Tensor

    Returns
    -------
    bool

    Examples
    --------
    >>> labels_fit_png(np.array([[0, 65535]])), labels_fit_png(np.array([[0, 65536]]))
    (True, False)
    """
    arr = to_numpy(labels)
    check_ndim("labels", arr, 2, "(H, W)")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise TypeError(f"labels must be an integer array, got dtype {arr.dtype}")
    return arr.size == 0 or bool(arr.min() >= 0 and arr.max() <= MAX_PNG_LABEL)


_LOSSY_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".jfif", ".jp2", ".webp", ".avif", ".heic")


def check_label_path(path: PathLike, option: str = "path") -> Path:
    """Refuse a label file name that is not ``.png``: labels are always written as PNG.

    A lossy format (JPEG, WebP, …) would change label values at region
    borders, and PNG bytes under another suffix mislead every reader.

    Parameters
    ----------
    path : str or path-like
        The label file to be written.
    option : str, default "path"
        The name the error gives the path (an argument or a command-line option).

    Returns
    -------
    pathlib.Path

    Examples
    --------
    >>> check_label_path("labels.png").name
    'labels.png'
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".png":
        return p
    if suffix in _LOSSY_SUFFIXES:
        raise ValueError(f"{option} {str(p)!r} names a lossy {suffix} file, which would change "
                         "label values; labels are written as PNG: use a .png name")
    raise ValueError(f"{option} {str(p)!r} must end in .png (labels are written as PNG), "
                     f"got {suffix or 'no suffix'!r}")

def write_labels(path: PathLike, labels: Any, palette: Any = None) -> Path:
    """Write a label map as PNG.

    Without a palette: 8-bit gray when every label is < 256, 16-bit beyond.
    With a palette: an indexed ("P") PNG like VOC's ground truth, whose pixel
    values are the labels and whose colours come from the palette.

    Parameters
    ----------
    path : str or path-like
        Output file; must end in ``.png`` (see :func:`check_label_path`).
    labels : (H, W) integer ndarray or Tensor
        Labels in ``0 … 65535`` (``0 … 255`` with a palette).
    palette : (K, 3) array, optional
        RGB colour of each label (K ≤ 256); missing rows are black.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    check_label_path(path)
    arr = _check_labels(labels)
    buffer = _io.BytesIO()
    if palette is not None:
        pal = check_palette(palette)
        if arr.size and arr.max() > 255:
            raise ValueError(f"a palette PNG holds labels 0-255, got {arr.max()}")
        img = Image.fromarray(arr.astype(np.uint8), mode="P")
        full = np.zeros((256, 3), dtype=np.uint8)
        full[: len(pal)] = pal
        img.putpalette(full.ravel().tolist())
        img.save(buffer, format="PNG")
    else:
        dtype = np.uint8 if (arr.size == 0 or arr.max() < 256) else np.uint16
        ok, encoded = cv2.imencode(".png", np.ascontiguousarray(arr.astype(dtype)))
        if not ok:
            raise ValueError(f"could not encode labels of shape {arr.shape} as PNG")
        buffer.write(encoded.tobytes())
    return _atomic_write_bytes(path, buffer.getvalue())


def write_scores(path: PathLike, scores: Any) -> Path:
    """Write a score array as ``.npy`` (atomically).

    Parameters
    ----------
    path : str or path-like
        Output file; must end in ``.npy``.
    scores : ndarray or Tensor
        Any array, e.g. ``(C, H, W)`` float32 probabilities or logits.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if Path(path).suffix.lower() != ".npy":
        raise ValueError(f"scores are written as .npy, got {path}")
    buffer = _io.BytesIO()
    np.save(buffer, to_numpy(scores), allow_pickle=False)
    return _atomic_write_bytes(path, buffer.getvalue())


def write_bytes(path: PathLike, data: bytes) -> Path:
    """Write raw bytes atomically (temporary file, then rename).

    Parameters
    ----------
    path : str or path-like
        Output file; its folder must exist.
    data : bytes
        The file's whole content, e.g. a serialised checkpoint.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes, got {type(data).__name__}")
    return _atomic_write_bytes(path, bytes(data))


def write_json(path: PathLike, data: Any) -> Path:
    """Write a JSON document (atomically), NaN written as ``null``.

    Parameters
    ----------
    path : str or path-like
        Output file.
    data : dict or list
        JSON-serialisable data; numpy arrays and scalars are converted.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    import json

    def plain(value: Any) -> Any:
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, np.ndarray)):
            return [plain(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and value != value:
            return None
        return value

    text = json.dumps(plain(data), indent=2, allow_nan=False)
    return _atomic_write_bytes(path, text.encode("utf-8"))


def write_image(path: PathLike, image: Any) -> Path:
    """Write an RGB (or gray) uint8 image; the format follows the file extension.

    Parameters
    ----------
    path : str or path-like
        Output file (``.png``, ``.jpg``, ``.bmp``, ``.tif``).
    image : (H, W, 3) or (H, W) uint8 ndarray

    Returns
    -------
    pathlib.Path
        The written file.
    """
    img = to_numpy(image)
    check_ndim("image", img, (2, 3), "(H, W) or (H, W, 3)")
    if img.dtype != np.uint8 or (img.ndim == 3 and img.shape[2] != 3):
        raise ValueError(f"image must be uint8 (H, W, 3) or (H, W), got {img.dtype} {img.shape}")
    suffix = Path(path).suffix.lower() or ".png"
    bgr = cv2.cvtColor(img, cv2.COLOR_RGB2BGR) if img.ndim == 3 else img
    ok, encoded = cv2.imencode(suffix, np.ascontiguousarray(bgr))
    if not ok:
        raise ValueError(f"could not encode an image as {suffix} for {path}")
    return _atomic_write_bytes(path, encoded.tobytes())


def colorize(labels: Any, palette: Any = None, ignore_index: int | None = 255) -> np.ndarray:
    """Colour a label map.

    Parameters
    ----------
    labels : (H, W) integer ndarray or Tensor
    palette : (K, 3) array, optional
        Colours of labels ``0 … K-1``; default the VOC colour map.  Labels
        beyond the palette wrap around it.
    ignore_index : int or None, default 255
        Pixels with this label are drawn black.

    Returns
    -------
    (H, W, 3) uint8 ndarray

    Examples
    --------
    >>> colorize(np.array([[0, 1]]))[0, 1].tolist()
    [128, 0, 0]
    """
    from crfseg.palettes import voc_colormap

    arr = _check_labels(labels).astype(np.int64)
    pal = voc_colormap(256) if palette is None else check_palette(palette)
    out = pal[arr % len(pal)]
    if ignore_index is not None:
        out[arr == ignore_index] = 0
    return out


def _blend(image: np.ndarray, labels: np.ndarray, palette: Any, alpha: float,
           ignore_index: int | None) -> np.ndarray:
    from skimage.segmentation import find_boundaries

    colours = colorize(labels, palette, ignore_index)
    out = (1 - alpha) * image.astype(np.float32) + alpha * colours.astype(np.float32)
    out[find_boundaries(labels, mode="inner")] = 255
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _check_image_and_labels(image: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    img = to_numpy(image)
    check_ndim("image", img, 3, "(H, W, 3) uint8")
    if img.shape[2] != 3 or img.dtype != np.uint8:
        raise ValueError(f"image must be (H, W, 3) uint8, got {img.dtype} {img.shape}")
    lab = _check_labels(labels)
    if lab.shape != img.shape[:2]:
        raise ValueError(
            f"labels {lab.shape} and image {img.shape[:2]} must have the same height and width"
        )
    return img, lab


def write_overlay(path: PathLike, image: Any, labels: Any, palette: Any = None,
                  alpha: float = 0.5, ignore_index: int | None = 255) -> Path:
    """Write the image with the coloured labels blended over it and region borders in white.

    Parameters
    ----------
    path : str or path-like
        Output image file.
    image : (H, W, 3) uint8 ndarray
    labels : (H, W) integer ndarray
    palette : (K, 3) array, optional
        Label colours (default: VOC colour map).
    alpha : float, default 0.5
        Weight of the label colours (0 = image only, 1 = labels only).
    ignore_index : int or None, default 255
        Label drawn black.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    alpha = check_number("alpha", alpha, low=0, high=1)
    img, lab = _check_image_and_labels(image, labels)
    return write_image(path, _blend(img, lab, palette, alpha, ignore_index))


def write_boundaries(path: PathLike, image: Any, labels: Any,
                     color: Sequence[int] = (255, 0, 0)) -> Path:
    """Write the image with the inner boundary pixels of every region drawn in one colour.

    Unlike :func:`write_overlay` the regions are not coloured, so any number
    of labels (region maps of split-and-merge, say) can be shown.

    Parameters
    ----------
    path : str or path-like
        Output image file.
    image : (H, W, 3) uint8 ndarray
    labels : (H, W) integer ndarray
        Region or class labels in ``0 … 65535``; a pixel is a boundary pixel
        when a 4-neighbour has another label.
    color : (3,) sequence of int, default (255, 0, 0)
        RGB colour of the boundaries, each in 0–255.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    from skimage.segmentation import find_boundaries

    rgb = np.asarray(color)
    if rgb.shape != (3,) or not np.issubdtype(rgb.dtype, np.integer) or rgb.min() < 0 \
            or rgb.max() > 255:
        raise ValueError(f"color must be three integers in 0-255, got {color!r}")
    img, lab = _check_image_and_labels(image, labels)
    out = img.copy()
    out[find_boundaries(lab, mode="inner")] = rgb.astype(np.uint8)
    return write_image(path, out)


def write_panel(path: PathLike, image: Any, label_maps: Sequence[Any],
                titles: Sequence[str] | None = None, palette: Any = None,
                ignore_index: int | None = 255) -> Path:
    """Write a side-by-side panel: the image, then each label map, with titles.

    The usual call shows ``image | before | after | ground truth``.

    Parameters
    ----------
    path : str or path-like
        Output image file.
    image : (H, W, 3) uint8 ndarray
    label_maps : sequence of (H, W) integer ndarrays
        Drawn in order, right of the image.
    titles : sequence of str, optional
        One title per tile, the image's included (``len(label_maps) + 1``).
    palette : (K, 3) array, optional
        Label colours (default: VOC colour map).
    ignore_index : int or None, default 255
        Label drawn black.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    if len(label_maps) == 0:
        raise ValueError("label_maps must hold at least one label map")
    img = _check_image_and_labels(image, label_maps[0])[0]
    tiles = [img] + [
        _blend(img, _check_image_and_labels(img, lab)[1], palette, 0.75, ignore_index)
        for lab in label_maps
    ]
    if titles is not None:
        if len(titles) != len(tiles):
            raise ValueError(
                f"titles must have {len(tiles)} entries (image + {len(label_maps)} label maps), "
                f"got {len(titles)}"
            )
        height = img.shape[0]
        scale = max(0.4, min(1.0, img.shape[1] / 400))
        bar = int(28 * scale) + 6
        titled = []
        for tile, title in zip(tiles, titles):
            canvas = np.full((height + bar, tile.shape[1], 3), 255, dtype=np.uint8)
            canvas[bar:] = tile
            cv2.putText(canvas, str(title), (4, bar - 8), cv2.FONT_HERSHEY_SIMPLEX, scale,
                        (0, 0, 0), 1, cv2.LINE_AA)
            titled.append(canvas)
        tiles = titled
    gap = np.full((tiles[0].shape[0], 4, 3), 255, dtype=np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    return write_image(path, np.concatenate(row, axis=1))


#: ``kind`` of a DenseCRF parameter file, and the version this crfseg writes and reads.
CRF_PARAMS_KIND = "crfseg.dense_crf_params"
CRF_PARAMS_VERSION = 1
#: The keys of a DenseCRF parameter file (besides ``kind`` and ``version``).
CRF_PARAMS_KEYS = ("crf", "n_iter", "gaussian_sxy", "gaussian_compat", "bilateral_sxy",
                   "bilateral_srgb", "bilateral_compat", "unary_scale")
#: Keys a parameter file may add, each ``(C,)``: per-class factors on the kernels' Potts weights
#: (``>= 0``), and ``class_bias``, one offset per class on the log-probabilities (any sign).
CRF_PARAMS_CLASS_KEYS = ("gaussian_class_factors", "bilateral_class_factors", "class_bias")


def write_crf_params(path: PathLike, params: dict[str, Any], *,
                     num_classes: int | None = None) -> Path:
    """Write DenseCRF parameters (as :func:`crfseg.crf.tune_dense_crf` finds them) to JSON.

    Parameters
    ----------
    path : str or path-like
        Output file.
    params : dict
        The keys of ``CRF_PARAMS_KEYS``: ``crf`` (``"dense"``, or ``"none"``
        when no CRF helps) and the numbers; optionally those of
        ``CRF_PARAMS_CLASS_KEYS``, each a ``(C,)`` sequence of finite numbers
        (the factors ``>= 0``, the bias of any sign) or None (then left out of
        the file).
    num_classes : int, optional
        ``C`` the per-class vectors must have.

    Returns
    -------
    pathlib.Path
        The written file, ``{"kind": "crfseg.dense_crf_params", "version": 1, ...}``.

    Raises
    ------
    ValueError
        Keys missing or unknown; per-class vectors of another length than
        ``num_classes`` or each other, NaN or infinite; negative factors.
    """
    if not isinstance(params, dict):
        raise TypeError(f"params must be a dict, got {type(params).__name__}")
    vectors = _check_crf_param_keys(params, "params", num_classes)
    return write_json(path, {"kind": CRF_PARAMS_KIND, "version": CRF_PARAMS_VERSION,
                             **{key: params[key] for key in CRF_PARAMS_KEYS},
                             **{key: list(value) for key, value in vectors.items()}})


def read_crf_params(path: PathLike, *, num_classes: int | None = None) -> dict[str, Any]:
    """Read a DenseCRF parameter file written by :func:`write_crf_params`.

    Parameters
    ----------
    path : str or path-like
        A JSON file with ``"kind": "crfseg.dense_crf_params"`` and ``"version": 1``.
    num_classes : int, optional
        ``C`` the file's per-class vectors must have (checked when given).

    Returns
    -------
    dict
        The parameters, without ``kind`` and ``version``; per-class factors
        and the class bias, when the file has them, as tuples of floats (the
        scalar values are unchecked: :class:`crfseg.crf.DenseCRFParams`
        checks them).

    Raises
    ------
    ValueError
        Not JSON, not crfseg's parameter file, another version, keys missing
        or unknown, per-class vectors of the wrong length or not finite,
        negative factors.
    """
    import json

    p = _existing_file(path, "CRF parameter")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"CRF parameter file {p} is not valid JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("kind") != CRF_PARAMS_KIND:
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{p} is not a crfseg DenseCRF parameter file: expected \"kind\": "
                         f"\"{CRF_PARAMS_KIND}\", got {kind!r} (write one with crfseg tune)")
    if data.get("version") != CRF_PARAMS_VERSION:
        raise ValueError(f"{p} has version {data.get('version')!r}; this crfseg reads version "
                         f"{CRF_PARAMS_VERSION}")
    params = {k: v for k, v in data.items() if k not in ("kind", "version")}
    vectors = _check_crf_param_keys(params, str(p), num_classes)
    return {**{key: params[key] for key in CRF_PARAMS_KEYS}, **vectors}


def _check_crf_param_keys(params: dict[str, Any], source: str,
                          num_classes: int | None) -> dict[str, tuple[float, ...]]:
    """Check the keys and return the per-class vectors that are set, as tuples."""
    unknown = sorted(set(params) - set(CRF_PARAMS_KEYS) - set(CRF_PARAMS_CLASS_KEYS))
    if unknown:
        raise ValueError(f"{source} has unknown keys {unknown}; the keys are "
                         f"{list(CRF_PARAMS_KEYS)}, optionally {list(CRF_PARAMS_CLASS_KEYS)}")
    missing = [key for key in CRF_PARAMS_KEYS if key not in params]
    if missing:
        raise ValueError(f"{source} lacks the keys {missing}")
    vectors = {key: _check_class_factors(f"{source}: {key}", params[key], num_classes,
                                         signed=key == "class_bias")
               for key in CRF_PARAMS_CLASS_KEYS if params.get(key) is not None}
    _check_same_classes(vectors, f"{source}: ")
    return vectors


def _check_same_classes(vectors: dict[str, Any], source: str = "") -> None:
    """Raise when the per-class vectors given (name: sequence) have different lengths."""
    if len({len(value) for value in vectors.values()}) > 1:
        raise ValueError(f"{source}" + " and ".join(vectors) + " must have one value per "
                         f"class each, got lengths {[len(value) for value in vectors.values()]}")


def _check_class_factors(name: str, factors: Any, num_classes: int | None = None, *,
                         signed: bool = False) -> tuple[float, ...]:
    """Per-class factors on a Potts weight: ``(C,)`` finite numbers ``>= 0``, ``C >= 2``.

    Parameters
    ----------
    name : str
        What the factors are called in error messages.
    factors : sequence of float or (C,) ndarray
        One factor per class.
    num_classes : int, optional
        ``C`` they must have.
    signed : bool, default False
        Accept negative values (a class bias).

    Returns
    -------
    tuple of float
        The factors.

    Raises
    ------
    TypeError
        Not a sequence or array, or an entry that is not a real number.
    ValueError
        Not one-dimensional, fewer than 2 entries, another length than
        ``num_classes``, a NaN or infinite entry, a negative one unless
        ``signed``.
    """
    noun = "offset" if signed else "factor"
    if isinstance(factors, (str, bytes, dict)) or not isinstance(
            factors, (list, tuple, np.ndarray)):
        raise TypeError(f"{name} must be a sequence of one {noun} per class, got "
                        f"{type(factors).__name__}")
    if np.ndim(factors) != 1:
        raise ValueError(f"{name} must be a (C,) sequence of one {noun} per class, got shape "
                         f"{np.shape(factors)}")
    if len(factors) < 2:
        raise ValueError(f"{name} must have one {noun} per class for at least 2 classes, got "
                         f"{len(factors)}")
    if num_classes is not None and len(factors) != num_classes:
        raise ValueError(f"{name} has {len(factors)} {noun}s but there are "
                         f"num_classes={num_classes} classes")
    return tuple(float(check_number(f"{name}[{i}]", value.item()
                                    if isinstance(value, np.generic) else value,
                                    low=None if signed else 0))
                 for i, value in enumerate(factors))


# ------------------------------------------------------------------ label maps in any encoding

LABEL_ENCODINGS = ("gray", "palette", "rgb")


@dataclass(frozen=True)
class LabelEncoding:
    """How a label file stores its classes, so that results go back in the same form.

    Attributes
    ----------
    kind : {"gray", "palette", "rgb"}
        A gray 8/16-bit image, a palette ("P") PNG of indices, or a
        colour-coded RGB image.
    values : (C,) or (C, 3) ndarray
        The stored value of every class ``0 … C-1``: a gray value, a palette
        index, or an RGB colour.
    palette : (256, 3) uint8 ndarray or None
        The palette of a palette PNG.
    """

    kind: str
    values: np.ndarray
    palette: np.ndarray | None = None

    @property
    def num_classes(self) -> int:
        """The number of classes ``C``."""
        return int(len(self.values))


def parse_unknown(text: str) -> int | tuple[int, int, int]:
    """Parse an unknown-label value: ``"255"`` (gray value or index) or ``"R,G,B"``.

    Examples
    --------
    >>> parse_unknown("0"), parse_unknown("0, 0, 0")
    (0, (0, 0, 0))
    """
    parts = [part.strip() for part in str(text).split(",")]
    try:
        values = [int(part) for part in parts]
    except ValueError:
        raise ValueError(f"unknown must be a gray value or palette index such as 255, or an "
                         f"R,G,B colour such as 0,0,0, got {text!r}") from None
    if len(values) not in (1, 3) or min(values) < 0 or (len(values) == 3 and max(values) > 255):
        raise ValueError(f"unknown must be a gray value or palette index such as 255, or an "
                         f"R,G,B colour with each part in 0-255, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def read_label_map(path: PathLike, unknown: int | Sequence[int] | None = None,
                   max_classes: int = 256) -> tuple[np.ndarray, LabelEncoding]:
    """Read an annotation in any encoding as class indices ``0 … C-1``.

    The classes are the distinct values present (gray values, palette
    indices or RGB colours), in increasing order (colours ordered as the
    integer ``R + 256 G + 65536 B``), except the unknown one.

    Parameters
    ----------
    path : str or path-like
        A gray (8- or 16-bit), palette ("P") or RGB(A) image file.
    unknown : int or (R, G, B), optional
        The value of unlabelled pixels: a gray value or palette index, or a
        colour (for palette files: every index of that colour).
    max_classes : int, default 256
        More distinct values than this is an error (a photo or a
        JPEG-compressed annotation, not a label map).

    Returns
    -------
    labels : (H, W) int64 ndarray
        Class indices, ``-1`` where the pixel is unknown.
    encoding : LabelEncoding
        What :func:`write_label_map` needs to write labels back in the same form.

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        An undecodable file, more than ``max_classes`` values, an unknown
        value of the wrong form, or fewer than one class.
    """
    p = _existing_file(path, "label")
    try:
        with Image.open(p) as pil:
            mode = pil.mode
            palette = (np.array(pil.getpalette() or [], np.uint8).reshape(-1, 3)
                       if mode == "P" else None)
            arr = np.array(pil.convert("RGB") if mode in ("RGBA", "LA", "CMYK", "YCbCr", "HSV")
                           else pil)
    except Exception as exc:
        raise ValueError(f"could not decode label file {p}: {exc}") from None
    if arr.ndim == 3:
        kind, codes = "rgb", _rgb_codes(arr[..., :3])
    elif mode == "P":
        kind, codes = "palette", arr.astype(np.int64)
    else:
        kind, codes = "gray", arr.astype(np.int64)
    unknown_codes = _unknown_codes(unknown, kind, palette, p)
    present = np.unique(codes)
    classes = present[~np.isin(present, unknown_codes)]
    if len(classes) > max_classes:
        raise ValueError(f"label file {p} holds {len(classes)} distinct "
                         f"{'colours' if kind == 'rgb' else 'values'}, more than {max_classes}; "
                         "is it a photo or a lossy (JPEG) copy of a label map?")
    if len(classes) == 0:
        raise ValueError(f"label file {p} holds no labelled pixel (every pixel is unknown)")
    labels = np.searchsorted(classes, codes)
    labels[np.isin(codes, unknown_codes)] = -1
    values = (np.stack([classes & 0xFF, (classes >> 8) & 0xFF, classes >> 16], 1).astype(np.uint8)
              if kind == "rgb" else classes)
    full = None
    if palette is not None:
        full = np.zeros((256, 3), np.uint8)
        full[: min(len(palette), 256)] = palette[:256]
    return labels.astype(np.int64), LabelEncoding(kind, values, full)


def _rgb_codes(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)


def _unknown_codes(unknown: Any, kind: str, palette: np.ndarray | None,
                   source: Path) -> np.ndarray:
    """The stored codes that mean "unknown" in a file of this kind."""
    if unknown is None:
        return np.zeros(0, np.int64)
    if isinstance(unknown, str):
        unknown = parse_unknown(unknown)
    if np.ndim(unknown) == 0:
        if kind == "rgb":
            raise ValueError(f"label file {source} is colour-coded (RGB); give the unknown "
                             f"label as an R,G,B colour, got {unknown!r}")
        return np.array([int(unknown)], np.int64)
    colour = np.asarray(unknown)
    if colour.shape != (3,) or colour.min() < 0 or colour.max() > 255:
        raise ValueError(f"unknown must be a value or an (R, G, B) colour in 0-255, "
                         f"got {unknown!r}")
    if kind == "rgb":
        return _rgb_codes(colour[None])
    if kind == "palette" and palette is not None:
        return np.flatnonzero((palette == colour).all(1)).astype(np.int64)
    raise ValueError(f"label file {source} is a gray image; give the unknown label as a gray "
                     f"value, not the colour {unknown!r}")


def write_label_map(path: PathLike, labels: Any, encoding: LabelEncoding) -> Path:
    """Write class indices ``0 … C-1`` in the encoding a label file came in.

    Parameters
    ----------
    path : str or path-like
        Output file (PNG).
    labels : (H, W) integer ndarray or Tensor
        Class indices in ``[0, encoding.num_classes)``.
    encoding : LabelEncoding
        From :func:`read_label_map`: gray values, palette indices (with the
        palette) or colours come back as they were read.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    arr = _check_labels(labels)
    if not isinstance(encoding, LabelEncoding):
        raise TypeError(f"encoding must be a LabelEncoding, got {type(encoding).__name__}")
    if arr.size and arr.max() >= encoding.num_classes:
        raise ValueError(f"labels must lie in [0, {encoding.num_classes}) for this encoding, "
                         f"got {arr.max()}")
    stored = encoding.values[arr]
    if encoding.kind == "rgb":
        return write_image(path, stored)
    if encoding.kind == "palette":
        return write_labels(path, stored, palette=encoding.palette)
    return write_labels(path, stored)


# ------------------------------------------------------------------ volumes (NIfTI, .npy)

NIFTI_SUFFIXES = (".nii", ".nii.gz")


@dataclass(frozen=True)
class VolumeInfo:
    """Where a volume came from: its voxel spacing and, for NIfTI, its affine and header.

    Attributes
    ----------
    spacing : (sz, sy, sx) floats or None
        Voxel size along ``(D, H, W)``; None for ``.npy`` files.
    affine : (4, 4) ndarray or None
        The NIfTI affine, written back with the results.
    header : nibabel header or None
        The NIfTI header, written back with the results.
    """

    spacing: tuple[float, float, float] | None = None
    affine: np.ndarray | None = None
    header: Any = None


def is_volume_file(path: PathLike) -> bool:
    """Whether ``path`` names a NIfTI file (``.nii``, ``.nii.gz``)."""
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def _nibabel() -> Any:
    try:
        import nibabel
    except ImportError:  # pragma: no cover - a runtime dependency
        raise ImportError("reading NIfTI volumes needs nibabel: pip install nibabel") from None
    return nibabel


def _read_array(path: PathLike, what: str) -> tuple[np.ndarray, VolumeInfo]:
    """The raw array of a NIfTI or ``.npy`` file, NIfTI axes converted to ``(Z, Y, X, ...)``."""
    p = _existing_file(path, what)
    if is_volume_file(p):
        nib = _nibabel()
        try:
            img = nib.load(str(p))
            data = np.asanyarray(img.dataobj)
        except Exception as exc:
            raise ValueError(f"could not read NIfTI {what} file {p}: {exc}") from None
        if data.ndim not in (3, 4):
            raise ValueError(f"{what} in {p} must be (X, Y, Z) or (X, Y, Z, K), got shape "
                             f"{data.shape}")
        zooms = [float(z) for z in img.header.get_zooms()[:3]]
        if min(zooms) <= 0 or not all(np.isfinite(zooms)):
            raise ValueError(f"{p} has voxel sizes {tuple(zooms)} in its header; they must be "
                             "positive (give --spacing for .npy copies instead)")
        order = (2, 1, 0) + ((3,) if data.ndim == 4 else ())
        info = VolumeInfo(tuple(zooms[::-1]), np.asarray(img.affine), img.header.copy())
        return np.ascontiguousarray(np.transpose(data, order)), info
    if p.suffix.lower() != ".npy":
        raise ValueError(f"{what} volumes must be NIfTI (.nii, .nii.gz) or .npy, got {p}")
    try:
        return np.load(p, allow_pickle=False), VolumeInfo()
    except Exception as exc:
        raise ValueError(f"could not read {what} file {p}: {exc}") from None


def read_volume(path: PathLike) -> tuple[np.ndarray, VolumeInfo]:
    """Read a volume's intensities: NIfTI ``(X, Y, Z[, K])`` or ``.npy`` ``(D, H, W[, K])``.

    Parameters
    ----------
    path : str or path-like
        ``.nii``, ``.nii.gz`` or ``.npy``.

    Returns
    -------
    volume : (D, H, W) or (D, H, W, K) float32 ndarray
        ``D, H, W`` are NIfTI's ``Z, Y, X``; ``K`` modalities.
    info : VolumeInfo
        The spacing ``(sz, sy, sx)`` from the header (NIfTI), the affine and
        the header, for :func:`write_volume`.

    Raises
    ------
    ValueError
        An unreadable file, a shape that is not 3-D or 4-D, NaN or inf, or
        non-positive voxel sizes in the header.
    """
    arr, info = _read_array(path, "image")
    if arr.ndim not in (3, 4):
        raise ValueError(f"the volume in {path} must be (D, H, W) or (D, H, W, K), got shape "
                         f"{arr.shape}")
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"the volume in {path} must hold numbers, got dtype {arr.dtype}")
    volume = arr.astype(np.float32)
    check_finite(f"the volume in {path}", volume)
    return volume, info


def read_volume_scores(path: PathLike,
                       volume_shape: Sequence[int] | None = None) -> tuple[np.ndarray, VolumeInfo]:
    """Read class scores of a volume as ``(C, D, H, W)``.

    NIfTI files hold ``(X, Y, Z, C)`` (probabilities or logits, one class
    per volume of the 4th axis) or ``(X, Y, Z)`` (a binary map);
    ``.npy`` files ``(C, D, H, W)`` or a binary ``(D, H, W)``.

    Parameters
    ----------
    path : str or path-like
        ``.nii``, ``.nii.gz`` or ``.npy``.
    volume_shape : sequence of int, optional
        ``(D, H, W)`` of the matching image; the scores must have it.

    Returns
    -------
    scores : (C, D, H, W) or (D, H, W) float ndarray
        float32 stays float32, other types become float64.
    info : VolumeInfo

    Raises
    ------
    ValueError
        A shape that is not a volume's or differs from ``volume_shape``, NaN or inf.
    """
    arr, info = _read_array(path, "scores")
    if arr.ndim not in (3, 4):
        raise ValueError(f"scores in {path} must be (C, D, H, W) or a binary (D, H, W) "
                         f"(NIfTI: (X, Y, Z, C) or (X, Y, Z)), got shape {arr.shape}")
    if info.affine is not None and arr.ndim == 4:
        arr = np.ascontiguousarray(np.moveaxis(arr, -1, 0))  # (Z, Y, X, C) -> (C, Z, Y, X)
    if arr.dtype == np.bool_ or not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"scores in {path} must hold numbers, got dtype {arr.dtype}")
    arr = arr if arr.dtype == np.float32 else arr.astype(np.float64)
    check_finite(f"scores in {path}", arr)
    spatial = arr.shape[-3:]
    if volume_shape is not None and tuple(spatial) != tuple(volume_shape[:3]):
        raise ValueError(f"scores in {path} have spatial shape (D, H, W) = {tuple(spatial)} but "
                         f"the image volume is {tuple(volume_shape[:3])}")
    return arr, info


def read_label_volume(path: PathLike, unknown: int | None = None,
                      max_classes: int = 256) -> tuple[np.ndarray, LabelEncoding, VolumeInfo]:
    """Read a label volume (a segmentation to refine) as class indices ``0 … C-1``.

    Parameters
    ----------
    path : str or path-like
        NIfTI ``(X, Y, Z)`` or ``.npy`` ``(D, H, W)`` of integer labels.
    unknown : int, optional
        The value of unlabelled voxels.
    max_classes : int, default 256
        More distinct values than this is an error.

    Returns
    -------
    labels : (D, H, W) int64 ndarray
        Class indices (the distinct values present, in increasing order),
        ``-1`` where the voxel is unknown.
    encoding : LabelEncoding
        ``kind="gray"`` with the stored value of every class.
    info : VolumeInfo

    Raises
    ------
    ValueError
        Not a 3-D volume of whole numbers, too many values, or no labelled voxel.
    """
    arr, info = _read_array(path, "label")
    if arr.ndim != 3:
        raise ValueError(f"labels in {path} must be (D, H, W) (NIfTI: (X, Y, Z)), got shape "
                         f"{arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        if not np.issubdtype(arr.dtype, np.floating) or not np.isfinite(arr).all() \
                or (arr != np.round(arr)).any():
            raise ValueError(f"labels in {path} must be whole numbers, got dtype {arr.dtype}")
    codes = arr.astype(np.int64)
    if isinstance(unknown, str):
        unknown = parse_unknown(unknown)
    if unknown is not None and np.ndim(unknown) != 0:
        raise ValueError(f"labels in {path} are a volume of values; give the unknown label as a "
                         f"value, not the colour {unknown!r}")
    present = np.unique(codes)
    classes = present[present != unknown] if unknown is not None else present
    if len(classes) > max_classes:
        raise ValueError(f"labels in {path} hold {len(classes)} distinct values, more than "
                         f"{max_classes}; is it an intensity volume rather than labels?")
    if len(classes) == 0:
        raise ValueError(f"labels in {path} hold no labelled voxel (every voxel is unknown)")
    labels = np.searchsorted(classes, codes)
    if unknown is not None:
        labels[codes == unknown] = -1
    return labels.astype(np.int64), LabelEncoding("gray", classes), info


def write_volume(path: PathLike, volume: Any, info: VolumeInfo | None = None) -> Path:
    """Write a ``(D, H, W)`` or ``(C, D, H, W)`` volume as NIfTI or ``.npy`` (atomically).

    Parameters
    ----------
    path : str or path-like
        ``.nii``, ``.nii.gz`` or ``.npy``.
    volume : (D, H, W) or (C, D, H, W) ndarray or Tensor
        Labels or scores; NIfTI stores ``(X, Y, Z)`` / ``(X, Y, Z, C)``.
    info : VolumeInfo, optional
        The source image's affine and header (NIfTI), kept in the output with
        the data type of ``volume``; without it, an identity affine with
        ``info.spacing`` (or unit) voxel sizes.

    Returns
    -------
    pathlib.Path
        The written file.
    """
    arr = to_numpy(volume)
    if arr.ndim not in (3, 4):
        raise ValueError(f"volume must be (D, H, W) or (C, D, H, W), got shape {arr.shape}")
    if arr.dtype == np.int64 and arr.size and arr.min() >= 0 and arr.max() < 256:
        arr = arr.astype(np.uint8)
    elif arr.dtype == np.int64:
        arr = arr.astype(np.int32)
    if not is_volume_file(path):
        if Path(path).suffix.lower() != ".npy":
            raise ValueError(f"volumes are written as NIfTI (.nii, .nii.gz) or .npy, got {path}")
        return write_scores(path, arr)
    nib = _nibabel()
    data = np.transpose(arr, (2, 1, 0) if arr.ndim == 3 else (3, 2, 1, 0))
    info = info or VolumeInfo()
    if info.header is not None:
        header = info.header.copy()
        header.set_data_dtype(data.dtype)
        header.set_slope_inter(1.0, 0.0)
        img = nib.Nifti1Image(data, info.affine, header)
    else:
        affine = np.diag([*(info.spacing or (1.0, 1.0, 1.0))[::-1], 1.0])
        img = nib.Nifti1Image(data, affine)
    payload = img.to_bytes()
    if str(path).lower().endswith(".gz"):
        payload = gzip.compress(payload, mtime=0)
    return _atomic_write_bytes(path, payload)
