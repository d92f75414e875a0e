"""``crfseg refine``: refine CNN scores with a dense CRF, one file or a folder of them."""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crfseg.cli._batch import (
    BatchReport,
    OutputSpec,
    output_paths,
    pair_inputs,
    parse_shard,
    run_batch,
    select_pairs,
)
from crfseg.cli._common import (
    IMAGE_EXTENSIONS,
    PALETTE_CHOICES,
    SCORE_EXTENSIONS,
    add_crf_arguments,
    crf_options,
    palette,
    percent,
)
from crfseg.cli.tune import add_params_argument, read_params

__all__ = ["add_parser", "run"]


@dataclass
class RefineJob:
    """Everything one refinement needs; picklable for worker processes."""

    name: str
    unary: Path
    image: Path
    gt: Path | None
    output: Path | None
    probs: Path | None
    overlay: Path | None
    crf_options: dict[str, Any]
    input_type: str
    layout: str
    key: str | None
    num_classes: int | None
    ignore_index: int
    palette: np.ndarray | None
    params: Any = None  # DenseCRFParams of --params, replacing crf_options' kernels


def _refine_one(job: RefineJob) -> dict[str, Any]:
    from crfseg import io
    from crfseg.crf import DenseCRF
    from crfseg.crf.dense import scores_to_labels
    from crfseg.metrics import confusion_matrix

    image = io.read_image(job.image)
    scores = io.read_scores(job.unary, image_shape=image.shape, layout=job.layout, key=job.key)
    start = time.perf_counter()
    if job.params is not None:
        engine = {k: job.crf_options[k] for k in ("backend", "device") if k in job.crf_options}
        probs = job.params.refine(scores, image, job.input_type, **engine)
    else:
        probs = DenseCRF(**job.crf_options).refine(scores, image, input_type=job.input_type)
    seconds = time.perf_counter() - start
    labels = probs.argmax(axis=0).astype(np.int64)
    result: dict[str, Any] = {"name": job.name, "seconds": seconds, "shape": scores.shape}
    if job.gt is not None:
        target = io.read_labels(job.gt)
        if target.shape != labels.shape:
            raise ValueError(f"ground truth {job.gt} is {target.shape} but the scores are "
                             f"{labels.shape}")
        num_classes = job.num_classes or scores.shape[0]
        before = scores_to_labels(scores, job.input_type)
        result["before"] = confusion_matrix(before, target, num_classes, job.ignore_index)
        result["after"] = confusion_matrix(labels, target, num_classes, job.ignore_index)
    if job.output is not None:
        io.write_labels(job.output, labels, palette=job.palette)
    if job.probs is not None:
        io.write_scores(job.probs, probs)
    if job.overlay is not None:
        io.write_overlay(job.overlay, image, labels, palette=job.palette)
    return result


def add_parser(subparsers: Any) -> None:
    """Register ``refine`` and its options."""
    p = subparsers.add_parser(
        "refine", help="refine CNN scores with a dense CRF",
        description="Refine class scores (logits, probabilities or unary energies) with a fully "
                    "connected CRF. --unary and --image are two files, or two folders paired by "
                    "file stem.",
    )
    p.add_argument("--unary", required=True, help="scores .npy/.npz file or folder")
    p.add_argument("--image", required=True, help="image file or folder")
    p.add_argument("-o", "--output", help="labels PNG (single file mode)")
    p.add_argument("--output-dir", help="folder for label PNGs (folder mode)")
    p.add_argument("--save-probs", help="refined probabilities .npy (a folder in folder mode)")
    p.add_argument("--overlay", help="overlay PNG (a folder in folder mode)")
    p.add_argument("--gt", help="ground-truth label PNG or folder: report mIoU before -> after")
    p.add_argument("--num-classes", type=int, help="classes for scoring (default: C of scores)")
    p.add_argument("--ignore-index", type=int, default=255, help="label left out of scores (255)")
    p.add_argument("--input-type", default="auto", choices=("auto", "logits", "probs", "unary"))
    p.add_argument("--layout", default="auto", choices=("auto", "chw", "hwc", "nchw"),
                   help="layout of the stored scores (found from the image size by default)")
    p.add_argument("--key", help="array name inside a .npz file")
    p.add_argument("--palette", choices=PALETTE_CHOICES, help="write indexed PNGs in these colours")
    p.add_argument("--workers", type=int, default=1, help="worker processes in folder mode (1)")
    p.add_argument("--shard", help="process only shard K of N (K/N, 0 <= K < N) in folder mode")
    add_crf_arguments(p)
    add_params_argument(p)
    p.add_argument("--backend", default="pydensecrf", choices=("pydensecrf", "torch", "auto"),
                   help="inference engine: pydensecrf (CPU), torch (PyTorch lattice, any "
                        "device), auto (torch when CUDA is available) (pydensecrf)")
    p.add_argument("--device", help="device of the torch backend, e.g. cpu, cuda, cuda:1 "
                                    "(default: cuda when available, else cpu)")
    p.set_defaults(func=run)


def _ground_truths(args: argparse.Namespace, pairs: list[tuple[str, Path, Path | None]],
                   folder_mode: bool) -> dict[str, Path]:
    if args.gt is None:
        return {}
    if folder_mode:
        gt_pairs = pair_inputs(args.unary, args.gt, "--unary", "--gt", SCORE_EXTENSIONS,
                               IMAGE_EXTENSIONS)
        return {stem: gt for stem, _, gt in gt_pairs if gt is not None}
    gt_path = Path(args.gt)
    if not gt_path.is_file():
        raise FileNotFoundError(f"--gt file not found: {gt_path}")
    return {pairs[0][0]: gt_path}


def run(args: argparse.Namespace) -> int:
    """Refine every (scores, image) pair; print one summary line; return the exit code."""
    options = crf_options(args)
    params = read_params(args)
    shard = parse_shard(args.shard)
    colours = palette(args.palette)
    pairs = pair_inputs(args.unary, args.image, "--unary", "--image", SCORE_EXTENSIONS,
                        IMAGE_EXTENSIONS)
    folder_mode = Path(args.unary).is_dir()
    gts = _ground_truths(args, pairs, folder_mode)
    if args.num_classes is not None and args.num_classes < 1:
        raise ValueError(f"--num-classes must be >= 1, got {args.num_classes}")
    outputs = [OutputSpec(args.output, args.output_dir, "--output-dir", ".png"),
               OutputSpec(args.save_probs, args.save_probs, "--save-probs", ".npy"),
               OutputSpec(args.overlay, args.overlay, "--overlay", ".png")]
    pairs = select_pairs(pairs, args, folder_mode, shard, outputs, "--unary and --image folders")
    jobs = []
    for stem, unary, image in pairs:
        output, probs, overlay = output_paths(outputs, folder_mode, stem)
        jobs.append(RefineJob(stem, unary, image, gts.get(stem), output, probs, overlay, options,
                              args.input_type, args.layout, args.key, args.num_classes,
                              args.ignore_index, colours, params))
    start = time.perf_counter()
    report = run_batch(_refine_one, jobs, [j.name for j in jobs], workers=args.workers,
                       desc="refine")
    elapsed = time.perf_counter() - start
    if not folder_mode and report.failures:
        return report.single_file_error("refine")
    n_iter = options["n_iter"] if params is None else params.n_iter
    print(_summary(report, elapsed, n_iter, folder_mode, jobs))
    report.print_failures("refine")
    return report.exit_code


def _summary(report: BatchReport, elapsed: float, n_iter: int, folder_mode: bool,
             jobs: Sequence[RefineJob]) -> str:
    from crfseg.metrics import mean_iou, pixel_accuracy

    if folder_mode:
        line = (f"refined {len(report.results)}/{len(jobs)} files in {elapsed:.2f} s "
                f"({n_iter} iterations)")
    else:
        result = report.results[0]
        c, h, w = result["shape"]
        job = jobs[0]
        line = (f"refined {job.image.name}: {c} classes, {w}x{h}, {n_iter} iterations in "
                f"{result['seconds']:.2f} s")
        if job.output is not None:
            line += f" -> {job.output}"
    scored = [r for r in report.results if "before" in r]
    if scored:
        before = sum(r["before"] for r in scored)
        after = sum(r["after"] for r in scored)
        line += (f"; mIoU {percent(mean_iou(before))} -> {percent(mean_iou(after))}, "
                 f"pixel acc {percent(pixel_accuracy(before))} -> "
                 f"{percent(pixel_accuracy(after))}")
    return line
