"""Grid-CRF minimisation: crfseg's solvers beside PyMaxflow on the four problems of issue 4.

    .venv/bin/python benchmarks/bench_grid.py [--repeats 3] [--quick] [--problems 1,2,3,4,5,6]

1. binary segmentation 512x512, contrast-sensitive Potts (graph cut vs PyMaxflow's maxflow);
2. 8-label denoising (unary |y - c_l|), truncated linear and Potts, 256x256 and 512x512
   (vs PyMaxflow's ``fastmin.aexpansion_grid``);
3. 21-label contrast-sensitive Potts at 512x512 with segmentation-like unaries;
4. non-metric 16-label truncated quadratic at 256x256;
5. binary volume 128^3, contrast-sensitive 6-connected Potts (graph cut vs PyMaxflow's
   N-D grid graph);
6. 8-label volume denoising 64x128x128, 6-connected truncated linear: expansion and TRW-S
   (50 passes), their gap to the TRW-S bound (vs PyMaxflow's ``aexpansion_grid``).

One energy function, ``GridCRF.energy`` (float64), scores every labelling.  The gap is
(energy - bound) / |bound| for the best lower bound of the problem: the exact minimum where a
graph cut applies, otherwise the largest TRW-S bound of the runs shown.  Times are the best of
the repeats (one run for solvers slower than 3 s), wall clock and process CPU time, each
solver's set-up from arrays included.  PyMaxflow (GPL, in the ``bench`` extra only) is imported
here and nowhere in crfseg; its rows are skipped when it is absent.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from crfseg.crf import (
    GridCRF,
    contrast_weights,
    potts,
    truncated_linear,
    truncated_quadratic,
    volume_contrast_weights,
)
from crfseg.crf.pairwise import VOLUME_EDGE_OFFSETS

try:
    import maxflow as pymaxflow
    from maxflow import fastmin
except ImportError:  # pragma: no cover - the peer is optional
    pymaxflow = None


@dataclass
class Row:
    solver: str
    wall: float
    cpu: float
    energy: float
    bound: float | None = None


def timed(function: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Best wall and CPU time over the repeats; one run when a run takes over 3 s."""
    best_wall = best_cpu = float("inf")
    result = None
    for attempt in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = function()
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
        if attempt == 0 and best_wall > 3.0:
            break
    return best_wall, best_cpu, result


def run_crfseg(crf: GridCRF, unary: np.ndarray, name: str, repeats: int, **options) -> Row:
    wall, cpu, result = timed(lambda: crf.minimize(unary, **options), repeats)
    energy = crf.energy(result.labels, unary)
    label = f"crfseg {result.method}" + (f" ({name})" if name else "")
    return Row(label, wall, cpu, energy, result.lower_bound)


def run_pymaxflow_binary(crf, unary, weight, right, down, repeats) -> Row:
    height, width = unary.shape[1:]

    def solve():
        graph = pymaxflow.Graph[float]()
        nodes = graph.add_grid_nodes((height, width))
        # one structure per direction gives every edge its own weight
        along_rows = np.zeros((height, width))
        along_rows[:, :-1] = weight * right
        along_cols = np.zeros((height, width))
        along_cols[:-1, :] = weight * down
        graph.add_grid_edges(nodes, weights=along_rows, symmetric=True,
                             structure=np.array([[0, 0, 0], [0, 0, 1], [0, 0, 0]]))
        graph.add_grid_edges(nodes, weights=along_cols, symmetric=True,
                             structure=np.array([[0, 0, 0], [0, 0, 0], [0, 1, 0]]))
        graph.add_grid_tedges(nodes, unary[1], unary[0])
        graph.maxflow()
        return graph.get_grid_segments(nodes).astype(np.int32)

    wall, cpu, labels = timed(solve, repeats)
    return Row("PyMaxflow maxflow (grid)", wall, cpu, crf.energy(labels, unary))


def run_pymaxflow_expansion(crf, unary, repeats) -> Row:
    matrix = np.array(crf.pairwise.matrix)

    def solve():
        data = np.ascontiguousarray(np.moveaxis(unary, 0, -1), dtype=np.float64)
        return fastmin.aexpansion_grid(data, matrix)

    wall, cpu, labels = timed(solve, repeats)
    return Row("PyMaxflow aexpansion_grid", wall, cpu, crf.energy(labels.astype(np.int32), unary))


# ------------------------------------------------------------------ problems


def binary_segmentation(size: int, rng: np.random.Generator):
    rows, cols = np.mgrid[:size, :size] / size
    inside = ((rows - 0.5) ** 2 / 0.09 + (cols - 0.45) ** 2 / 0.14 < 1) | (
        (rows > 0.12) & (rows < 0.27) & (cols > 0.68) & (cols < 0.94))
    background, foreground = np.array([60.0, 120, 200]), np.array([200.0, 80, 60])
    image = np.where(inside[..., None], foreground, background) + rng.normal(0, 45, (size, size, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    pixels = image.astype(np.float64)
    unary = np.stack([((pixels - mean) ** 2).sum(-1) / (2 * 50.0**2)
                      for mean in (background, foreground)])
    return image, unary


def denoising(size: int, num_labels: int, noise: float, rng: np.random.Generator):
    rows, cols = np.mgrid[:size, :size] / size
    clean = (np.sin(3 * cols) + np.cos(4 * rows) + (cols > 0.5)
             + 1.5 * ((cols - 0.3) ** 2 + (rows - 0.6) ** 2 < 0.04))
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * (num_labels - 1)
    noisy = clean + rng.normal(0, noise, clean.shape)
    return np.abs(noisy[None] - np.arange(num_labels)[:, None, None])


def segmentation_scores(size: int, num_labels: int, rng: np.random.Generator):
    """Voronoi regions, their colours, and -log softmax of smoothly corrupted logits."""
    seeds = rng.integers(0, size, (40, 2))
    region_label = rng.integers(0, num_labels, 40)
    rows, cols = np.mgrid[:size, :size]
    nearest = np.argmin((rows[..., None] - seeds[:, 0]) ** 2 + (cols[..., None] - seeds[:, 1]) ** 2,
                        axis=-1)
    truth = region_label[nearest]
    colours = rng.integers(0, 255, (num_labels, 3))
    image = np.clip(colours[truth] + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    blobs = ndimage.gaussian_filter(rng.normal(0, 1, (num_labels, size, size)), (0, 6, 6))
    blobs /= blobs.std()
    logits = 2.0 * (2.0 * np.eye(num_labels)[truth].transpose(2, 0, 1) + 0.7 * blobs
                    + rng.normal(0, 0.3, (num_labels, size, size)))
    logits -= logits.max(axis=0)
    log_probs = logits - np.log(np.exp(logits).sum(axis=0))
    return image, (-log_probs).astype(np.float32), truth


# ------------------------------------------------------------------- report


def report(title: str, rows: list[Row], exact: float | None = None) -> float:
    bounds = [r.bound for r in rows if r.bound is not None]
    best = exact if exact is not None else max(bounds)
    print(f"\n### {title}\n")
    print("| solver | wall s | CPU s | energy | gap to bound |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        gap = (r.energy - best) / abs(best) * 100
        print(f"| {r.solver} | {r.wall:.3f} | {r.cpu:.3f} | {r.energy:,.2f} | {gap:.4f} % |")
    kind = "exact minimum" if exact is not None else "best TRW-S lower bound"
    print(f"\n{kind}: {best:,.2f}")
    return best


def gap_of(row: Row, bound: float) -> float:
    return (row.energy - bound) / abs(bound) * 100


def binary_problem(scale, repeats, have_peer, verdicts) -> None:
    size = 512 // scale
    rng = np.random.default_rng(0)
    image, unary = binary_segmentation(size, rng)
    right, down = contrast_weights(image)
    weight = 2.0
    crf = GridCRF(potts(2, weight), edge_weights=(right, down))
    rows = [run_crfseg(crf, unary, "", repeats)]
    if have_peer:
        rows.append(run_pymaxflow_binary(crf, unary, weight, right, down, repeats))
    exact = report(f"1. Binary segmentation {size}x{size}, contrast-sensitive Potts "
                   f"(weight {weight})", rows, exact=rows[0].energy)
    if have_peer:
        ours, peer = rows
        same = abs(ours.energy - peer.energy) <= 1e-9 * abs(exact)
        verdicts.append(("1 binary: energy equal to PyMaxflow, time <= 2x",
                         same and ours.wall <= 2 * peer.wall,
                         f"energies {'equal' if same else 'differ'}, "
                         f"time {ours.wall / peer.wall:.2f}x PyMaxflow's"))



def denoising_problems(scale, repeats, have_peer, verdicts) -> None:
    for size in (256 // scale, 512 // scale):
        for cost_name, cost in (("truncated linear (weight 1, truncation 2)",
                                 truncated_linear(8, 1.0, 2)),
                                ("Potts (weight 1)", potts(8, 1.0))):
            rng = np.random.default_rng(1)
            unary = denoising(size, 8, 1.2, rng)
            crf = GridCRF(cost)
            rows = [
                run_crfseg(crf, unary, "auto", repeats),
                run_crfseg(crf, unary, "", repeats, method="swap"),
                run_crfseg(crf, unary, "default stop", repeats, method="trws"),
                run_crfseg(crf, unary, "150 passes", 1, method="trws", max_iter=150, tol=0.0),
                run_crfseg(crf, unary, "", repeats, method="icm"),
            ]
            if have_peer:
                rows.append(run_pymaxflow_expansion(crf, unary, repeats))
            bound = report(f"2. Denoising {size}x{size}, 8 labels, {cost_name}", rows)
            if have_peer:
                ours, peer = rows[0], rows[-1]
                ok = gap_of(ours, bound) <= 0.05 and ours.wall <= peer.wall
                verdicts.append((f"2 denoise {size} {cost.kind}: gap <= 0.05 %, "
                                 "time <= aexpansion_grid", ok,
                                 f"gap {gap_of(ours, bound):.4f} %, {ours.wall:.3f} s vs "
                                 f"{peer.wall:.3f} s"))



def segmentation_problem(scale, repeats, verdicts) -> None:
    size = 512 // scale
    rng = np.random.default_rng(2)
    image, unary, truth = segmentation_scores(size, 21, rng)
    crf = GridCRF(potts(21, 2.0), edge_weights=contrast_weights(image))
    rows = [
        run_crfseg(crf, unary, "auto", repeats),
        run_crfseg(crf, unary, "default stop", repeats, method="trws"),
        run_crfseg(crf, unary, "50 passes", 1, method="trws", max_iter=50, tol=0.0),
        run_crfseg(crf, unary, "", repeats, method="icm"),
    ]
    bound = report(f"3. Segmentation {size}x{size}, 21 labels, contrast-sensitive Potts "
                   "(weight 2); PyMaxflow's aexpansion_grid has no per-edge weights", rows)
    ours = rows[0]
    verdicts.append(("3 seg21: gap <= 0.1 % in <= 1 s", gap_of(ours, bound) <= 0.1
                     and ours.wall <= 1.0,
                     f"gap {gap_of(ours, bound):.4f} %, {ours.wall:.3f} s wall, "
                     f"{ours.cpu:.3f} s CPU"))



def quadratic_problem(scale, repeats, have_peer, verdicts) -> None:
    size = 256 // scale
    rng = np.random.default_rng(3)
    unary = denoising(size, 16, 2.0, rng)
    crf = GridCRF(truncated_quadratic(16, 0.5, 9))
    rows = [
        run_crfseg(crf, unary, "auto", repeats),
        run_crfseg(crf, unary, "", repeats, method="swap"),
        run_crfseg(crf, unary, "150 passes", 1, method="trws", max_iter=150, tol=0.0),
        run_crfseg(crf, unary, "", repeats, method="icm"),
    ]
    if have_peer:
        rows.append(run_pymaxflow_expansion(crf, unary, repeats))
    bound = report(f"4. Denoising {size}x{size}, 16 labels, truncated quadratic (weight 0.5, "
                   "truncation 9), not a metric", rows)
    verdicts.append(("4 tquad16: gap <= 0.1 %", gap_of(rows[0], bound) <= 0.1,
                     f"gap {gap_of(rows[0], bound):.4f} %"))


def binary_volume(size: int, rng: np.random.Generator):
    """An ellipsoid and a slab brighter than the background, with noise, and its unary."""
    zz, yy, xx = np.mgrid[:size, :size, :size] / size
    inside = (((zz - 0.5) ** 2 / 0.1 + (yy - 0.45) ** 2 / 0.06 + (xx - 0.5) ** 2 / 0.12 < 1)
              | ((zz > 0.1) & (zz < 0.3) & (yy > 0.7) & (yy < 0.9)))
    volume = np.where(inside, 160.0, 80.0) + rng.normal(0, 40, inside.shape)
    unary = np.stack([(volume - mean) ** 2 / (2 * 45.0**2) for mean in (80.0, 160.0)])
    return volume, unary


def run_pymaxflow_volume(crf, unary, weight, weights, repeats) -> Row:
    shape = unary.shape[1:]

    def solve():
        graph = pymaxflow.Graph[float]()
        nodes = graph.add_grid_nodes(shape)
        for offset, array in zip(VOLUME_EDGE_OFFSETS, weights, strict=False):
            structure = np.zeros((3, 3, 3))
            structure[tuple(1 + step for step in offset)] = 1
            at_first = np.zeros(shape)
            at_first[tuple(slice(0, n - step) for step, n in zip(offset, shape, strict=True))] = (
                weight * array)
            graph.add_grid_edges(nodes, weights=at_first, structure=structure, symmetric=True)
        graph.add_grid_tedges(nodes, unary[1], unary[0])
        graph.maxflow()
        return graph.get_grid_segments(nodes).astype(np.int32)

    wall, cpu, labels = timed(solve, repeats)
    return Row("PyMaxflow maxflow (N-D grid)", wall, cpu, crf.energy(labels, unary))


def binary_volume_problem(scale, repeats, have_peer, verdicts) -> None:
    size = 128 // scale
    volume, unary = binary_volume(size, np.random.default_rng(4))
    weight = 2.0
    weights = volume_contrast_weights(volume)
    crf = GridCRF(potts(2, weight), connectivity=6, edge_weights=weights)
    rows = [run_crfseg(crf, unary, "", repeats)]
    if have_peer:
        rows.append(run_pymaxflow_volume(crf, unary, weight, weights, repeats))
    exact = report(f"5. Binary volume {size}^3, contrast-sensitive 6-connected Potts "
                   f"(weight {weight})", rows, exact=rows[0].energy)
    if have_peer:
        ours, peer = rows
        same = abs(ours.energy - peer.energy) <= 1e-9 * abs(exact)
        verdicts.append(("5 binary volume: energy equal to PyMaxflow", same,
                         f"energies {'equal' if same else 'differ'}, "
                         f"time {ours.wall / peer.wall:.2f}x PyMaxflow's"))


def denoising_volume(shape: tuple[int, int, int], num_labels: int, noise: float,
                     rng: np.random.Generator) -> np.ndarray:
    zz, yy, xx = np.mgrid[:shape[0], :shape[1], :shape[2]]
    zz, yy, xx = zz / shape[0], yy / shape[1], xx / shape[2]
    clean = (np.sin(3 * xx) + np.cos(4 * yy) + (zz > 0.5)
             + 1.5 * ((xx - 0.3) ** 2 + (yy - 0.6) ** 2 + (zz - 0.4) ** 2 < 0.04))
    clean = (clean - clean.min()) / (clean.max() - clean.min()) * (num_labels - 1)
    noisy = clean + rng.normal(0, noise, clean.shape)
    return np.abs(noisy[None] - np.arange(num_labels)[:, None, None, None])


def volume_denoising_problem(scale, repeats, have_peer, verdicts) -> None:
    shape = (64 // scale, 128 // scale, 128 // scale)
    unary = denoising_volume(shape, 8, 1.2, np.random.default_rng(5))
    crf = GridCRF(truncated_linear(8, 1.0, 2), connectivity=6)
    rows = [
        run_crfseg(crf, unary, "auto", repeats),
        run_crfseg(crf, unary, "50 passes", 1, method="trws", max_iter=50, tol=0.0),
    ]
    if have_peer:
        rows.append(run_pymaxflow_expansion(crf, unary, 1))
    bound = report(f"6. Volume denoising {'x'.join(map(str, shape))}, 8 labels, 6-connected "
                   "truncated linear (weight 1, truncation 2)", rows)
    verdicts.append(("6 volume denoise: expansion gap to the TRW-S bound",
                     gap_of(rows[0], bound) <= 0.1,
                     f"expansion gap {gap_of(rows[0], bound):.4f} % in {rows[0].wall:.1f} s, "
                     f"TRW-S gap {gap_of(rows[1], bound):.4f} % in {rows[1].wall:.1f} s"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="quarter-size images, a smoke test")
    parser.add_argument("--problems", default="1,2,3,4,5,6",
                        help="which problems to run (1,2,3,4,5,6)")
    args = parser.parse_args()
    problems = {int(part) for part in args.problems.split(",")}
    scale = 4 if args.quick else 1
    repeats = args.repeats
    have_peer = pymaxflow is not None
    if not have_peer:
        print("PyMaxflow is not installed (pip install 'crfseg-toolkit[bench]'): peer rows skipped")
    verdicts = []

    if 1 in problems:
        binary_problem(scale, repeats, have_peer, verdicts)
    if 2 in problems:
        denoising_problems(scale, repeats, have_peer, verdicts)
    if 3 in problems:
        segmentation_problem(scale, repeats, verdicts)
    if 4 in problems:
        quadratic_problem(scale, repeats, have_peer, verdicts)
    if 5 in problems:
        binary_volume_problem(scale, repeats, have_peer, verdicts)
    if 6 in problems:
        volume_denoising_problem(scale, repeats, have_peer, verdicts)
    print("\n### Targets\n")
    for name, ok, detail in verdicts:
        print(f"- {'met' if ok else 'NOT met'}: {name} ({detail})")


if __name__ == "__main__":
    main()
