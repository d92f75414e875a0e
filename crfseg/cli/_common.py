"""What several subcommands share: error kinds, file extensions, palettes, CRF options."""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np

__all__ = [
    "IMAGE_EXTENSIONS",
    "PALETTE_CHOICES",
    "SCORE_EXTENSIONS",
    "USER_ERRORS",
    "add_crf_arguments",
    "crf_options",
    "message",
    "palette",
    "percent",
]

#: Errors caused by the user's input: one line on stderr and exit code 2.
USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, FileNotFoundError, KeyError, NotADirectoryError, PermissionError,
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SCORE_EXTENSIONS = (".npy", ".npz")
PALETTE_CHOICES = ("voc", "cityscapes", "camvid", "ade20k", "cocostuff")


def message(exc: BaseException) -> str:
    """The text of an error, without the quotes ``str(KeyError)`` adds."""
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def palette(name: str | None) -> np.ndarray | None:
    """The ``(K, 3)`` colours of a dataset palette named on the command line (None: none)."""
    if name is None:
        return None
    from crfseg.palettes import get_palette

    return get_palette(name)


def percent(value: float) -> str:
    """A score as a percentage with two decimals, or ``n/a`` for NaN."""
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


def add_crf_arguments(parser: argparse.ArgumentParser) -> None:
    """The dense-CRF options of ``refine`` and ``predict``."""
    group = parser.add_argument_group("dense CRF")
    group.add_argument("--iterations", type=int, default=5, help="mean-field iterations (5)")
    group.add_argument("--gaussian-sxy", type=float, default=3.0,
                       help="smoothness kernel std in pixels (3)")
    group.add_argument("--gaussian-compat", type=float, default=3.0,
                       help="smoothness kernel Potts weight (3)")
    group.add_argument("--sxy", "--bilateral-sxy", dest="bilateral_sxy", type=float,
                       default=80.0, help="appearance kernel std in pixels (80)")
    group.add_argument("--srgb", "--bilateral-srgb", dest="bilateral_srgb", type=float,
                       default=13.0, help="appearance kernel colour std, 0-255 units (13)")
    group.add_argument("--compat", "--bilateral-compat", dest="bilateral_compat", type=float,
                       default=10.0, help="appearance kernel Potts weight (10)")


def crf_options(args: argparse.Namespace) -> dict[str, Any]:
    """The ``DenseCRF`` keyword arguments the options ask for, validated before any file is read."""
    from crfseg.crf import DenseCRF

    options = {
        "n_iter": args.iterations,
        "gaussian_sxy": args.gaussian_sxy,
        "gaussian_compat": args.gaussian_compat,
        "bilateral_sxy": args.bilateral_sxy,
        "bilateral_srgb": args.bilateral_srgb,
        "bilateral_compat": args.bilateral_compat,
    }
    for name in ("backend", "device"):  # refine's engine choice
        if getattr(args, name, None) is not None:
            options[name] = getattr(args, name)
    DenseCRF(**options)
    return options
