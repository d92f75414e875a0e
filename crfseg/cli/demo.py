"""``crfseg demo``: refine a built-in scene and show before/after."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from crfseg.cli._common import percent

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``demo`` and its options."""
    p = subparsers.add_parser(
        "demo", help="refine a built-in scene and show before/after",
        description="Build a scene with exact ground truth and coarse, noisy CNN-like scores, "
                    "refine them with the dense CRF, write a panel PNG and print mIoU.",
    )
    p.add_argument("--output-dir", default="demo_output", help="where the PNGs go (demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Write the scene, its scores, labels and panel; print the scores; return 0."""
    from crfseg import io
    from crfseg._demo import DEMO_CLASSES, DEMO_COLORS, coarse_logits, make_scene
    from crfseg.crf import DenseCRF
    from crfseg.crf.dense import scores_to_labels
    from crfseg.metrics import SegmentationMetrics

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    image, target = make_scene(seed=args.seed)
    logits = coarse_logits(target, len(DEMO_CLASSES), seed=args.seed)
    before = scores_to_labels(logits, "logits")
    start = time.perf_counter()
    after = DenseCRF().predict(logits, image)
    seconds = time.perf_counter() - start
    scores = {}
    for name, labels in (("before", before), ("after", after)):
        metrics = SegmentationMetrics(len(DEMO_CLASSES), class_names=DEMO_CLASSES)
        metrics.update(labels, target)
        scores[name] = metrics
    io.write_image(out / "image.png", image)
    io.write_scores(out / "logits.npy", logits)
    io.write_labels(out / "ground_truth.png", target, palette=DEMO_COLORS)
    io.write_labels(out / "refined.png", after, palette=DEMO_COLORS)
    panel = io.write_panel(out / "panel.png", image, [before, after, target],
                           titles=["image", "CNN (coarse)", "dense CRF", "ground truth"],
                           palette=DEMO_COLORS)
    b, a = scores["before"].compute(), scores["after"].compute()
    print(scores["after"].summary())
    print(
        f"demo: {image.shape[1]}x{image.shape[0]} scene, {len(DEMO_CLASSES)} classes, dense CRF "
        f"in {seconds:.2f} s: mIoU {percent(b['mean_iou'])} -> {percent(a['mean_iou'])} "
        f"({100 * (a['mean_iou'] - b['mean_iou']):+.2f} points), pixel accuracy "
        f"{percent(b['pixel_accuracy'])} -> {percent(a['pixel_accuracy'])}; panel: {panel}"
    )
    return 0
