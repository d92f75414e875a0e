"""A control for the tuned CRF rows: per-class biases on the CNN's logits, with and without a CRF.

    python examples/camvid/class_bias.py --tune runs/camvid_val/tune --test runs/camvid_val/test \\
        --logits logits2 --crf-params runs/camvid_cpu2/crf_params.json -o runs/bias.json

A CNN trained on few steps is badly calibrated for its rare classes.  A CRF
whose Potts weights differ per class partly acts as a shift of the class
priors, so its gain over the CNN mixes spatial smoothing with recalibration.
This script separates the two: it fits one bias per class, added to the
logits, by coordinate search for the best mean IoU on the tuning half (no CRF
at all: :func:`crfseg.crf.fit_class_bias`, the first stage of ``crfseg tune
--class-bias``), then scores on the other half the CNN, the CNN with the
biases, and the biased logits refined by each ``--crf-params`` file (its own
bias, if any, replaced by these).  ``--tune`` and ``--test`` are folders of
``split_val.py`` holding ``images/``, ``gt/`` and the logits of ``crfseg
predict --save-logits``; ``-o`` writes the biases as a parameter file with no
CRF, which ``train.py --stage crfasrnn --crf-params`` starts from.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


def load_half(folder: Path, logits: str) -> list[tuple[np.ndarray, np.ndarray, Path]]:
    """``(log-probabilities (C, H, W), labels (H, W), image path)`` of every image of a half."""
    import torch

    from crfseg import io
    from crfseg.cli import pair_inputs
    from crfseg.cli._common import IMAGE_EXTENSIONS, SCORE_EXTENSIONS

    scores = pair_inputs(folder / logits, folder / "gt", "logits", "gt", SCORE_EXTENSIONS,
                         IMAGE_EXTENSIONS)
    images = pair_inputs(folder / logits, folder / "images", "logits", "images",
                         SCORE_EXTENSIONS, IMAGE_EXTENSIONS)
    half = []
    for (_, score, gt), (_, _, image) in zip(scores, images):
        log_probs = torch.log_softmax(torch.from_numpy(io.read_scores(score)), 0).numpy()
        half.append((log_probs, io.read_labels(gt), image))
    return half


def confusion(half: list[tuple[np.ndarray, np.ndarray, Path]], bias: np.ndarray,
              ignore_index: int) -> np.ndarray:
    """Confusion matrix of ``argmax(log p + bias)`` over a half."""
    from crfseg.metrics import confusion_matrix

    return sum(confusion_matrix((log_probs + bias[:, None, None]).argmax(0), labels,
                                len(bias), ignore_index=ignore_index)
               for log_probs, labels, _ in half)


def refined_confusion(half: list[tuple[np.ndarray, np.ndarray, Path]], bias: np.ndarray,
                      params: Any, ignore_index: int) -> np.ndarray:
    """Confusion matrix of the log-probabilities with ``bias`` refined by ``params``."""
    from dataclasses import replace

    from crfseg import io
    from crfseg.metrics import confusion_matrix

    params = replace(params, class_bias=tuple(bias))
    engine = params.dense_crf("pydensecrf")
    matrix = 0
    for log_probs, labels, image in half:
        probs = params.refine(log_probs, io.read_image(image), "logits", crf=engine)
        matrix = matrix + confusion_matrix(probs.argmax(0), labels, len(bias),
                                           ignore_index=ignore_index)
    return matrix


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune", required=True, help="half the biases are fitted on")
    parser.add_argument("--test", required=True, help="half every row is scored on")
    parser.add_argument("--logits", default="logits", help="logits folder in each half (logits)")
    parser.add_argument("--num-classes", type=int, default=11, help="classes (11)")
    parser.add_argument("--ignore-index", type=int, default=11, help="label left out (11)")
    parser.add_argument("--crf-params", action="append", default=[],
                        help="'crfseg tune' parameter file applied to the biased logits "
                             "(repeatable)")
    parser.add_argument("--json", help="write the biases and scores to this JSON file")
    parser.add_argument("-o", "--output",
                        help="write the biases as a crfseg parameter file with no CRF")
    args = parser.parse_args(argv)
    from crfseg import io
    from crfseg.crf import DenseCRFParams, fit_class_bias
    from crfseg.metrics import iou, mean_iou

    try:
        crfs = [(path, DenseCRFParams.read(path, num_classes=args.num_classes))
                for path in args.crf_params]
        tune = load_half(Path(args.tune), args.logits)
        test = load_half(Path(args.test), args.logits)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bias, tune_miou = fit_class_bias([log_probs for log_probs, _, _ in tune],
                                     [labels for _, labels, _ in tune],
                                     num_classes=args.num_classes, input_type="logits",
                                     ignore_index=args.ignore_index)
    print(f"biases fitted on {len(tune)} images (mIoU {100 * tune_miou:.2f}): "
          + ", ".join(f"{b:g}" for b in bias))
    rows = {"CNN": confusion(test, np.zeros(args.num_classes), args.ignore_index),
            "CNN + class biases": confusion(test, bias, args.ignore_index)}
    for path, params in crfs:
        rows[f"CNN + class biases + DenseCRF ({Path(path).name})"] = refined_confusion(
            test, bias, params, args.ignore_index)
    print(f"scored on {len(test)} images")
    for title, matrix in rows.items():
        print(f"{title:<60} {100 * mean_iou(matrix):6.2f}  "
              + " ".join(f"{100 * v:5.1f}" for v in iou(matrix)))
    if args.output:
        DenseCRFParams(crf="none", class_bias=tuple(bias)).write(args.output)
    if args.json:
        io.write_json(args.json, {"bias": bias, "tune_miou": tune_miou,
                                  "rows": {t: {"mean_iou": mean_iou(m), "iou": iou(m)}
                                           for t, m in rows.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
