"""The README's result table in one command: CNN, CNN + DenseCRF, CNN + CRFasRNN.

    python examples/synthetic/result_table.py [--output runs/synthetic_table] [--threads 1]

Trains the small output-stride-8 CNN of config.json on SyntheticShapes, then
the same CNN with a CRFasRNN layer end to end, and scores the three variants on
the held-out test scenes (the settings were chosen on the validation scenes);
prints the markdown table with the gains and timings.
"""

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import evaluate_main, train_main  # noqa: E402

CONFIG = Path(__file__).with_name("config.json")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="runs/synthetic_table")
    parser.add_argument("--threads", default="1", help="torch CPU threads")
    args = parser.parse_args()
    common = ["--output", args.output, "--threads", args.threads, "--no-progress"]
    seconds = {}
    for stage in ("cnn", "crfasrnn"):
        started = time.perf_counter()
        code = train_main(CONFIG, ["--stage", stage, *common])
        seconds[stage] = time.perf_counter() - started
        if code:
            return code
    scores = Path(args.output) / "scores.json"
    started = time.perf_counter()
    code = evaluate_main(CONFIG, ["--split", "test", "--json", str(scores), *common])
    seconds["evaluate"] = time.perf_counter() - started
    if code:
        return code
    variants = json.loads(scores.read_text())["variants"]
    cnn = 100 * variants["cnn"]["mean_iou"]
    print("\n| model (SyntheticShapes test, 100 images 64x64, 6 classes) | mIoU (%) | vs CNN |")
    print("|---|---:|---:|")
    for key, title in (("cnn", "CNN alone (output stride 8)"),
                       ("cnn+densecrf", "CNN + DenseCRF post-processing"),
                       ("end_to_end", "CNN + CRFasRNN trained end to end")):
        value = 100 * variants[key]["mean_iou"]
        print(f"| {title} | {value:.2f} | {value - cnn:+.2f} |")
    print(f"\ntimes: CNN training {seconds['cnn']:.0f} s, CRFasRNN training "
          f"{seconds['crfasrnn']:.0f} s, evaluation {seconds['evaluate']:.0f} s, total "
          f"{sum(seconds.values()):.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
