"""Split CamVid val into two fixed halves: one to tune the CRF on, one to score every row on.

    python examples/camvid/split_val.py --data-root /path/to/camvid --out runs/camvid_val

The val images, sorted by file stem, are cut in two: the first half goes to
``<out>/tune``, the second to ``<out>/test`` (``evaluate.py --half second``
scores the same ``test`` images).  CamVid's val split is one drive (0016E5),
every other frame of a 30 fps video: with ``--mode interleaved`` (even
positions to tune, odd ones to test: ``--half odd``) each test frame has a
near-copy, 1/15 s away, among the tuning frames, and a tuned CRF is scored
almost on the images it was fitted to; the contiguous halves are different
stretches of road.  Each half gets ``images/`` and ``gt/`` folders of links to
the dataset's files (nothing is copied), the layout ``crfseg predict`` and
``crfseg tune`` read.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

#: The (tuning, test) halves of each ``--mode``.
MODES = {"contiguous": ("first", "second"), "interleaved": ("even", "odd")}
HALVES = ("all", "first", "second", "even", "odd")


def half_indices(stems: Sequence[str], half: str) -> list[int]:
    """Positions in ``stems`` of its ``half``, in sorted order of the stems.

    ``"first"``: the first ``ceil(n / 2)`` sorted stems, ``"second"`` the
    rest; ``"even"`` / ``"odd"``: every other one; ``"all"``: every one.
    """
    if half not in HALVES:
        raise ValueError(f"half must be one of {', '.join(repr(h) for h in HALVES)}, got "
                         f"{half!r}")
    order = sorted(range(len(stems)), key=lambda i: stems[i])
    middle = (len(order) + 1) // 2
    return {"all": order, "first": order[:middle], "second": order[middle:],
            "even": order[0::2], "odd": order[1::2]}[half]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True, help="folder holding CamVid/")
    parser.add_argument("--split", default="val", help="split to halve (val)")
    parser.add_argument("--out", required=True, help="folder for tune/ and test/")
    parser.add_argument("--mode", default="contiguous", choices=tuple(MODES),
                        help="contiguous: first and second half of the sorted stems (default); "
                             "interleaved: every other one")
    args = parser.parse_args(argv)
    from crfseg.datasets import CamVid

    try:
        data = CamVid(args.data_root, split=args.split)
    except (FileNotFoundError, NotADirectoryError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stems = [Path(image).stem for image, _ in data.samples]
    for half, name in zip(MODES[args.mode], ("tune", "test")):
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
