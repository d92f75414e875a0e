"""``crfseg split-merge``: split-and-merge regions (and gray-level classes) of a gray image."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

__all__ = ["add_parser", "run"]

_SPLIT_OPTIONS = ("predicate", "threshold", "sigma", "min_size")


def add_parser(subparsers: Any) -> None:
    """Register ``split-merge`` and its options."""
    p = subparsers.add_parser(
        "split-merge", help="split-and-merge segmentation of a gray image",
        description="Split a gray image into homogeneous quadtree blocks and merge adjacent "
                    "regions (crfseg.classical.split_and_merge); with --classes or "
                    "--thresholds, gray-level rules assign a class to every pixel and regions "
                    "never mix classes (gray_level_segment). RGB images are converted to "
                    "luminance (ITU-R BT.601).",
    )
    p.add_argument("--image", required=True, help="image file")
    p.add_argument("-o", "--output", required=True,
                   help="region labels PNG (1..K; 16-bit beyond 255 regions)")
    p.add_argument("--overlay", help="PNG of the image with region boundaries drawn in red")
    p.add_argument("--predicate", choices=("range", "std", "stat"),
                   help="homogeneity rule (range): max-min, standard deviation, or a "
                        "statistical test for noisy images")
    p.add_argument("--threshold", type=float,
                   help="limit of the rule: gray levels for range/std (0), k for stat (5)")
    p.add_argument("--sigma", type=float, help="noise std for stat (estimated by default)")
    p.add_argument("--min-size", type=int, help="smallest block side of the split (1)")
    p.add_argument("--min-area", type=int, default=0,
                   help="merge regions smaller than this into their most similar neighbour (0)")
    p.add_argument("--connectivity", type=int, default=4, choices=(4, 8),
                   help="regions touching by a side (4) or also by a corner (8)")
    p.add_argument("--classes", type=int, help="gray-level classes found by multi-Otsu")
    p.add_argument("--thresholds", help="comma-separated gray-level class boundaries")
    p.add_argument("--class-map", help="class map PNG (0..C-1), with --classes/--thresholds")
    p.set_defaults(func=run)


def _parse_thresholds(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--thresholds must be comma-separated numbers, got {text!r}") from None


def _check_options(args: argparse.Namespace, semantic: bool) -> None:
    if semantic:
        given = [f"--{name.replace('_', '-')}" for name in _SPLIT_OPTIONS
                 if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} cannot be combined with --classes/--thresholds "
                             "(gray-level rules decide the regions)")
    elif args.class_map is not None:
        raise ValueError("--class-map needs --classes or --thresholds")
    from crfseg.io import check_label_path

    for option, value in (("-o/--output", args.output), ("--class-map", args.class_map)):
        if value is not None:
            check_label_path(value, option)
    for option, value in (("-o/--output", args.output), ("--overlay", args.overlay),
                          ("--class-map", args.class_map)):
        if value is not None and not Path(value).resolve().parent.is_dir():
            raise FileNotFoundError(f"{option}: folder does not exist: {Path(value).parent}")


def run(args: argparse.Namespace) -> int:
    """Segment the image; write regions, class map and overlay; print one line; return 0."""
    from crfseg import io
    from crfseg.classical import estimate_noise_sigma, gray_level_segment, split_and_merge

    semantic = args.classes is not None or args.thresholds is not None
    _check_options(args, semantic)
    image = io.read_image(args.image)
    start = time.perf_counter()
    if semantic:
        thresholds = _parse_thresholds(args.thresholds) if args.thresholds is not None else None
        class_map, regions = gray_level_segment(image, thresholds=thresholds,
                                                classes=args.classes, min_area=args.min_area,
                                                connectivity=args.connectivity)
        rule = (f"{int(class_map.max()) + 1} classes" if args.thresholds is None
                else f"thresholds {args.thresholds}")
    else:
        options = {name: getattr(args, name) for name in _SPLIT_OPTIONS
                   if getattr(args, name) is not None}
        regions = split_and_merge(image, min_area=args.min_area,
                                  connectivity=args.connectivity, **options)
        rule = f"predicate {args.predicate or 'range'}"
        if args.threshold is not None:
            rule += f", threshold {args.threshold:g}"
        if args.predicate == "stat" and args.sigma is None:
            rule += f", estimated sigma {estimate_noise_sigma(image):.2f}"
    seconds = time.perf_counter() - start
    count = int(regions.max())
    if not io.labels_fit_png(regions):
        raise ValueError(f"{count} regions do not fit a 16-bit PNG; raise --threshold or "
                         "--min-area")
    io.write_labels(args.output, regions)
    written = [args.output]
    if semantic and args.class_map is not None:
        io.write_labels(args.class_map, class_map)
        written.append(args.class_map)
    if args.overlay is not None:
        io.write_boundaries(args.overlay, image, regions, color=(255, 0, 0))
        written.append(args.overlay)
    h, w = regions.shape
    print(f"split-merge {Path(args.image).name}: {w}x{h}, {rule}, {count} regions in "
          f"{seconds:.2f} s -> {', '.join(written)}")
    return 0
