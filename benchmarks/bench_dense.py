"""Dense CRF: crfseg's torch backend beside pydensecrf on the same photos, time and peak memory.

    .venv/bin/python benchmarks/bench_dense.py [--repeats 3] [--sizes 480x360x21x5 ...]

Every row refines one real photo (scikit-image's astronaut, chelsea or
coffee, resized) with smooth random logits, the standard kernels
(``gaussian_sxy=3``, ``bilateral_sxy=80``, ``bilateral_srgb=13``, compat 3
and 10) and the row's number of mean-field iterations.  pydensecrf is called
directly (unary and image ready, as its users call it); crfseg runs a whole
cold ``DenseCRF(backend="torch", device="cpu").refine(logits, image)`` call,
a new ``DenseCRF`` each time, conversions included.  Each measurement runs in
a process of its own, so the peak resident memory (``ru_maxrss``, the
interpreter with numpy and torch imported included) is that backend's alone;
the time is the best of ``--repeats`` calls.  Label agreement and mean
|ΔQ| compare crfseg's marginals with pydensecrf's.  The GPU figures come
from ``benchmarks/gpu_check.py`` (``make gpu-check``).

The lattice kernels run on torch's own OpenMP threads, so they need the
cores to themselves as much as torch does: on a machine busy with other
work every parallel step waits for its slowest thread, and the ratios
measured there say more about the load than about the engines.  The header
prints the load average before and after, and the ``OMP_WAIT_POLICY`` the
workers inherit.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# (width, height, classes, n_iter, photo, torch threads); pydensecrf is single-threaded
ROWS = (
    (480, 360, 21, 5, "astronaut", 2),
    (480, 360, 21, 5, "chelsea", 2),
    (480, 360, 21, 5, "coffee", 2),
    (480, 360, 21, 5, "astronaut", 1),
    (1024, 512, 21, 5, "coffee", 2),
    (2048, 1024, 19, 10, "chelsea", 2),
    (4000, 3000, 2, 5, "astronaut", 2),
)
TARGETS = {("480x360x21x5", 2): 0.5, ("480x360x21x5", 1): 1.0, ("1024x512x21x5", 2): 0.5,
           ("2048x1024x19x10", 2): 0.5, ("4000x3000x2x5", 2): 0.5}


def photo(name: str, height: int, width: int) -> np.ndarray:
    """A scikit-image sample photo resized to ``(height, width, 3)`` uint8."""
    from skimage import data
    from skimage.transform import resize

    img = resize(getattr(data, name)(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(img).astype(np.uint8)


def smooth_logits(classes: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """``(C, H, W)`` float32 logits: Gaussian noise smoothed over 6 pixels, scaled to std 4."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(seed)
    raw = gaussian_filter(rng.normal(size=(classes, height, width)).astype(np.float32),
                          (0, 6, 6))
    return (4.0 * raw / raw.std()).astype(np.float32)


def _pydensecrf_call(logits: np.ndarray, image: np.ndarray, n_iter: int):
    import pydensecrf.densecrf as dcrf

    classes, height, width = logits.shape
    shifted = logits - logits.max(0, keepdims=True)
    unary = -(shifted - np.log(np.exp(shifted).sum(0, keepdims=True)))
    unary = np.ascontiguousarray(unary.reshape(classes, -1), dtype=np.float32)

    def run() -> np.ndarray:
        crf = dcrf.DenseCRF2D(width, height, classes)
        crf.setUnaryEnergy(unary)
        crf.addPairwiseGaussian(sxy=3.0, compat=3.0)
        crf.addPairwiseBilateral(sxy=80.0, srgb=13.0, rgbim=image, compat=10.0)
        return np.asarray(crf.inference(n_iter), np.float32).reshape(classes, height, width)
    return run


def _torch_call(logits: np.ndarray, image: np.ndarray, n_iter: int):
    from crfseg.crf import DenseCRF

    def run() -> np.ndarray:
        return DenseCRF(n_iter=n_iter, backend="torch", device="cpu").refine(logits, image)
    return run


def worker(args: argparse.Namespace) -> None:
    """Measure one backend on one row; print a JSON line, save the marginals."""
    if args.backend == "torch":  # the pydensecrf process never imports torch
        import torch

        torch.set_num_threads(args.threads)
    width, height, classes, n_iter = map(int, args.size.split("x"))
    image, logits = photo(args.photo, height, width), smooth_logits(classes, height, width)
    make = _pydensecrf_call if args.backend == "pydensecrf" else _torch_call
    run = make(logits, image, n_iter)
    best, probs = float("inf"), None
    for _ in range(args.repeats):
        start = time.perf_counter()
        probs = run()
        best = min(best, time.perf_counter() - start)
    np.save(args.out, probs)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": best, "peak_mib": peak_mib}))


def run_worker(script: str, arguments: list[str], threads: int, label: str) -> dict:
    """Run ``script --worker ...`` in a process of its own; the JSON its last line prints.

    Its own process, so that the peak resident memory it reports is its own.
    """
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    result = subprocess.run([sys.executable, script, "--worker", *arguments],
                            capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{label} failed:\n{result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def measure(backend: str, size: str, name: str, threads: int, repeats: int, out: Path) -> dict:
    return run_worker(__file__, [backend, "--size", size, "--photo", name, "--threads",
                                 str(threads), "--repeats", str(repeats), "--out", str(out)],
                      threads, f"{backend} {size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3,
                        help="calls per measurement, the best kept (1 for 4000x3000)")
    parser.add_argument("--sizes", nargs="*", default=None,
                        help="only these WxHxCxITER rows, e.g. 480x360x21x5")
    parser.add_argument("--worker", choices=("pydensecrf", "torch"), help=argparse.SUPPRESS)
    parser.add_argument("--size", help=argparse.SUPPRESS)
    parser.add_argument("--photo", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.backend = args.worker
        worker(args)
        return

    print(f"CPU: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')}; cold calls, each "
          "backend in its own process\n")
    print("| W×H×C×iter | photo | torch threads | pydensecrf s | crfseg s | time ratio "
          "(target) | pydensecrf peak MiB | crfseg peak MiB | memory ratio | labels agree "
          "| mean abs dQ |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for width, height, classes, n_iter, name, threads in ROWS:
            size = f"{width}x{height}x{classes}x{n_iter}"
            if args.sizes and size not in args.sizes:
                continue
            repeats = 1 if width * height > 4_000_000 else args.repeats
            ref_path, ours_path = Path(tmp) / "ref.npy", Path(tmp) / "ours.npy"
            ref = measure("pydensecrf", size, name, 1, repeats, ref_path)
            ours = measure("torch", size, name, threads, repeats, ours_path)
            q_ref, q_ours = np.load(ref_path), np.load(ours_path)
            agree = float((q_ref.argmax(0) == q_ours.argmax(0)).mean() * 100)
            delta = float(np.abs(q_ref - q_ours).mean())
            target = TARGETS.get((size, threads))
            target_text = f" (≤ {target:.1f})" if target else ""
            print(f"| {size} | {name} | {threads} | {ref['seconds']:.3f} | "
                  f"{ours['seconds']:.3f} | {ours['seconds'] / ref['seconds']:.2f}×"
                  f"{target_text} | {ref['peak_mib']:.0f} | {ours['peak_mib']:.0f} | "
                  f"{ours['peak_mib'] / ref['peak_mib']:.2f}× | {agree:.2f} % | {delta:.1e} |",
                  flush=True)
    print(f"\nload average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
