"""``crfseg evaluate``: score predicted label maps against ground truth."""

from __future__ import annotations

import argparse
from typing import Any

from crfseg.cli._batch import pair_inputs
from crfseg.cli._common import IMAGE_EXTENSIONS, PALETTE_CHOICES

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``evaluate`` and its options."""
    p = subparsers.add_parser(
        "evaluate", help="score predicted label maps against ground truth",
        description="Per-class IoU/Dice and the summary scores of predicted label PNGs "
                    "(files, or folders paired by file stem).",
    )
    p.add_argument("--pred", required=True, help="predicted label PNG or folder")
    p.add_argument("--gt", required=True, help="ground-truth label PNG or folder")
    p.add_argument("--num-classes", type=int, required=True)
    p.add_argument("--ignore-index", type=int, default=255)
    p.add_argument("--class-names", help="comma-separated class names, or a palette name")
    p.add_argument("--json", help="write every score to this JSON file")
    p.set_defaults(func=run)


def _class_names(text: str | None, num_classes: int) -> list[str] | None:
    if text is None:
        return None
    if text in PALETTE_CHOICES:
        from crfseg.palettes import get_class_names

        names = list(get_class_names(text))
    else:
        names = [n.strip() for n in text.split(",")]
    if len(names) != num_classes:
        raise ValueError(f"--class-names gives {len(names)} names for --num-classes {num_classes}")
    return names


def run(args: argparse.Namespace) -> int:
    """Accumulate every (prediction, ground truth) pair; print the table; return 0."""
    from crfseg import io
    from crfseg.metrics import SegmentationMetrics

    metrics = SegmentationMetrics(args.num_classes, args.ignore_index,
                                  _class_names(args.class_names, args.num_classes))
    pairs = pair_inputs(args.pred, args.gt, "--pred", "--gt", IMAGE_EXTENSIONS, IMAGE_EXTENSIONS)
    for stem, pred_path, gt_path in pairs:
        pred = io.read_labels(pred_path)
        target = io.read_labels(gt_path)
        if pred.shape != target.shape:
            raise ValueError(f"{stem}: prediction {pred.shape} and ground truth {target.shape} "
                             "differ in size")
        try:
            metrics.update(pred, target)
        except ValueError as exc:
            raise ValueError(f"{stem}: {exc}") from None
    print(f"{len(pairs)} image(s)")
    print(metrics.summary())
    if args.json is not None:
        scores = metrics.compute()
        scores["class_names"] = metrics.class_names
        scores["num_images"] = len(pairs)
        io.write_json(args.json, scores)
    return 0
