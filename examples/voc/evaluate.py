"""Evaluate CNN, CNN + DenseCRF and CNN + CRFasRNN on Pascal VOC 2012 + SBD.

    python examples/voc/evaluate.py --data-root /path/to/data --output runs/voc

The recipe is in config.json beside this file; the driver is examples/common.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import evaluate_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(evaluate_main(Path(__file__).with_name("config.json")))
