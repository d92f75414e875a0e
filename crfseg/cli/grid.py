"""``crfseg grid``: minimise a pairwise grid-CRF energy."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from crfseg.cli._common import PALETTE_CHOICES, palette

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> None:
    """Register ``grid`` and its options."""
    from crfseg.crf.grid import METHODS
    from crfseg.crf.pairwise import PAIRWISE_NAMES

    p = subparsers.add_parser(
        "grid", help="minimise a pairwise grid-CRF energy (graph cuts, TRW-S, ICM)",
        description="Label every pixel by minimising sum_p U[x_p, p] + sum_pq w_pq V[x_p, x_q] "
                    "over a 4- or 8-connected grid, or every voxel of a 6-, 18- or "
                    "26-connected volume (crfseg.crf.GridCRF). With --image the "
                    "edge weights w_pq are contrast-sensitive (GrabCut), otherwise 1 / distance "
                    "(1/sqrt(2) on diagonals). Volumes are NIfTI (.nii, .nii.gz: scores "
                    "(X, Y, Z, C)) or .npy ((C, D, H, W)) files. Prints the energy, the lower "
                    "bound and the gap.",
    )
    p.add_argument("--unary", required=True,
                   help="unary energies .npy/.npz, or a volume's .nii/.nii.gz/.npy (see "
                        "--input-type and --layout)")
    p.add_argument("--image", help="image (or NIfTI/.npy volume) whose contrast weights the "
                                   "edges")
    p.add_argument("--input-type", default="unary", choices=("auto", "logits", "probs", "unary"),
                   help="what --unary holds (unary energies); others become -log p")
    p.add_argument("--layout", default="auto", choices=("auto", "chw", "hwc", "nchw"),
                   help="layout of the stored scores")
    p.add_argument("--key", help="array name inside a .npz file")
    p.add_argument("--pairwise", required=True, choices=PAIRWISE_NAMES,
                   help="label cost V: Potts, truncated linear or truncated quadratic")
    p.add_argument("--weight", type=float, required=True, help="weight of V")
    p.add_argument("--truncation", type=float,
                   help="label distance (linear) or squared distance (quadratic) where V stops "
                        "growing (none)")
    p.add_argument("--beta", type=float,
                   help="contrast sensitivity with --image (1 / (2 mean squared difference))")
    p.add_argument("--connectivity", type=int, choices=(4, 8, 6, 18, 26),
                   help="neighbours of a pixel (4, or 8) or of a voxel (6, 18 or 26); default 4 "
                        "for images, 6 for volumes")
    p.add_argument("--spacing", type=float, nargs=3, metavar=("SZ", "SY", "SX"),
                   help="voxel size of a volume for its contrast weights (default: the NIfTI "
                        "header's, else 1)")
    p.add_argument("--method", default="auto", choices=METHODS,
                   help="graphcut, expansion or trws, whichever applies, by default")
    p.add_argument("--max-iter", type=int, help="most iterations (the method's default)")
    p.add_argument("--tol", type=float, default=1e-5, help="relative stopping tolerance (1e-5)")
    p.add_argument("-o", "--output", required=True,
                   help="labels PNG; for a volume .nii, .nii.gz or .npy")
    p.add_argument("--palette", choices=PALETTE_CHOICES, help="write an indexed PNG in these "
                                                              "colours")
    p.set_defaults(func=run)


def _is_volume(args: argparse.Namespace) -> bool:
    """A volume when the connectivity is a volume's or a NIfTI file is given."""
    from crfseg import io

    if args.connectivity is not None:
        return args.connectivity in (6, 18, 26)
    return any(path is not None and io.is_volume_file(path) for path in (args.unary, args.image))


def _read_volume_unary(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """The volume's ``(L, D, H, W)`` unary, its contrast weights (or None) and its VolumeInfo."""
    import numpy as np

    from crfseg import io
    from crfseg.crf import scores_to_unary, volume_contrast_weights

    image, image_info = (None, None) if args.image is None else io.read_volume(args.image)
    scores, info = io.read_volume_scores(args.unary,
                                         None if image is None else image.shape[:3])
    if scores.ndim == 3:
        if args.input_type != "probs":
            raise ValueError(
                f"--unary {args.unary} holds a 3-D array of shape {scores.shape}: as a volume "
                "that is one (D, H, W) map, read as the foreground probability of 2 labels "
                "only with --input-type probs; an image's (L, H, W) unary needs "
                "--connectivity 4 or 8")
        scores = np.stack([1.0 - scores, scores])
    unary = scores_to_unary(scores, args.input_type)
    weights = None
    if image is not None:
        spacing = args.spacing or image_info.spacing or info.spacing
        weights = volume_contrast_weights(image, beta=args.beta,
                                          connectivity=args.connectivity, spacing=spacing)
    return unary, weights, image_info if image_info is not None and (
        image_info.affine is not None) else info


def run(args: argparse.Namespace) -> int:
    """Minimise the energy; write the labels; print energy, bound and gap; return 0."""
    from crfseg import io
    from crfseg.crf import GridCRF, contrast_weights, scores_to_unary
    from crfseg.crf.pairwise import pairwise_by_name

    if args.pairwise == "potts" and args.truncation is not None:
        raise ValueError("--truncation applies to --pairwise linear or quadratic, not potts")
    if args.beta is not None and args.image is None:
        raise ValueError("--beta needs --image (it sets the contrast sensitivity)")
    volume = _is_volume(args)
    if args.connectivity is None:
        args.connectivity = 6 if volume else 4
    if args.spacing is not None and not volume:
        raise ValueError("--spacing applies to volumes (--connectivity 6, 18 or 26)")
    if volume:
        return _run_volume(args)
    io.check_label_path(args.output, "-o/--output")
    if not Path(args.output).resolve().parent.is_dir():
        raise FileNotFoundError(f"-o/--output: folder does not exist: {Path(args.output).parent}")
    image = io.read_image(args.image) if args.image is not None else None
    scores = io.read_scores(args.unary, image_shape=None if image is None else image.shape,
                            layout=args.layout, key=args.key)
    unary = scores_to_unary(scores, args.input_type)
    num_labels = unary.shape[0]
    cost = pairwise_by_name(args.pairwise, num_labels, args.weight, args.truncation)
    weights = None
    if image is not None:
        weights = contrast_weights(image, beta=args.beta, connectivity=args.connectivity)
    crf = GridCRF(cost, connectivity=args.connectivity, edge_weights=weights)
    start = time.perf_counter()
    result = crf.minimize(unary, method=args.method, max_iter=args.max_iter, tol=args.tol)
    seconds = time.perf_counter() - start
    io.write_labels(args.output, result.labels, palette=palette(args.palette))
    h, w = result.labels.shape
    method, energy = _summary(result)
    print(f"grid {Path(args.unary).name}: {num_labels} labels, {w}x{h}, {method} "
          f"in {seconds:.2f} s: {energy} -> {args.output}")
    return 0


def _summary(result: Any) -> tuple[str, str]:
    """``method (n iterations, state)`` and ``energy, bound and gap`` of a result."""
    if result.lower_bound is None:
        bound = "lower bound n/a (use --method trws for one), gap n/a"
    else:
        bound = (f"lower bound {result.lower_bound:.10g}, "
                 f"gap {100 * result.relative_gap:.4f} %")
    state = "converged" if result.converged else "stopped at --max-iter"
    return (f"{result.method} ({result.n_iter} iterations, {state})",
            f"energy {result.energy:.10g}, {bound}")


def _run_volume(args: argparse.Namespace) -> int:
    """``run`` for a volume: NIfTI or .npy in, NIfTI or .npy labels out."""
    import numpy as np

    from crfseg import io
    from crfseg.crf import GridCRF
    from crfseg.crf.pairwise import pairwise_by_name

    out = Path(args.output)
    if not (io.is_volume_file(out) or out.suffix.lower() == ".npy"):
        raise ValueError(f"-o/--output: a volume's labels are written as .nii, .nii.gz or .npy, "
                         f"got {out}")
    if not out.resolve().parent.is_dir():
        raise FileNotFoundError(f"-o/--output: folder does not exist: {out.parent}")
    unary, weights, info = _read_volume_unary(args)
    cost = pairwise_by_name(args.pairwise, unary.shape[0], args.weight, args.truncation)
    crf = GridCRF(cost, connectivity=args.connectivity, edge_weights=weights)
    start = time.perf_counter()
    result = crf.minimize(unary, method=args.method, max_iter=args.max_iter, tol=args.tol)
    seconds = time.perf_counter() - start
    io.write_volume(out, result.labels.astype(np.uint8 if unary.shape[0] <= 256 else np.int32),
                    info)
    d, h, w = result.labels.shape
    method, energy = _summary(result)
    print(f"grid {Path(args.unary).name}: {unary.shape[0]} labels, {w}x{h}x{d} "
          f"({args.connectivity}-connected), {method} in {seconds:.2f} s: {energy} -> {out}")
    return 0
