"""Dense CRF on a 3-D volume: crfseg's torch backend beside pydensecrf's generic class.

    .venv/bin/python benchmarks/bench_dense_volume.py [--shape 128x256x256] [--classes 4]

One row of ``bench_dense.py``'s table for a volume: a synthetic CT-like
phantom (D×H×W = 128×256×256 voxels of 2×1×1 mm, three blobs and a
background, Gaussian noise) with smooth random logits of 4 classes, refined
with 5 mean-field iterations (``gaussian_sxy=3``, ``bilateral_sxy=10`` mm,
``bilateral_srgb=20``, compat 3 and 10).  pydensecrf has no 3-D class: it is
called directly through its generic ``DenseCRF`` with the same features
``(x, y, z) / s`` and ``(x, y, z, intensity)`` that crfseg builds; crfseg runs
a cold ``DenseCRF(backend="torch", device="cpu").refine(logits, volume,
spacing=...)``.  Each backend runs in a process of its own, so the peak
resident memory (``ru_maxrss``) is its own; one call each (a volume is big).
:func:`volume_row` returns the row for ``bench_dense.py`` to print.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_dense import run_worker

SPACING = (2.0, 1.0, 1.0)
SETTINGS = {"n_iter": 5, "gaussian_sxy": 3.0, "gaussian_compat": 3.0, "bilateral_sxy": 10.0,
            "bilateral_srgb": 20.0, "bilateral_compat": 10.0}


def phantom(shape: tuple[int, int, int], classes: int, seed: int = 0
            ) -> tuple[np.ndarray, np.ndarray]:
    """A ``(D, H, W)`` float32 volume of blobs in noise and ``(C, D, H, W)`` float32 logits."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    d, h, w = shape
    z, y, x = np.ogrid[0:d, 0:h, 0:w]
    truth = np.zeros(shape, np.int64)
    for k in range(1, classes):
        cz, cy, cx = rng.uniform(0.25, 0.75, 3) * np.array(shape)
        radius = rng.uniform(0.12, 0.25) * h
        truth[((z - cz) * SPACING[0]) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 < radius ** 2] = k
    levels = np.linspace(40.0, 200.0, classes).astype(np.float32)
    volume = levels[truth] + rng.normal(0, 15, shape).astype(np.float32)
    logits = np.empty((classes, *shape), np.float32)
    for k in range(classes):
        noise = gaussian_filter(rng.normal(size=shape).astype(np.float32), 3.0)
        logits[k] = 2.0 * (truth == k) + 4.0 * noise / noise.std()
    return volume, logits


def _pydensecrf_call(logits: np.ndarray, volume: np.ndarray):
    import pydensecrf.densecrf as dcrf

    classes, d, h, w = logits.shape
    shifted = logits - logits.max(0, keepdims=True)
    unary = -(shifted - np.log(np.exp(shifted).sum(0, keepdims=True)))
    unary = np.ascontiguousarray(unary.reshape(classes, -1), dtype=np.float32)
    z, y, x = (a.astype(np.float32) for a in np.meshgrid(
        np.arange(d), np.arange(h), np.arange(w), indexing="ij"))

    def positions(sxy: float) -> list[np.ndarray]:
        return [x * np.float32(SPACING[2] / sxy), y * np.float32(SPACING[1] / sxy),
                z * np.float32(SPACING[0] / sxy)]

    smooth = np.ascontiguousarray(np.stack(positions(SETTINGS["gaussian_sxy"])).reshape(3, -1))
    bilateral = np.ascontiguousarray(np.stack(
        positions(SETTINGS["bilateral_sxy"]) + [volume / np.float32(SETTINGS["bilateral_srgb"])]
    ).reshape(4, -1))

    def run() -> np.ndarray:
        crf = dcrf.DenseCRF(d * h * w, classes)
        crf.setUnaryEnergy(unary)
        crf.addPairwiseEnergy(smooth, compat=SETTINGS["gaussian_compat"])
        crf.addPairwiseEnergy(bilateral, compat=SETTINGS["bilateral_compat"])
        return np.asarray(crf.inference(SETTINGS["n_iter"]), np.float32).reshape(logits.shape)
    return run


def _torch_call(logits: np.ndarray, volume: np.ndarray):
    from crfseg.crf import DenseCRF

    def run() -> np.ndarray:
        crf = DenseCRF(backend="torch", device="cpu", **SETTINGS)
        return crf.refine(logits, volume, spacing=SPACING)
    return run


def worker(args: argparse.Namespace) -> None:
    """Measure one backend once; print a JSON line, save the labels."""
    if args.worker == "torch":
        import torch

        torch.set_num_threads(args.threads)
    shape = tuple(int(n) for n in args.shape.split("x"))
    volume, logits = phantom(shape, args.classes)
    run = (_pydensecrf_call if args.worker == "pydensecrf" else _torch_call)(logits, volume)
    start = time.perf_counter()
    probs = run()
    seconds = time.perf_counter() - start
    np.save(args.out, probs.argmax(0).astype(np.uint8))
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "peak_mib": peak_mib}))


def _measure(backend: str, shape: str, classes: int, threads: int, out: Path) -> dict:
    return run_worker(__file__, [backend, "--shape", shape, "--classes", str(classes),
                                 "--threads", str(threads), "--out", str(out)],
                      threads, f"{backend} {shape}")


def volume_row(shape: str = "128x256x256", classes: int = 4, threads: int = 2) -> str:
    """Measure both backends on the phantom; return a row in ``bench_dense.py``'s columns."""
    with tempfile.TemporaryDirectory() as tmp:
        ref_path, ours_path = Path(tmp) / "ref.npy", Path(tmp) / "ours.npy"
        ref = _measure("pydensecrf", shape, classes, 1, ref_path)
        ours = _measure("torch", shape, classes, threads, ours_path)
        agree = float((np.load(ref_path) == np.load(ours_path)).mean() * 100)
    d, h, w = shape.split("x")
    return (f"| {w}×{h}×{d}×{classes}×{SETTINGS['n_iter']} (volume) | phantom | {threads} | "
            f"{ref['seconds']:.2f} | {ours['seconds']:.2f} | "
            f"{ours['seconds'] / ref['seconds']:.2f}× | {ref['peak_mib']:.0f} | "
            f"{ours['peak_mib']:.0f} | {ours['peak_mib'] / ref['peak_mib']:.2f}× | "
            f"{agree:.2f} % | – |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="128x256x256", help="D x H x W (128x256x256)")
    parser.add_argument("--classes", type=int, default=4, help="classes (4)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (2)")
    parser.add_argument("--worker", choices=("pydensecrf", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start; "
          "one cold call per backend, each in its own process\n")
    print("| W×H×D×C×iter | volume | torch threads | pydensecrf s | crfseg s | time ratio "
          "| pydensecrf peak MiB | crfseg peak MiB | memory ratio | labels agree | mean abs dQ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    print(volume_row(args.shape, args.classes, args.threads), flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
