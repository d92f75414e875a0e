"""The batch machinery every file-processing subcommand shares.

Inputs are two files or two folders paired by file stem (:func:`pair_inputs`);
folder mode can process one shard of the pairs (:func:`parse_shard`) in
several worker processes (:func:`run_batch`).  A file that fails is recorded
in a :class:`BatchReport` and the batch goes on.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crfseg.cli._common import USER_ERRORS, message

__all__ = [
    "BatchReport",
    "OutputSpec",
    "output_paths",
    "pair_inputs",
    "parse_shard",
    "run_batch",
    "select_pairs",
]


def parse_shard(text: str | None) -> tuple[int, int]:
    """Parse ``K/N`` (``0 <= K < N``) into ``(K, N)``; ``None`` means the whole set.

    Examples
    --------
    >>> parse_shard("1/4"), parse_shard(None)
    ((1, 4), (0, 1))
    """
    if text is None:
        return 0, 1
    try:
        k_text, n_text = text.split("/")
        k, n = int(k_text), int(n_text)
    except ValueError:
        raise ValueError(f"--shard must look like K/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= k < n:
        raise ValueError(f"--shard K/N needs N >= 1 and 0 <= K < N, got {text!r}")
    return k, n


def _files(folder: Path, extensions: Sequence[str]) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir())
            if p.is_file() and p.suffix.lower() in extensions}


def pair_inputs(first: str | Path, second: str | Path | None, first_name: str, second_name: str,
                first_ext: Sequence[str],
                second_ext: Sequence[str]) -> list[tuple[str, Path, Path | None]]:
    """Pair two inputs that are both files, or both folders matched by file stem.

    Returns ``(stem, first_path, second_path)`` triples sorted by stem.  With
    folders, stems present in only one folder are an error listing a few of them.
    """
    a = Path(first)
    b = Path(second) if second is not None else None
    if not a.exists():
        raise FileNotFoundError(f"{first_name} not found: {a}")
    if b is not None and not b.exists():
        raise FileNotFoundError(f"{second_name} not found: {b}")
    if a.is_file():
        if b is not None and b.is_dir():
            raise ValueError(f"{first_name} is a file but {second_name} is a folder: give two "
                             "files or two folders")
        return [(a.stem, a, b)]
    left = _files(a, first_ext)
    if not left:
        raise ValueError(f"{first_name} folder {a} holds no {'/'.join(first_ext)} files")
    if b is None:
        return [(stem, path, None) for stem, path in left.items()]
    if b.is_file():
        raise ValueError(f"{first_name} is a folder but {second_name} is a file: give two "
                         "files or two folders")
    right = _files(b, second_ext)
    unmatched = sorted(set(left) ^ set(right))
    if unmatched:
        shown = ", ".join(unmatched[:5]) + (" …" if len(unmatched) > 5 else "")
        raise ValueError(
            f"{len(unmatched)} file stem(s) appear in only one of {a} and {b}: {shown}"
        )
    return [(stem, left[stem], right[stem]) for stem in sorted(left)]


@dataclass
class BatchReport:
    """What a batch run did: results of the files that worked, messages of those that failed."""

    results: list[Any] = field(default_factory=list)
    failures: list[tuple[str, str, bool]] = field(default_factory=list)  # name, message, is_user

    @property
    def exit_code(self) -> int:
        """0 when every file worked, 2 when only user errors failed, else 1."""
        if not self.failures:
            return 0
        return 2 if all(user for _, _, user in self.failures) else 1

    def single_file_error(self, command: str) -> int:
        """Print the one failure of a single-file run as an error; return its exit code."""
        _, text, user = self.failures[0]
        print(f"crfseg {command}: error: {text}", file=sys.stderr)
        return 2 if user else 1

    def print_failures(self, command: str) -> None:
        """List the failed files, one line each, on stderr."""
        if self.failures:
            print(f"crfseg {command}: {len(self.failures)} file(s) failed:", file=sys.stderr)
            for name, text, _ in self.failures:
                print(f"  {name}: {text}", file=sys.stderr)


def _guarded(job: tuple[Callable[..., Any], Any]) -> tuple[bool, Any, bool]:
    function, item = job
    try:
        return True, function(item), True
    except USER_ERRORS as exc:
        return False, message(exc), True
    except Exception as exc:  # reported per file; the batch goes on
        return False, f"{type(exc).__name__}: {exc}", False


def share_cores(workers: int) -> None:
    """Give this worker process its share of the cores for torch's threads.

    Without it every worker would start one thread per core, and ``workers``
    processes would run ``workers`` times as many threads as there are cores.
    """
    import torch

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _worker_context() -> multiprocessing.context.BaseContext:
    """Worker processes that start clean: from a fork server, else spawned.

    A child forked from a process whose OpenMP workers have run (torch's
    operations and the lattice kernels share GNU OpenMP's pool) hangs in its
    first parallel step with more than one thread.
    """
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")


def run_batch(function: Callable[[Any], Any], items: Sequence[Any], names: Sequence[str],
              workers: int = 1, desc: str = "files", progress: bool | None = None) -> BatchReport:
    """Call ``function(item)`` on every item with a progress bar, in ``workers`` processes.

    A failing item is recorded and skipped; the others go on.  ``function``
    must be a module-level function (it is pickled for worker processes).
    """
    from tqdm import tqdm

    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    report = BatchReport()
    jobs = [(function, item) for item in items]
    show = progress if progress is not None else len(items) > 1
    bar = tqdm(total=len(jobs), desc=desc, unit="file", disable=not show, file=sys.stderr)
    if workers == 1 or len(jobs) <= 1:
        outcomes: Iterable[tuple[bool, Any, bool]] = map(_guarded, jobs)
        executor = None
    else:
        executor = ProcessPoolExecutor(max_workers=workers, mp_context=_worker_context(),
                                       initializer=share_cores, initargs=(workers,))
        outcomes = executor.map(_guarded, jobs)
    try:
        for name, (ok, value, user) in zip(names, outcomes):
            if ok:
                report.results.append(value)
            else:
                report.failures.append((name, value, user))
            bar.update(1)
    finally:
        bar.close()
        if executor is not None:
            executor.shutdown()
    return report


@dataclass
class OutputSpec:
    """One output option: its value in single-file mode and in folder mode."""

    file: str | None
    folder: str | None
    folder_option: str
    suffix: str


def _ensure_folder(value: str | None, option: str) -> None:
    if value is not None:
        folder = Path(value)
        if folder.exists() and not folder.is_dir():
            raise NotADirectoryError(f"{option} must be a folder in folder mode: {folder}")
        folder.mkdir(parents=True, exist_ok=True)


def select_pairs(pairs: list[tuple[str, Path, Path | None]], args: argparse.Namespace,
                 folder_mode: bool, shard: tuple[int, int], outputs: Sequence[OutputSpec],
                 inputs: str) -> list[tuple[str, Path, Path | None]]:
    """Folder mode: create the output folders and keep shard K of N; single-file mode: no
    shard, and a labels file named ``.png``."""
    if folder_mode:
        if args.output is not None:
            raise ValueError("-o/--output names one file; in folder mode use --output-dir")
        for spec in outputs:
            _ensure_folder(spec.folder, spec.folder_option)
        return pairs[shard[0]::shard[1]]
    if args.shard is not None:
        raise ValueError(f"--shard applies to folder mode ({inputs})")
    if args.output is not None:
        from crfseg.io import check_label_path

        check_label_path(args.output, "-o/--output")
    return pairs


def output_paths(outputs: Sequence[OutputSpec], folder_mode: bool,
                 stem: str) -> list[Path | None]:
    """Where each output of the input named ``stem`` goes (None: not written)."""
    if folder_mode:
        return [None if spec.folder is None else Path(spec.folder) / f"{stem}{spec.suffix}"
                for spec in outputs]
    return [Path(spec.file) if spec.file else None for spec in outputs]
