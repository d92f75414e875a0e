"""Split CamVid val into two fixed halves: one to tune the CRF on, one to score every row on.

    python examples/camvid/split_val.py --data-root /path/to/camvid --out runs/camvid_val

The val images, sorted by file stem, alternate: even positions go to
``<out>/tune``, odd ones to ``<out>/test``.  Each half gets ``images/`` and
``gt/`` folders of links to the dataset's files (nothing is copied), the
layout ``crfseg predict`` and ``crfseg tune`` read; ``evaluate.py --half odd``
scores the same ``test`` images.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

HALVES = {"even": "tune", "odd": "test"}


def half_indices(stems: Sequence[str], half: str) -> list[int]:
    """Positions of the ``half`` (``"even"``, ``"odd"`` or ``"all"``) of ``stems`` sorted."""
    if half not in ("even", "odd", "all"):
        raise ValueError(f"half must be 'even', 'odd' or 'all', got {half!r}")
    order = sorted(range(len(stems)), key=lambda i: stems[i])
    if half == "all":
        return order
    return order[0 if half == "even" else 1::2]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding CamVid/")
    parser.add_argument("--split", default="val", help="split to halve (val)")
    parser.add_argument("--out", required=True, help="folder for tune/ and test/")
    args = parser.parse_args(argv)
    from crfseg.datasets import CamVid

    try:
        data = CamVid(args.data_root, split=args.split)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stems = [Path(image).stem for image, _ in data.samples]
    for half, name in HALVES.items():
        for kind in ("images", "gt"):
            (Path(args.out) / name / kind).mkdir(parents=True, exist_ok=True)
        for i in half_indices(stems, half):
            image, label = data.samples[i]
            for kind, source in (("images", image), ("gt", label)):
                link = Path(args.out) / name / kind / Path(source).name
                if link.is_symlink() or link.exists():
                    link.unlink()
                os.symlink(Path(source).resolve(), link)
        print(f"{name}: {len(half_indices(stems, half))} images -> {Path(args.out) / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
