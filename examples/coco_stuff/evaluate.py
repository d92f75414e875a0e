"""Evaluate CNN, CNN + DenseCRF and CNN + CRFasRNN on COCO-Stuff (164k or 10k).

    python examples/coco_stuff/evaluate.py --data-root /path/to/data --output runs/coco_stuff

The recipe is in config.json beside this file; the driver is examples/common.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main(Path(__file__).with_name("config.json")))
