"""The ``crfseg`` command line: parse, load, call the public API, save.

No algorithm lives here.  Each subcommand is a pair of functions,
``_add_<name>_parser(subparsers)`` and ``_cmd_<name>(args) -> int``.
User errors (missing files, bad shapes, bad options) print one line on
stderr and return 2; unexpected errors print a traceback and return 1.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["main", "build_parser"]

USER_ERRORS: tuple[type[BaseException], ...] = (
    ValueError, TypeError, FileNotFoundError, KeyError, NotADirectoryError, PermissionError,
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
SCORE_EXTENSIONS = (".npy", ".npz")
PALETTE_CHOICES = ("voc", "cityscapes", "camvid", "ade20k", "cocostuff")


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    return str(exc)


def _error(command: str, exc: BaseException) -> None:
    print(f"crfseg {command}: error: {_message(exc)}", file=sys.stderr)


# --------------------------------------------------------------------------- batch machinery


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``K/N`` (``0 <= K < N``) into ``(K, N)``; ``None`` means the whole set."""
    if text is None:
        return 0, 1
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard K/N needs N >= 1 and 0 <= K < N, got {text!r}")
    return k, n


def _files(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in extensions}


def pair_inputs(first: str | Path, second: str | Path | None, first_name: str, second_name: str,
                first_ext: Sequence[str],
                second_ext: Sequence[str]) -> list[tuple[str, Path, Path | None]]:
    """Pair two inputs that are both files, or both folders matched by file stem.

    Returns ``(stem, first_path, second_path)`` triples sorted by stem.  With
    folders, stems present in only one folder are an error listing a few of them.
    """
    a = Path(first)
    b = Path(second) if second is not None else None
    if not a.exists():
        raise FileNotFoundError(f"{first_name} not found: {a}")
    if b is not None and not b.exists():
        raise FileNotFoundError(f"{second_name} not found: {b}")
    if a.is_file():
        if b is not None and b.is_dir():
            raise ValueError(f"{first_name} is a file but {second_name} is a folder: give two "
                             "files or two folders")
        return [(a.stem, a, b)]
    left = _files(a, first_ext)
    if not left:
        raise ValueError(f"{first_name} folder {a} holds no {'/'.join(first_ext)} files")
    if b is None:
        return [(stem, path, None) for stem, path in left.items()]
    if b.is_file():
        raise ValueError(f"{first_name} is a folder but {second_name} is a file: give two "
                         "files or two folders")
    right = _files(b, second_ext)
    unmatched = sorted(set(left) ^ set(right))
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" …" if len(unmatched) > 5 else "")
        raise ValueError(
            f"{len(unmatched)} file stem(s) appear in only one of {a} and {b}: {shown}"
        )
    return [(stem, left[stem], right[stem]) for stem in sorted(left)]


@dataclass
class BatchReport:
    """What a batch run did: results of the files that worked, messages of those that failed."""

    results: list[Any] = field(default_factory=list)
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # name, message, is_user

    @property
    def exit_code(self) -> int:
        if not self.failures:
            return 0
        return 2 if all(user for _, _, user in self.failures) else 1

    def single_file_error(self, command: str) -> int:
        """Print the one failure of a single-file run as an error; return its exit code."""
        _, message, user = self.failures[0]
        print(f"crfseg {command}: error: {message}", file=sys.stderr)
        return 2 if user else 1

    def print_failures(self, command: str) -> None:
        if self.failures:
            print(f"crfseg {command}: {len(self.failures)} file(s) failed:", file=sys.stderr)
            for name, message, _ in self.failures:
                print(f"  {name}: {message}", file=sys.stderr)


def _guarded(job: tuple[Callable[..., Any], Any]) -> tuple[bool, Any, bool]:
    function, item = job
    try:
        return True, function(item), True
    except USER_ERRORS as exc:
        return False, _message(exc), True
    except Exception as exc:  # reported per file; the batch goes on
        return False, f"{type(exc).__name__}: {exc}", False


def run_batch(function: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str],
              workers: int = 1, desc: str = "files", progress: bool | None = None) -> BatchReport:
    """Call ``function(item)`` on every item with a progress bar, in ``workers`` processes.

    A failing item is recorded and skipped; the others go on.  ``function``
    must be a module-level function (it is pickled for worker processes).
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    report = BatchReport()
    jobs = [(function, item) for item in items]
    show = progress if progress is not None else len(items) > 1
    bar = tqdm(total=len(jobs), desc=desc, unit="file", disable=not show, file=sys.stderr)
    if workers == 1 or len(jobs) <= 1:
        outcomes: Iterable[tuple[bool, Any, bool]] = map(_guarded, jobs)
        executor = None
    else:
        executor = ProcessPoolExecutor(max_workers=workers)
        outcomes = executor.map(_guarded, jobs)
    try:
        for name, (ok, value, user) in zip(names, outcomes):
            if ok:
                report.results.append(value)
            else:
                report.failures.append((name, value, user))
            bar.update(1)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
    return report


def _palette(name: str | None) -> np.ndarray | None:
    if name is None:
        return None
    from crfseg.palettes import get_palette

    return get_palette(name)


def _percent(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{100 * value:.2f}"


# --------------------------------------------------------------------------- refine


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


def _refine_one(job: RefineJob) -> dict[str, Any]:
    from crfseg import io
    from crfseg.crf import DenseCRF
    from crfseg.metrics import confusion_matrix

    image = io.read_image(job.image)
    scores = io.read_scores(job.unary, image_shape=image.shape, layout=job.layout, key=job.key)
    crf = DenseCRF(**job.crf_options)
    start = time.perf_counter()
    probs = crf.refine(scores, image, input_type=job.input_type)
    seconds = time.perf_counter() - start
    labels = probs.argmax(axis=0).astype(np.int64)
    result: dict[str, Any] = {"name": job.name, "seconds": seconds, "shape": scores.shape}
    if job.gt is not None:
        target = io.read_labels(job.gt)
        if target.shape != labels.shape:
            raise ValueError(f"ground truth {job.gt} is {target.shape} but the scores are "
                             f"{labels.shape}")
        num_classes = job.num_classes or scores.shape[0]
        before = scores.argmax(axis=0) if job.input_type != "unary" else scores.argmin(axis=0)
        result["before"] = confusion_matrix(before.astype(np.int64), target, num_classes,
                                            job.ignore_index)
        result["after"] = confusion_matrix(labels, target, num_classes, job.ignore_index)
    if job.output is not None:
        io.write_labels(job.output, labels, palette=job.palette)
    if job.probs is not None:
        io.write_scores(job.probs, probs)
    if job.overlay is not None:
        io.write_overlay(job.overlay, image, labels, palette=job.palette)
    return result


def _crf_options(args: argparse.Namespace) -> dict[str, Any]:
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
    DenseCRF(**options)  # validate once, before any file is touched
    return options


def _add_crf_arguments(parser: argparse.ArgumentParser) -> None:
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


def _add_refine_parser(subparsers: Any) -> None:
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
    _add_crf_arguments(p)
    p.add_argument("--backend", default="pydensecrf", choices=("pydensecrf", "torch", "auto"),
                   help="inference engine: pydensecrf (CPU), torch (PyTorch lattice, any "
                        "device), auto (torch when CUDA is available) (pydensecrf)")
    p.add_argument("--device", help="device of the torch backend, e.g. cpu, cuda, cuda:1 "
                                    "(default: cuda when available, else cpu)")
    p.set_defaults(func=_cmd_refine)


def _output_path(folder: str | None, stem: str, suffix: str) -> Path | None:
    return None if folder is None else Path(folder) / f"{stem}{suffix}"


def _ensure_folder(value: str | None, option: str) -> None:
    if value is not None:
        folder = Path(value)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{option} must be a folder in folder mode: {folder}")
        folder.mkdir(parents=True, exist_ok=True)


@dataclass
class OutputSpec:
    """One output option: its value in single-file mode and in folder mode."""

    file: str | None
    folder: str | None
    folder_option: str
    suffix: str


def select_pairs(pairs: list[tuple[str, Path, Path | None]], args: argparse.Namespace,
                 folder_mode: bool, shard: tuple[int, int], outputs: Sequence[OutputSpec],
                 inputs: str) -> list[tuple[str, Path, Path | None]]:
    """Folder mode: create the output folders and keep shard K of N; single-file mode: no shard."""
    if folder_mode:
        if args.output is not None:
            raise ValueError("-o/--output names one file; in folder mode use --output-dir")
        for spec in outputs:
            _ensure_folder(spec.folder, spec.folder_option)
        return pairs[shard[0]::shard[1]]
    if args.shard is not None:
        raise ValueError(f"--shard applies to folder mode ({inputs})")
    return pairs


def output_paths(outputs: Sequence[OutputSpec], folder_mode: bool,
                 stem: str) -> list[Path | None]:
    """Where each output of the input named ``stem`` goes (None: not written)."""
    if folder_mode:
        return [_output_path(spec.folder, stem, spec.suffix) for spec in outputs]
    return [Path(spec.file) if spec.file else None for spec in outputs]


def _cmd_refine(args: argparse.Namespace) -> int:
    options = _crf_options(args)
    shard = parse_shard(args.shard)
    palette = _palette(args.palette)
    pairs = pair_inputs(args.unary, args.image, "--unary", "--image", SCORE_EXTENSIONS,
                        IMAGE_EXTENSIONS)
    folder_mode = Path(args.unary).is_dir()
    gts: dict[str, Path] = {}
    if args.gt is not None:
        if folder_mode:
            gt_pairs = pair_inputs(args.unary, args.gt, "--unary", "--gt", SCORE_EXTENSIONS,
                                   IMAGE_EXTENSIONS)
            gts = {stem: gt for stem, _, gt in gt_pairs if gt is not None}
        else:
            gt_path = Path(args.gt)
            if not gt_path.is_file():
                raise FileNotFoundError(f"--gt file not found: {gt_path}")
            gts = {pairs[0][0]: gt_path}
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
                              args.ignore_index, palette))
    start = time.perf_counter()
    report = run_batch(_refine_one, jobs, [j.name for j in jobs], workers=args.workers,
                       desc="refine")
    elapsed = time.perf_counter() - start
    if not folder_mode and report.failures:
        return report.single_file_error("refine")
    print(_refine_summary(report, elapsed, options["n_iter"], folder_mode, jobs))
    report.print_failures("refine")
    return report.exit_code


def _refine_summary(report: BatchReport, elapsed: float, n_iter: int, folder_mode: bool,
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
        line += (f"; mIoU {_percent(mean_iou(before))} -> {_percent(mean_iou(after))}, "
                 f"pixel acc {_percent(pixel_accuracy(before))} -> "
                 f"{_percent(pixel_accuracy(after))}")
    return line


# --------------------------------------------------------------------------- evaluate


def _add_evaluate_parser(subparsers: Any) -> None:
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
    p.set_defaults(func=_cmd_evaluate)


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


def _cmd_evaluate(args: argparse.Namespace) -> int:
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


# --------------------------------------------------------------------------- demo


def _add_demo_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "demo", help="refine a built-in scene and show before/after",
        description="Build a scene with exact ground truth and coarse, noisy CNN-like scores, "
                    "refine them with the dense CRF, write a panel PNG and print mIoU.",
    )
    p.add_argument("--output-dir", default="demo_output", help="where the PNGs go (demo_output)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from crfseg import io
    from crfseg._demo import DEMO_CLASSES, DEMO_COLORS, coarse_logits, make_scene
    from crfseg.crf import DenseCRF
    from crfseg.metrics import SegmentationMetrics

    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    image, target = make_scene(seed=args.seed)
    logits = coarse_logits(target, len(DEMO_CLASSES), seed=args.seed)
    before = logits.argmax(axis=0)
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
        f"in {seconds:.2f} s: mIoU {_percent(b['mean_iou'])} -> {_percent(a['mean_iou'])} "
        f"({100 * (a['mean_iou'] - b['mean_iou']):+.2f} points), pixel accuracy "
        f"{_percent(b['pixel_accuracy'])} -> {_percent(a['pixel_accuracy'])}; panel: {panel}"
    )
    return 0


# --------------------------------------------------------------------------- predict


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


def _predict_one(job: PredictJob) -> dict[str, Any]:
    from crfseg import io
    from crfseg.crf import DenseCRF
    from crfseg.models import predict_logits

    image = io.read_image(job.image)
    if job.model.in_channels == 1 and (image == image[:, :, :1]).all():
        image = image[:, :, 0]  # a gray file, which read_image repeated to RGB
    start = time.perf_counter()
    logits = predict_logits(job.model, image, tile=job.tile, overlap=job.overlap)
    if job.crf_options is not None:
        labels = DenseCRF(**job.crf_options).predict(logits, image, input_type="logits")
    else:
        labels = logits.argmax(axis=0)
    seconds = time.perf_counter() - start
    if job.logits is not None:
        io.write_scores(job.logits, logits)
    if job.output is not None:
        io.write_labels(job.output, labels, palette=job.palette)
    return {"name": job.name, "seconds": seconds, "shape": logits.shape}


def _add_predict_parser(subparsers: Any) -> None:
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
    _add_crf_arguments(p)
    p.set_defaults(func=_cmd_predict)


def _cmd_predict(args: argparse.Namespace) -> int:
    import torch

    from crfseg.models import load_checkpoint

    options = _crf_options(args) if args.crf == "dense" else None
    shard = parse_shard(args.shard)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available; use --device cpu")
    if args.tile is not None and args.tile < 1:
        raise ValueError(f"--tile must be >= 1, got {args.tile}")
    if args.overlap is not None and args.tile is None:
        raise ValueError("--overlap applies to tiled inference; give --tile as well")
    if args.output is None and args.output_dir is None and args.save_logits is None:
        raise ValueError("nothing to write: give -o/--output (--output-dir for a folder) "
                         "and/or --save-logits")
    pairs = pair_inputs(args.image, None, "--image", "", IMAGE_EXTENSIONS, ())
    folder_mode = Path(args.image).is_dir()
    model = load_checkpoint(args.checkpoint, map_location=args.device)
    outputs = [OutputSpec(args.output, args.output_dir, "--output-dir", ".png"),
               OutputSpec(args.save_logits, args.save_logits, "--save-logits", ".npy")]
    pairs = select_pairs(pairs, args, folder_mode, shard, outputs, "an --image folder")
    palette = _palette(args.palette) if args.palette is not None else model.palette
    jobs = []
    for stem, image, _ in pairs:
        output, logits = output_paths(outputs, folder_mode, stem)
        jobs.append(PredictJob(stem, image, model, output, logits, options, args.tile,
                               args.overlap, palette))
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


# --------------------------------------------------------------------------- split-merge


def _add_split_merge_parser(subparsers: Any) -> None:
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
    p.set_defaults(func=_cmd_split_merge)


def _parse_thresholds(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",")]
    except ValueError:
        raise ValueError(f"--thresholds must be comma-separated numbers, got {text!r}") from None


def _cmd_split_merge(args: argparse.Namespace) -> int:
    from skimage.segmentation import mark_boundaries

    from crfseg import io
    from crfseg.classical import estimate_noise_sigma, gray_level_segment, split_and_merge

    semantic = args.classes is not None or args.thresholds is not None
    if semantic:
        given = [f"--{name.replace('_', '-')}" for name in ("predicate", "threshold", "sigma",
                                                             "min_size")
                 if getattr(args, name) is not None]
        if given:
            raise ValueError(f"{', '.join(given)} cannot be combined with --classes/--thresholds "
                             "(gray-level rules decide the regions)")
    elif args.class_map is not None:
        raise ValueError("--class-map needs --classes or --thresholds")
    for option, value in (("-o/--output", args.output), ("--overlay", args.overlay),
                          ("--class-map", args.class_map)):
        if value is not None and not Path(value).resolve().parent.is_dir():
            raise FileNotFoundError(f"{option}: folder does not exist: {Path(value).parent}")
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
        options = {name: getattr(args, name) for name in ("predicate", "threshold", "sigma",
                                                          "min_size")
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
    if count > 65535:
        raise ValueError(f"{count} regions do not fit a 16-bit PNG; raise --threshold or "
                         "--min-area")
    io.write_labels(args.output, regions)
    written = [args.output]
    if semantic and args.class_map is not None:
        io.write_labels(args.class_map, class_map)
        written.append(args.class_map)
    if args.overlay is not None:
        drawn = mark_boundaries(image, regions, color=(1, 0, 0), mode="inner")
        io.write_image(args.overlay, np.clip(np.rint(255 * drawn), 0, 255).astype(np.uint8))
        written.append(args.overlay)
    h, w = regions.shape
    print(f"split-merge {Path(args.image).name}: {w}x{h}, {rule}, {count} regions in "
          f"{seconds:.2f} s -> {', '.join(written)}")
    return 0


# --------------------------------------------------------------------------- grid


def _add_grid_parser(subparsers: Any) -> None:
    from crfseg.crf.grid import METHODS

    p = subparsers.add_parser(
        "grid", help="minimise a pairwise grid-CRF energy (graph cuts, TRW-S, ICM)",
        description="Label every pixel by minimising sum_p U[x_p, p] + sum_pq w_pq V[x_p, x_q] "
                    "over a 4- or 8-connected grid (crfseg.crf.GridCRF). With --image the "
                    "edge weights w_pq are contrast-sensitive (GrabCut), otherwise 1 (1/sqrt(2) "
                    "on diagonals). Prints the energy, the lower bound and the gap.",
    )
    p.add_argument("--unary", required=True,
                   help="unary energies .npy/.npz (see --input-type and --layout)")
    p.add_argument("--image", help="image whose colour contrast weights the edges")
    p.add_argument("--input-type", default="unary", choices=("auto", "logits", "probs", "unary"),
                   help="what --unary holds (unary energies); others become -log p")
    p.add_argument("--layout", default="auto", choices=("auto", "chw", "hwc", "nchw"),
                   help="layout of the stored scores")
    p.add_argument("--key", help="array name inside a .npz file")
    p.add_argument("--pairwise", required=True, choices=("potts", "linear", "quadratic"),
                   help="label cost V: Potts, truncated linear or truncated quadratic")
    p.add_argument("--weight", type=float, required=True, help="weight of V")
    p.add_argument("--truncation", type=float,
                   help="label distance (linear) or squared distance (quadratic) where V stops "
                        "growing (none)")
    p.add_argument("--beta", type=float,
                   help="contrast sensitivity with --image (1 / (2 mean squared difference))")
    p.add_argument("--connectivity", type=int, default=4, choices=(4, 8),
                   help="neighbours of a pixel (4)")
    p.add_argument("--method", default="auto", choices=METHODS,
                   help="graphcut, expansion or trws, whichever applies, by default")
    p.add_argument("--max-iter", type=int, help="most iterations (the method's default)")
    p.add_argument("--tol", type=float, default=1e-5, help="relative stopping tolerance (1e-5)")
    p.add_argument("-o", "--output", required=True, help="labels PNG")
    p.add_argument("--palette", choices=PALETTE_CHOICES, help="write an indexed PNG in these "
                                                              "colours")
    p.set_defaults(func=_cmd_grid)


def _cmd_grid(args: argparse.Namespace) -> int:
    from crfseg import io
    from crfseg.crf import (
        GridCRF,
        contrast_weights,
        potts,
        scores_to_unary,
        truncated_linear,
        truncated_quadratic,
    )

    if args.pairwise == "potts" and args.truncation is not None:
        raise ValueError("--truncation applies to --pairwise linear or quadratic, not potts")
    if args.beta is not None and args.image is None:
        raise ValueError("--beta needs --image (it sets the contrast sensitivity)")
    if not Path(args.output).resolve().parent.is_dir():
        raise FileNotFoundError(f"-o/--output: folder does not exist: {Path(args.output).parent}")
    image = io.read_image(args.image) if args.image is not None else None
    scores = io.read_scores(args.unary, image_shape=None if image is None else image.shape,
                            layout=args.layout, key=args.key)
    unary = scores_to_unary(scores, args.input_type)
    num_labels = unary.shape[0]
    if args.pairwise == "potts":
        cost = potts(num_labels, args.weight)
    else:
        build = truncated_linear if args.pairwise == "linear" else truncated_quadratic
        truncation = math.inf if args.truncation is None else args.truncation
        cost = build(num_labels, args.weight, truncation)
    weights = None
    if image is not None:
        weights = contrast_weights(image, beta=args.beta, connectivity=args.connectivity)
    crf = GridCRF(cost, connectivity=args.connectivity, edge_weights=weights)
    start = time.perf_counter()
    result = crf.minimize(unary, method=args.method, max_iter=args.max_iter, tol=args.tol)
    seconds = time.perf_counter() - start
    io.write_labels(args.output, result.labels, palette=_palette(args.palette))
    h, w = result.labels.shape
    if result.lower_bound is None:
        bound = "lower bound n/a (use --method trws for one), gap n/a"
    else:
        bound = (f"lower bound {result.lower_bound:.10g}, "
                 f"gap {100 * result.relative_gap:.4f} %")
    state = "converged" if result.converged else "stopped at --max-iter"
    print(f"grid {Path(args.unary).name}: {num_labels} labels, {w}x{h}, {result.method} "
          f"({result.n_iter} iterations, {state}) in {seconds:.2f} s: "
          f"energy {result.energy:.10g}, {bound} -> {args.output}")
    return 0


# --------------------------------------------------------------------------- entry point


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    from crfseg import __version__

    parser = argparse.ArgumentParser(
        prog="crfseg",
        description="Classical and hybrid CNN-CRF semantic segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"crfseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_refine_parser(subparsers)
    _add_evaluate_parser(subparsers)
    _add_demo_parser(subparsers)
    _add_predict_parser(subparsers)
    _add_split_merge_parser(subparsers)
    _add_grid_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error, 1 unexpected error).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed its usage message
        return int(exc.code or 0)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args.func(args))
    except USER_ERRORS as exc:
        _error(args.command, exc)
        return 2
    except KeyboardInterrupt:
        print("crfseg: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
