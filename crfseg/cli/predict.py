"""``crfseg predict``: run a trained network on images; logits and labels, optionally refined."""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crfseg.cli._batch import (
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
    add_crf_arguments,
    crf_options,
    palette,
)
from crfseg.cli.tune import add_params_argument, read_params

__all__ = ["add_parser", "run"]


@dataclass
class PredictJob:
    """One image through a loaded model (single process: the model is shared, not pickled)."""

    name: str
    image: Path
    model: Any
    output: Path | None
    logits: Path | None
    crf_options: dict[str, Any] | None
    tile: int | None
    overlap: int | None
    palette: np.ndarray | None
    params: Any = None  # DenseCRFParams of --params, replacing crf_options' kernels


def _predict_one(job: PredictJob) -> dict[str, Any]:
    from crfseg import io
    from crfseg.crf import DenseCRF
    from crfseg.models import predict_logits

    image = io.read_image(job.image)
    if job.model.in_channels == 1 and (image == image[:, :, :1]).all():
        image = image[:, :, 0]  # a gray file, which read_image repeated to RGB
    start = time.perf_counter()
    logits = predict_logits(job.model, image, tile=job.tile, overlap=job.overlap)
    if job.crf_options is not None and job.params is not None:
        labels = job.params.refine(logits, image, "logits", backend="pydensecrf").argmax(axis=0)
    elif job.crf_options is not None:
        labels = DenseCRF(**job.crf_options).predict(logits, image, input_type="logits")
    else:
        labels = logits.argmax(axis=0)
    seconds = time.perf_counter() - start
    if job.logits is not None:
        io.write_scores(job.logits, logits)
    if job.output is not None:
        io.write_labels(job.output, labels, palette=job.palette)
    return {"name": job.name, "seconds": seconds, "shape": logits.shape}


def add_parser(subparsers: Any) -> None:
    """Register ``predict`` and its options."""
    p = subparsers.add_parser(
        "predict", help="run a trained network: logits and labels, optionally CRF-refined",
        description="Run the network of a crfseg checkpoint (crfseg.models.save_checkpoint) on "
                    "an image file or folder. --save-logits writes (C, H, W) float32 .npy "
                    "logits, exactly what 'crfseg refine --unary' reads; --crf dense refines "
                    "them in the same call before the labels are written.",
    )
    p.add_argument("--checkpoint", required=True, help="model checkpoint (.pt)")
    p.add_argument("--image", required=True, help="image file or folder")
    p.add_argument("-o", "--output", help="labels PNG (single file mode)")
    p.add_argument("--output-dir", help="folder for label PNGs (folder mode)")
    p.add_argument("--save-logits", help="logits .npy (a folder in folder mode)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"), help="where to run (cpu)")
    p.add_argument("--crf", default="none", choices=("none", "dense"),
                   help="refine the logits with a dense CRF before labelling (none)")
    p.add_argument("--tile", type=int, help="run in SIZE x SIZE tiles (large images)")
    p.add_argument("--overlap", type=int, help="pixels shared by neighbouring tiles (SIZE/4)")
    p.add_argument("--palette", choices=PALETTE_CHOICES,
                   help="label PNG colours (default: the checkpoint's palette, if any)")
    p.add_argument("--shard", help="process only shard K of N (K/N, 0 <= K < N) in folder mode")
    add_crf_arguments(p)
    add_params_argument(p)
    p.set_defaults(func=run)


def _check_options(args: argparse.Namespace) -> None:
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if args.tile is not None and args.tile < 1:
        raise ValueError(f"--tile must be >= 1, got {args.tile}")
    if args.overlap is not None and args.tile is None:
        raise ValueError("--overlap applies to tiled inference; give --tile as well")
    if args.output is None and args.output_dir is None and args.save_logits is None:
        raise ValueError("nothing to write: give -o/--output (--output-dir for a folder) "
                         "and/or --save-logits")


def run(args: argparse.Namespace) -> int:
    """Predict every image; print one summary line; return the exit code."""
    from crfseg.models import load_checkpoint

    options = crf_options(args) if args.crf == "dense" else None
    params = read_params(args)
    if params is not None and options is None:
        raise ValueError("--params applies to the dense CRF: give --crf dense as well")
    shard = parse_shard(args.shard)
    _check_options(args)
    pairs = pair_inputs(args.image, None, "--image", "", IMAGE_EXTENSIONS, ())
    folder_mode = Path(args.image).is_dir()
    model = load_checkpoint(args.checkpoint, map_location=args.device)
    outputs = [OutputSpec(args.output, args.output_dir, "--output-dir", ".png"),
               OutputSpec(args.save_logits, args.save_logits, "--save-logits", ".npy")]
    pairs = select_pairs(pairs, args, folder_mode, shard, outputs, "an --image folder")
    colours = palette(args.palette) if args.palette is not None else model.palette
    jobs = []
    for stem, image, _ in pairs:
        output, logits = output_paths(outputs, folder_mode, stem)
        jobs.append(PredictJob(stem, image, model, output, logits, options, args.tile,
                               args.overlap, colours, params))
    start = time.perf_counter()
    report = run_batch(_predict_one, jobs, [j.name for j in jobs], desc="predict")
    elapsed = time.perf_counter() - start
    if not folder_mode and report.failures:
        return report.single_file_error("predict")
    refined = " + dense CRF" if options is not None else ""
    if folder_mode:
        print(f"predicted {len(report.results)}/{len(jobs)} files{refined} in {elapsed:.2f} s")
    else:
        c, h, w = report.results[0]["shape"]
        written = ", ".join(str(p) for p in (jobs[0].output, jobs[0].logits) if p is not None)
        print(f"predicted {jobs[0].image.name}: {c} classes, {w}x{h}{refined} in "
              f"{report.results[0]['seconds']:.2f} s -> {written}")
    report.print_failures("predict")
    return report.exit_code
