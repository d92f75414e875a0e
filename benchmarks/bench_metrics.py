"""Confusion-matrix accumulation: crfseg's numpy and torch paths beside a per-image bincount loop.

100 images of 512x512, 21 classes, about 5 % ignored pixels (label 255), in one run:

    .venv/bin/python benchmarks/bench_metrics.py [--repeats 5]

Every path must produce the same matrix; the table gives the best of the repeats.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from crfseg.metrics import SegmentationMetrics


def bincount_loop(preds: np.ndarray, targets: np.ndarray, num_classes: int) -> np.ndarray:
    """The usual per-image recipe: mask, combine the two labels, bincount."""
    total = np.zeros((num_classes, num_classes), dtype=np.int64)
    for pred, target in zip(preds, targets):
        keep = target != 255
        index = num_classes * target[keep].astype(np.int64) + pred[keep]
        total += np.bincount(index, minlength=num_classes**2).reshape(num_classes, num_classes)
    return total


def crfseg_loop(preds, targets, num_classes: int) -> np.ndarray:
    metrics = SegmentationMetrics(num_classes)
    for pred, target in zip(preds, targets):
        metrics.update(pred, target)
    return metrics.matrix


def best_time(function, repeats: int) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    shape = (args.images, args.size, args.size)
    targets = rng.integers(0, args.classes, shape, dtype=np.int64).astype(np.uint8)
    targets[rng.random(shape) < 0.05] = 255
    preds = rng.integers(0, args.classes, shape, dtype=np.int64)  # argmax output is int64
    t_preds, t_targets = torch.from_numpy(preds), torch.from_numpy(targets)
    rows = [
        ("np.bincount per image (baseline)", lambda: bincount_loop(preds, targets, args.classes)),
        ("crfseg numpy path", lambda: crfseg_loop(preds, targets, args.classes)),
        ("crfseg torch path (CPU)", lambda: crfseg_loop(t_preds, t_targets, args.classes)),
    ]
    if torch.cuda.is_available():
        c_preds, c_targets = t_preds.cuda(), t_targets.cuda()

        def cuda_path():
            out = crfseg_loop(c_preds, c_targets, args.classes)
            torch.cuda.synchronize()
            return out

        rows.append(("crfseg torch path (CUDA)", cuda_path))
    pixels = preds.size
    print(f"{args.images} images of {args.size}x{args.size}, {args.classes} classes, "
          f"{(targets == 255).mean():.1%} ignored; torch threads {torch.get_num_threads()}; "
          f"best of {args.repeats}")
    print(f"{'path':<34} {'time (ms)':>10} {'Mpix/s':>8} {'speed-up':>9}")
    reference = None
    baseline = None
    for name, function in rows:
        seconds, matrix = best_time(function, args.repeats)
        if reference is None:
            reference, baseline = matrix, seconds
        elif not np.array_equal(matrix, reference):
            raise SystemExit(f"{name} disagrees with the baseline")
        print(f"{name:<34} {1000 * seconds:10.1f} {pixels / seconds / 1e6:8.0f} "
              f"{baseline / seconds:8.2f}x")


if __name__ == "__main__":
    main()
