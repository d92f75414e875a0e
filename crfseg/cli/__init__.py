"""The ``crfseg`` command line: parse, load, call the public API, save.

No algorithm lives here.  Each subcommand is one module of this package with
two functions, ``add_parser(subparsers)`` and ``run(args) -> int``, and one
line in :data:`SUBCOMMANDS`; the batch machinery they share (pairing files by
stem, shards, worker processes, the failure report) is in
:mod:`crfseg.cli._batch`.  User errors (missing files, bad shapes, bad
options) print one line on stderr and return 2; unexpected errors print a
traceback and return 1.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import traceback
from collections.abc import Sequence

from crfseg.cli._batch import pair_inputs as pair_inputs  # re-exported for scripts
from crfseg.cli._batch import parse_shard as parse_shard
from crfseg.cli._common import USER_ERRORS, message

__all__ = ["main", "build_parser", "SUBCOMMANDS"]

#: The modules of ``crfseg.cli`` that define a subcommand, in the order ``--help`` lists them.
SUBCOMMANDS = (
    "refine",
    "evaluate",
    "demo",
    "predict",
    "split_merge",
    "grid",
    "tune",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered.

    Examples
    --------
    >>> build_parser().parse_args(["demo", "--seed", "3"]).seed
    3
    """
    from crfseg import __version__

    parser = argparse.ArgumentParser(
        prog="crfseg",
        description="Classical and hybrid CNN-CRF semantic segmentation.",
    )
    parser.add_argument("--version", action="version", version=f"crfseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"{__name__}.{name}").add_parser(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit code (0 ok, 2 user error, 1 unexpected error).

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        The exit code.
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
        print(f"crfseg {args.command}: error: {message(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("crfseg: interrupted", file=sys.stderr)
        return 130
    except Exception:
        traceback.print_exc()
        return 1
