"""Train a CNN on Cityscapes (fine).

    python examples/cityscapes/train.py --data-root /path/to/data --output runs/cityscapes

The recipe is in config.json beside this file; the driver is examples/common.py.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import train_main  # noqa: E402

if __name__ == "__main__":
    sys.exit(train_main(Path(__file__).with_name("config.json")))
