"""Dense CRF: crfseg's torch backend beside pydensecrf on the same inputs, and the GPU figures.

    .venv/bin/python benchmarks/bench_dense.py [--threads 2] [--repeats 5]

CPU rows: DenseCRF(backend="pydensecrf") and DenseCRF(backend="torch",
device="cpu") refine the same photo (scikit-image's astronaut, resized) with
the same smooth random 21-class logits, the standard kernels and 5 mean-field
iterations.  Each figure is the best wall time of ``--repeats`` interleaved
runs of a whole ``refine`` call (conversions included).  "torch, cold" builds
a new DenseCRF per call (both lattices built); "torch, warm" reuses one
DenseCRF, which keeps the spatial kernel's lattice for the image size.  The
per-iteration time is ``(t(n_iter=10) - t(n_iter=1)) / 9``.  Label agreement
and mean |ΔQ| compare the two backends' marginals.

GPU rows (only when CUDA is available): CRFasRNN forward and forward +
backward at 512x512, 21 classes, 5 iterations; DenseCRF at Cityscapes size
2048x1024, 19 classes, 10 iterations; with the peak GPU memory.
"""

from __future__ import annotations

import argparse
import time
from functools import partial

import numpy as np
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.transform import resize

from crfseg.crf import DenseCRF
from crfseg.models import CRFasRNN


def photo(height: int, width: int) -> np.ndarray:
    img = resize(data.astronaut(), (height, width), anti_aliasing=True, preserve_range=True)
    return np.round(img).astype(np.uint8)


def smooth_logits(classes: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    raw = gaussian_filter(rng.normal(size=(classes, height, width)), (0, 6, 6))
    return (4.0 * raw / raw.std()).astype(np.float32)


def timed(function) -> tuple[float, object]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def _runs(logits: np.ndarray, image: np.ndarray) -> dict:
    """The calls compared, by (backend, n_iter); "warm" reuses one DenseCRF per n_iter."""
    warm = {n: DenseCRF(n_iter=n, backend="torch", device="cpu") for n in (1, 5, 10)}
    runs = {}
    for n in (5, 1, 10):
        runs[("pydensecrf", n)] = partial(DenseCRF(n_iter=n).refine, logits, image)
        runs[("torch, cold", n)] = partial(_cold_torch, n, logits, image)
        runs[("torch, warm", n)] = partial(warm[n].refine, logits, image)
    return runs


def _cold_torch(n_iter: int, logits: np.ndarray, image: np.ndarray) -> np.ndarray:
    return DenseCRF(n_iter=n_iter, backend="torch", device="cpu").refine(logits, image)


def cpu_rows(width: int, height: int, classes: int, repeats: int) -> list[str]:
    image, logits = photo(height, width), smooth_logits(classes, height, width)
    runs = _runs(logits, image)
    best = {}
    for _ in range(repeats):
        for key, run in runs.items():
            seconds, result = timed(run)
            if key not in best or seconds < best[key][0]:
                best[key] = (seconds, result)
    reference = best[("pydensecrf", 5)]
    rows = []
    for name in ("pydensecrf", "torch, cold", "torch, warm"):
        total, probs = best[(name, 5)]
        per_iter = (best[(name, 10)][0] - best[(name, 1)][0]) / 9
        agree = (probs.argmax(0) == reference[1].argmax(0)).mean() * 100
        delta = np.abs(probs - reference[1]).mean()
        ratio = total / reference[0]
        rows.append(f"| {width}x{height}x{classes}x5 | {name} | {total * 1e3:.0f} | "
                    f"{per_iter * 1e3:.0f} | {ratio:.2f}x | {agree:.3f} % | {delta:.1e} |")
    return rows


def cuda_time(function, repeats: int) -> float:
    torch.cuda.synchronize()
    best = float("inf")
    for _ in range(repeats):
        start = torch.cuda.Event(enable_timing=True)
        stop = torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        stop.record()
        torch.cuda.synchronize()
        best = min(best, start.elapsed_time(stop))
    return best


def gpu_rows(repeats: int) -> list[str]:
    if not torch.cuda.is_available():
        return ["| GPU rows | not measured (no CUDA device) | | |"]
    device = torch.device("cuda")
    rows = []
    name = torch.cuda.get_device_name(device)
    logits = torch.from_numpy(smooth_logits(21, 512, 512))[None].to(device)
    image = torch.from_numpy(photo(512, 512)).permute(2, 0, 1)[None].float().to(device)
    layer = CRFasRNN(21, n_iter=5).to(device)
    for label, deterministic in (("", False), (", deterministic", True)):
        layer.deterministic = deterministic
        with torch.no_grad():
            layer(logits, image)
            torch.cuda.reset_peak_memory_stats()
            forward = cuda_time(lambda: layer(logits, image), repeats)
        peak_forward = torch.cuda.max_memory_allocated() / 2**20
        x = logits.clone().requires_grad_()

        def step(x=x):
            layer(x, image).square().mean().backward()

        step()
        torch.cuda.reset_peak_memory_stats()
        both = cuda_time(step, repeats)
        peak_both = torch.cuda.max_memory_allocated() / 2**20
        rows.append(f"| CRFasRNN 512x512x21x5 forward{label} | {name} | {forward:.1f} | "
                    f"{peak_forward:.0f} |")
        rows.append(f"| CRFasRNN 512x512x21x5 forward+backward{label} | {name} | {both:.1f} | "
                    f"{peak_both:.0f} |")
    scores = torch.from_numpy(smooth_logits(19, 1024, 2048))[None].to(device)
    city = torch.from_numpy(photo(1024, 2048)).permute(2, 0, 1)[None].to(device)
    crf = DenseCRF(n_iter=10, backend="torch", device=device)
    crf.refine(scores, city)
    torch.cuda.reset_peak_memory_stats()
    seconds = cuda_time(lambda: crf.refine(scores, city), repeats)
    peak = torch.cuda.max_memory_allocated() / 2**20
    rows.append(f"| DenseCRF 2048x1024x19x10 | {name} | {seconds:.1f} | {peak:.0f} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-cpu", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if not args.skip_cpu:
        print(f"CPU, torch.set_num_threads({args.threads}), best of {args.repeats} runs\n")
        print("| size (WxHxCxiter) | backend | total ms | ms / iteration | vs pydensecrf | "
              "labels agree | mean abs dQ |")
        print("|---|---|---|---|---|---|---|")
        for width, height in ((480, 360), (1024, 512)):
            for row in cpu_rows(width, height, 21, args.repeats):
                print(row)
        print()
    print("| GPU case | device | ms | peak MiB |")
    print("|---|---|---|---|")
    for row in gpu_rows(args.repeats):
        print(row)


if __name__ == "__main__":
    main()
