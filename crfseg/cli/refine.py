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
    result: dict[str, Any] = {"name": job.name, "seconds": seconds, "shape": probs.shape}
    if job.gt is not None:
        target = io.read_labels(job.gt)
        if target.shape != labels.shape:
            raise ValueError(f"ground truth {job.gt} is {target.shape} but the scores are "
                             f"{labels.shape}")
        num_classes = job.num_classes or scores.shape[0]
        if scores.ndim == 2:  # a binary map: the foreground's probability, or its logit
            before = (scores > (0.0 if job.input_type == "logits" else 0.5)).astype(np.int64)
        else:
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
        description="Refine class scores (logits, probabilities or unary energies), a binary "
                    "map or an annotation (--labels) with a fully connected CRF. --unary and "
                    "--image are two files, or two folders paired by file stem; --labels and "
                    "volumes (NIfTI or .npy, with --spacing) take one file each.",
    )
    p.add_argument("--unary", help="scores .npy/.npz file or folder: (C, H, W), (H, W, C) or a "
                                   "binary (H, W) map; with a volume --image, NIfTI (X, Y, Z, C) "
                                   "or .npy (C, D, H, W) scores")
    p.add_argument("--labels", help="an annotation to refine instead of scores: a gray, palette "
                                    "or colour-coded PNG (or a NIfTI/.npy label volume) whose "
                                    "distinct values (colours) are the classes; the output keeps "
                                    "its encoding")
    p.add_argument("--gt-prob", type=float, default=0.5,
                   help="with --labels: the confidence in the labels, in (0, 1) (0.5)")
    p.add_argument("--unknown", help="with --labels: the value of unlabelled pixels, a gray value "
                                     "or palette index (e.g. 255) or an R,G,B colour (e.g. 0,0,0)")
    p.add_argument("--image", required=True,
                   help="image file or folder; a NIfTI (.nii, .nii.gz) or .npy volume")
    p.add_argument("--spacing", help="voxel size sz,sy,sx of a .npy volume, in the units of "
                                     "--sxy and --gaussian-sxy (NIfTI files carry theirs)")
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
    p.add_argument("--backend", default="auto", choices=("pydensecrf", "torch", "auto"),
                   help="inference engine: pydensecrf (CPU), torch (PyTorch lattice, any "
                        "device), auto (torch on CUDA, or on a CPU with the compiled lattice, "
                        "else pydensecrf) (auto)")
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
    if (args.unary is None) == (args.labels is None):
        raise ValueError("give either --unary (scores) or --labels (an annotation)")
    if args.labels is None and (args.unknown is not None or args.gt_prob != 0.5):
        raise ValueError("--gt-prob and --unknown apply to --labels only")
    if args.labels is not None or _is_volume(args.image):
        return _refine_single(args, options)
    if args.spacing is not None:
        raise ValueError("--spacing applies to volumes (NIfTI or .npy images) only")
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


# ------------------------------------------------- label maps and volumes (one file each)

_SINGLE_ONLY = (("gt", "--gt"), ("overlay", "--overlay"), ("output_dir", "--output-dir"),
                ("shard", "--shard"), ("key", "--key"), ("palette", "--palette"))


def _is_volume(path: str) -> bool:
    """A NIfTI image, or a .npy image (whose 2-D counterpart would be a PNG), is a volume."""
    from crfseg import io

    return io.is_volume_file(path) or Path(path).suffix.lower() == ".npy"


def _parse_spacing(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise ValueError(f"--spacing must be three numbers sz,sy,sx, got {text!r}") from None
    if len(values) != 3:
        raise ValueError(f"--spacing must be three numbers sz,sy,sx, got {text!r}")
    return values


def _check_single_inputs(args: argparse.Namespace, volume: bool) -> None:
    """Everything the label-map and volume modes refuse, before any file is read."""
    from crfseg import io

    source = args.labels if args.labels is not None else args.unary
    for path, flag in ((source, "--labels" if args.labels is not None else "--unary"),
                       (args.image, "--image")):
        if Path(path).is_dir():
            raise ValueError(f"{flag} must be one file with --labels or a volume, got the "
                             f"folder {path}")
    for attr, flag in _SINGLE_ONLY:
        if getattr(args, attr, None) is not None:
            raise ValueError(f"{flag} does not apply to --labels or volumes")
    if args.params is not None or args.workers != 1 or args.layout != "auto":
        raise ValueError("--params, --workers and --layout do not apply to --labels or volumes")
    if args.labels is not None and args.input_type != "auto":
        raise ValueError("--input-type does not apply to --labels (it reads labels)")
    if args.labels is not None and volume != _is_volume(args.labels):
        raise ValueError("--labels and --image must both be volumes (NIfTI or .npy) or both "
                         f"images, got {args.labels} and {args.image}")
    if args.output is not None:
        if volume and not (io.is_volume_file(args.output)
                           or Path(args.output).suffix.lower() == ".npy"):
            raise ValueError(f"-o must name a NIfTI (.nii, .nii.gz) or .npy file for a volume, "
                             f"got {args.output}")
        if not volume:
            io.check_label_path(args.output, "-o")
    if args.save_probs is not None and not (
            Path(args.save_probs).suffix.lower() == ".npy"
            or (volume and io.is_volume_file(args.save_probs))):
        raise ValueError(f"--save-probs must name a .npy file{' or a NIfTI file' if volume else ''}"
                         f", got {args.save_probs}")


def _refine_single(args: argparse.Namespace, options: dict[str, Any]) -> int:
    """Refine one annotation (``--labels``) or one volume; write the results in kind."""
    from crfseg import io
    from crfseg.crf import DenseCRF

    volume = _is_volume(args.image)
    _check_single_inputs(args, volume)
    spacing = _parse_spacing(args.spacing)
    extra: dict[str, Any] = {}
    info = encoding = None
    if volume:
        image, info = io.read_volume(args.image)
        spacing = spacing or info.spacing
        if spacing is None:
            raise ValueError(f"--spacing sz,sy,sx is required for the .npy volume {args.image} "
                             "(NIfTI files carry their voxel size)")
        if args.labels is not None:
            scores, encoding, _ = io.read_label_volume(args.labels, unknown=args.unknown)
            if scores.shape != image.shape[:3]:
                raise ValueError(f"labels in {args.labels} have shape (D, H, W) = "
                                 f"{scores.shape} but the image volume is {image.shape[:3]}")
        else:
            scores, _ = io.read_volume_scores(args.unary, image.shape[:3])
        input_type, extra["spacing"] = args.input_type, spacing
    else:
        if spacing is not None:
            raise ValueError("--spacing applies to volumes (NIfTI or .npy images) only")
        image = io.read_image(args.image)
        scores, encoding = io.read_label_map(args.labels, unknown=args.unknown)
        if scores.shape != image.shape[:2]:
            raise ValueError(f"label file {args.labels} is {scores.shape} but the image is "
                             f"{image.shape[:2]}")
    if args.labels is not None:
        if encoding.num_classes < 2:
            raise ValueError(f"label file {args.labels} holds one class besides the unknown "
                             "label; the CRF needs two at least")
        input_type = "labels"
        extra.update(num_classes=encoding.num_classes, gt_prob=args.gt_prob, unknown_label=-1)
    start = time.perf_counter()
    probs = DenseCRF(**options).refine(scores, image, input_type, **extra)
    seconds = time.perf_counter() - start
    labels = probs.argmax(axis=0).astype(np.int64)
    if args.output is not None:
        if volume:
            io.write_volume(args.output, labels if encoding is None else encoding.values[labels],
                            info)
        else:
            io.write_label_map(args.output, labels, encoding)
    if args.save_probs is not None:
        if volume:
            io.write_volume(args.save_probs, probs, info)
        else:
            io.write_scores(args.save_probs, probs)
    size = "x".join(str(n) for n in labels.shape[::-1])
    where = f" -> {args.output}" if args.output is not None else ""
    kind = (f"volume, spacing {','.join(f'{s:g}' for s in spacing)}" if volume
            else f"{encoding.kind} labels")
    kind += " from labels" if volume and encoding is not None else ""
    print(f"refined {Path(args.image).name}: {probs.shape[0]} classes, {size} ({kind}), "
          f"{options['n_iter']} iterations in {seconds:.2f} s{where}")
    return 0
