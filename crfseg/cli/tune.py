"""``crfseg tune``: fit DenseCRF parameters to a labelled validation set; ``--params`` for the rest.

``refine`` and ``predict`` apply the file it writes through :func:`add_params_argument`
and :func:`read_params`.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from crfseg.cli._batch import pair_inputs
from crfseg.cli._common import IMAGE_EXTENSIONS, SCORE_EXTENSIONS, percent

__all__ = ["add_parser", "run", "add_params_argument", "read_params"]


def add_params_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--params`` option: a parameter file written by ``crfseg tune``."""
    parser.add_argument("--params", help="DenseCRF parameters written by 'crfseg tune' (replace "
                                         "the dense CRF options; crf 'none' means no CRF)")


def read_params(args: argparse.Namespace) -> Any:
    """The :class:`~crfseg.crf.DenseCRFParams` of ``--params`` (None when not given)."""
    if getattr(args, "params", None) is None:
        return None
    from crfseg.crf import DenseCRFParams

    return DenseCRFParams.read(args.params)


def add_parser(subparsers: Any) -> None:
    """Register ``tune`` and its options."""
    p = subparsers.add_parser(
        "tune", help="fit DenseCRF parameters to a labelled validation set",
        description="Search the dense CRF's kernel widths and weights, its iterations and a "
                    "scale on the unary for the best mean IoU on labelled images; --unary, "
                    "--image and --gt are folders paired by file stem. Writes a parameter file "
                    "for 'crfseg refine/predict --params'; it never recommends parameters that "
                    "score below the scores alone (then it says 'crf': 'none'). --class-bias "
                    "first fits one offset per class on the log-probabilities (recalibrating "
                    "the CNN's class priors for the mean IoU), --per-class then fits one factor "
                    "per class on each kernel's Potts weight.",
    )
    p.add_argument("--unary", required=True, help="folder of scores (.npy/.npz, one per image)")
    p.add_argument("--image", required=True, help="folder of images")
    p.add_argument("--gt", required=True, help="folder of ground-truth label PNGs")
    p.add_argument("--num-classes", type=int, required=True, help="number of classes")
    p.add_argument("--ignore-index", type=int, default=255, help="label left out (255)")
    p.add_argument("--trials", type=int, default=40, help="parameter settings to score (40)")
    p.add_argument("--seed", type=int, default=0, help="seed of the search (0)")
    p.add_argument("--input-type", default="auto", choices=("auto", "logits", "probs", "unary"))
    p.add_argument("--layout", default="auto", choices=("auto", "chw", "hwc", "nchw"),
                   help="layout of the stored scores (found from the image size by default)")
    p.add_argument("--key", help="array name inside .npz files")
    p.add_argument("--batch-size", type=int, default=4,
                   help="images of one size refined together (4)")
    p.add_argument("--backend", default="torch", choices=("torch", "pydensecrf"),
                   help="inference engine (torch: batches, any device)")
    p.add_argument("--device", help="device of the torch backend (default: cuda when available)")
    p.add_argument("--top", type=int, default=15, help="trials shown in the table (15)")
    p.add_argument("--initial", action="append", default=[], metavar="PARAMS",
                   help="a parameter file to score right after the defaults (repeatable), "
                        "e.g. the result of an earlier search")
    p.add_argument("--time-budget", type=float,
                   help="seconds after which no new trial starts, over both stages (default: "
                        "run every trial)")
    p.add_argument("--per-class", action="store_true",
                   help="after the search, fit a factor per class on each kernel's Potts weight "
                        "(coordinate search from the best setting)")
    p.add_argument("--class-factors", type=_factors, metavar="F,F,...",
                   help="factors tried for each class with --per-class (default: "
                        "crfseg.crf.tune.CLASS_FACTORS, 0,0.25,0.5,1,2,4)")
    p.add_argument("--per-class-passes", type=int, default=2,
                   help="passes over the kernels and classes with --per-class at most (2)")
    p.add_argument("--per-class-kernels", default="bilateral,gaussian", metavar="K,K",
                   help="kernels whose per-class factors --per-class fits, in this order "
                        "(bilateral,gaussian)")
    p.add_argument("--class-bias", action="store_true",
                   help="before the search, fit one offset per class on the log-probabilities "
                        "for the best mean IoU without a CRF; the CRF is then searched on the "
                        "biased scores and the file carries the bias")
    p.add_argument("--class-biases", type=_factors, metavar="B,B,...",
                   help="offsets tried for each class with --class-bias (default: "
                        "crfseg.crf.tune.CLASS_BIASES, -3,-2,-1,-0.5,0,0.5,1,2,3)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.add_argument("--report", help="also write the trials and scores to this JSON file")
    p.add_argument("-o", "--output", required=True, help="parameter file to write (.json)")
    p.set_defaults(func=run)


def _factors(text: str) -> tuple[float, ...]:
    """``--class-factors`` and ``--class-biases``: comma-separated numbers."""
    try:
        return tuple(float(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}"
                                         ) from None


def _load(args: argparse.Namespace) -> tuple[list[Any], list[Any], list[Any]]:
    from crfseg import io

    if not Path(args.unary).is_dir():
        raise NotADirectoryError(f"--unary must be a folder of score files, got {args.unary}")
    images = pair_inputs(args.unary, args.image, "--unary", "--image", SCORE_EXTENSIONS,
                         IMAGE_EXTENSIONS)
    gts = pair_inputs(args.unary, args.gt, "--unary", "--gt", SCORE_EXTENSIONS,
                      IMAGE_EXTENSIONS)
    scores, pictures, labels = [], [], []
    for (_, unary, image), (_, _, gt) in zip(images, gts):
        picture = io.read_image(image)
        score = io.read_scores(unary, image_shape=picture.shape, layout=args.layout,
                               key=args.key)
        label = io.read_labels(gt)
        if label.shape != picture.shape[:2]:
            raise ValueError(f"ground truth {gt} is {label.shape} but image {image} is "
                             f"{picture.shape[:2]}")
        if score.shape[0] != args.num_classes:
            raise ValueError(f"{unary} has {score.shape[0]} classes but --num-classes is "
                             f"{args.num_classes}")
        bad = (label >= args.num_classes) & (label != args.ignore_index)
        if bad.any():
            raise ValueError(f"ground truth {gt} holds label {int(label[bad].max())} >= "
                             f"--num-classes {args.num_classes} (and not --ignore-index "
                             f"{args.ignore_index})")
        scores.append(score)
        pictures.append(picture)
        labels.append(label)
    return scores, pictures, labels


def run(args: argparse.Namespace) -> int:
    """Tune on the paired folders, print the table, write the parameter file."""
    from crfseg import io
    from crfseg.crf import DenseCRFParams, tune_dense_crf
    from crfseg.crf.tune import CLASS_BIASES, CLASS_FACTORS

    for name in ("num_classes", "trials", "batch_size", "top", "per_class_passes"):
        if getattr(args, name) < 1 + (name == "num_classes"):
            raise ValueError(f"--{name.replace('_', '-')} must be >= "
                             f"{1 + (name == 'num_classes')}, got {getattr(args, name)}")
    if args.backend == "pydensecrf":
        args.batch_size = 1
    initial = [DenseCRFParams.read(path, num_classes=args.num_classes)
               for path in args.initial]
    initial = [params for params in initial if params.crf == "dense"]
    start = time.perf_counter()
    scores, images, labels = _load(args)
    result = tune_dense_crf(scores, images, labels, num_classes=args.num_classes,
                            trials=args.trials, seed=args.seed, input_type=args.input_type,
                            ignore_index=args.ignore_index, batch_size=args.batch_size,
                            initial=initial,
                            backend=args.backend, device=args.device,
                            time_budget=args.time_budget, per_class=args.per_class,
                            class_factors=args.class_factors or CLASS_FACTORS,
                            per_class_passes=args.per_class_passes,
                            per_class_kernels=args.per_class_kernels.split(","),
                            class_bias=args.class_bias,
                            class_biases=args.class_biases or CLASS_BIASES,
                            progress=not args.no_progress)
    print(f"tuned on {len(scores)} images, {len(result.trials)} trials in "
          f"{time.perf_counter() - start:.1f} s")
    print(result.table(top=args.top))
    result.params.write(args.output)
    if args.report:
        io.write_json(args.report, result.to_dict())
    if result.params.crf == "none" and result.params.class_bias is not None:
        print(f"no CRF setting beat the biased scores alone (mIoU {percent(result.miou_best)}): "
              f"{args.output} says 'no CRF' and holds the class bias "
              f"{_format(list(result.params.class_bias))}")
    elif result.params.crf == "none":
        print(f"no setting beat the scores alone (mIoU {percent(result.miou_no_crf)}): "
              f"{args.output} says 'no CRF'")
    else:
        best = ", ".join(f"{k}={_format(v)}" for k, v in result.params.to_dict().items()
                         if k != "crf" and v is not None)
        print(f"best: {best} -> {args.output}")
    return 0


def _format(value: Any) -> str:
    """A parameter for the summary line: floats to 4 digits, per-class factors as a list."""
    if isinstance(value, list):
        return "[" + ", ".join(f"{v:g}" for v in value) + "]"
    return f"{value:.4g}" if isinstance(value, float) else str(value)
