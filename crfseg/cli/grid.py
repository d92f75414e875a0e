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
    p.add_argument("--pairwise", required=True, choices=PAIRWISE_NAMES,
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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Minimise the energy; write the labels; print energy, bound and gap; return 0."""
    from crfseg import io
    from crfseg.crf import GridCRF, contrast_weights, scores_to_unary
    from crfseg.crf.pairwise import pairwise_by_name

    if args.pairwise == "potts" and args.truncation is not None:
        raise ValueError("--truncation applies to --pairwise linear or quadratic, not potts")
    if args.beta is not None and args.image is None:
        raise ValueError("--beta needs --image (it sets the contrast sensitivity)")
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
