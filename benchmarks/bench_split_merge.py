"""Split and merge beside scikit-image's Felzenszwalb and multi-Otsu + connected components.

Quality: piecewise-constant Voronoi images (gray levels 40/90/140/190, sizes
256x256 and 250x333, one cell per 2048 pixels), ground truth = 4-connected
components of the level map, Gaussian noise sigma in {0, 5, 10, 20} (rounded
and clipped to uint8), three seeds per setting.  Speed: a Voronoi image of 64
cells at 2048x2048 and 4096x4096 (sigma 10 for "stat", 0 for "range"), best of
the repeats.  One run:

    .venv/bin/python benchmarks/bench_split_merge.py [--repeats 5] [--seeds 3]
                                                     [--skip-slow-peer]

Scores: ARI (adjusted Rand index, 1 = identical partitions), VI split /
merge (the conditional entropies H(seg | truth) and H(truth | seg) in bits)
and boundary F1 with a 2-pixel tolerance.  Each cell of the quality table is
the mean over the seeds; the target check uses the worst seed.

Peers, with settings fixed beforehand: ``felzenszwalb(scale=300, sigma=0.8,
min_size=100)``, the best mean ARI of a 4 x 3 x 3 grid on images of another
seed; multi-Otsu with 4 classes (a level equal to a threshold in the lower
class), then 4-connected components (``skimage.measure.label``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage.filters import threshold_multiotsu
from skimage.measure import label as connected_components
from skimage.segmentation import felzenszwalb

from crfseg.classical import split_and_merge
from crfseg.classical._evaluation import (
    add_noise,
    adjusted_rand_index,
    boundary_f1,
    variation_of_information,
    voronoi_levels,
)

SIGMAS = (0, 5, 10, 20)
SHAPES = ((256, 256), (250, 333))
PIXELS_PER_CELL = 2048


def multi_otsu_components(image: np.ndarray) -> np.ndarray:
    classes = np.searchsorted(threshold_multiotsu(image, classes=4), image, side="left")
    return connected_components(classes, background=-1, connectivity=1)


METHODS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "crfseg range t=0": lambda im: split_and_merge(im, predicate="range", threshold=0),
    "crfseg stat k=5": lambda im: split_and_merge(im, predicate="stat"),
    "crfseg stat k=3": lambda im: split_and_merge(im, predicate="stat", threshold=3),
    "felzenszwalb": lambda im: felzenszwalb(im, scale=300, sigma=0.8, min_size=100),
    "multi-Otsu + CC": multi_otsu_components,
}


@dataclass
class Score:
    regions: int
    truth: int
    ari: float
    vi_split: float
    vi_merge: float
    bf1: float
    seconds: float


def score(method: Callable[[np.ndarray], np.ndarray], image: np.ndarray,
          truth: np.ndarray) -> Score:
    start = time.perf_counter()
    labels = method(image)
    seconds = time.perf_counter() - start
    split, merge = variation_of_information(truth, labels)
    return Score(int(np.unique(labels).size), int(truth.max()), adjusted_rand_index(truth, labels),
                 split, merge, boundary_f1(truth, labels, tolerance=2), seconds)


def quality(seeds: int) -> dict[tuple[str, int, tuple[int, int]], list[Score]]:
    results: dict[tuple[str, int, tuple[int, int]], list[Score]] = {}
    for shape in SHAPES:
        for seed in range(seeds):
            rng = np.random.default_rng(seed)
            image, truth = voronoi_levels(shape, round(shape[0] * shape[1] / PIXELS_PER_CELL), rng)
            for sigma in SIGMAS:
                noisy = add_noise(image, sigma, np.random.default_rng([seed, sigma]))
                for name, method in METHODS.items():
                    results.setdefault((name, sigma, shape), []).append(
                        score(method, noisy, truth))
    return results


def print_quality(results: dict[tuple[str, int, tuple[int, int]], list[Score]]) -> None:
    print("| image | σ | method | regions (truth) | ARI | VI split | VI merge | boundary F1 "
          "| time (ms) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for shape in SHAPES:
        for sigma in SIGMAS:
            for name in METHODS:
                runs = results[(name, sigma, shape)]

                def mean(field: str, runs: list[Score] = runs) -> float:
                    return float(np.mean([getattr(r, field) for r in runs]))

                print(f"| {shape[0]}x{shape[1]} | {sigma} | {name} | {mean('regions'):.1f} "
                      f"({mean('truth'):.1f}) | {mean('ari'):.4f} | {mean('vi_split'):.3f} | "
                      f"{mean('vi_merge'):.3f} | {mean('bf1'):.4f} | "
                      f"{1000 * mean('seconds'):.1f} |")


def check_targets(results: dict[tuple[str, int, tuple[int, int]], list[Score]]) -> None:
    print("\nTargets (worst seed):")
    for shape in SHAPES:
        runs = results[("crfseg range t=0", 0, shape)]
        exact = all(r.ari == 1.0 and r.regions == r.truth for r in runs)
        print(f"  {shape[0]}x{shape[1]} σ=0 range: exact recovery {'PASS' if exact else 'FAIL'} "
              f"(ARI min {min(r.ari for r in runs):.4f})")
        for sigma in (0, 5, 10):
            runs = results[("crfseg stat k=5", sigma, shape)]
            ari = min(r.ari for r in runs)
            bf1 = min(r.bf1 for r in runs)
            ratio = max(r.regions / r.truth for r in runs)
            ok = ari >= 0.95 and bf1 >= 0.97 and ratio <= 2.0
            print(f"  {shape[0]}x{shape[1]} σ={sigma} stat: ARI {ari:.4f} (>= 0.95), "
                  f"BF1 {bf1:.4f} (>= 0.97), regions/truth {ratio:.2f} (<= 2) "
                  f"{'PASS' if ok else 'FAIL'}")


def best_times(step: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall-clock and best CPU (user + system) seconds of ``repeats`` calls.

    On a shared machine the CPU time is the steadier of the two: it does not
    count the time the process waits for a core.
    """
    wall = cpu = float("inf")
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        step()
        cpu = min(cpu, time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start_wall)
    return wall, cpu


def speed(repeats: int, skip_slow_peer: bool) -> None:
    print("\n| image | method | regions (truth) | ARI | best wall (s) | best CPU (s) |")
    print("|---|---|---|---|---|---|")
    times: dict[tuple[str, int], tuple[float, float]] = {}
    for side in (2048, 4096):
        rng = np.random.default_rng(side)
        image, truth = voronoi_levels((side, side), 64, rng)
        noisy = add_noise(image, 10.0, rng)
        cases = [("crfseg stat k=5", noisy, 10), ("crfseg range t=0", image, 0),
                 ("multi-Otsu + CC", noisy, 10)]
        if side == 2048 and not skip_slow_peer:
            cases.append(("felzenszwalb", noisy, 10))
        for name, data, sigma in cases:
            method = METHODS[name]
            labels = method(data)
            runs = 1 if name == "felzenszwalb" else repeats
            wall, cpu = best_times(lambda m=method, d=data: m(d), runs)
            times[(name, side)] = wall, cpu
            once = "" if runs > 1 else " (one run)"
            print(f"| {side}x{side} σ={sigma} | {name} | {np.unique(labels).size} "
                  f"({truth.max()}) | {adjusted_rand_index(truth, labels):.4f} | "
                  f"{wall:.3f}{once} | {cpu:.3f} |")
    for name in ("crfseg stat k=5", "crfseg range t=0"):
        (wall2, cpu2), (wall4, cpu4) = times[(name, 2048)], times[(name, 4096)]
        print(f"  {name}: 2048² in {wall2:.3f} s wall, {cpu2:.3f} s CPU (target <= 0.5 s); "
              f"4096² / 2048² = {wall4 / wall2:.2f} wall, {cpu4 / cpu2:.2f} CPU "
              "(target <= ~4.5)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats (5)")
    parser.add_argument("--seeds", type=int, default=3, help="images per quality setting (3)")
    parser.add_argument("--skip-slow-peer", action="store_true",
                        help="do not time felzenszwalb at 2048x2048 (tens of seconds)")
    args = parser.parse_args()
    results = quality(args.seeds)
    print_quality(results)
    check_targets(results)
    speed(args.repeats, args.skip_slow_peer)


if __name__ == "__main__":
    main()
