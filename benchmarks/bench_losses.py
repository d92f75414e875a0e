"""Forward + backward time of every crfseg loss, as a ratio to torch's cross_entropy.

A batch of 8 x 21 classes x 256 x 256 float32 logits on the CPU, against blocky
targets (rectangles of a few classes per image, ~5 % ignored pixels), in one run:

    .venv/bin/python benchmarks/bench_losses.py [--repeats 3] [--device cpu]

Each row is the best of the repeats (after a warm-up) of
``loss(logits, target).backward()``, and its ratio is to the best time of
``F.cross_entropy`` measured just before it (the load of a shared machine drifts).
The distance-map losses are timed with their target maps precomputed; the cost
of those maps (SciPy on the host) is a separate column.  The Hausdorff loss
always recomputes the maps of its own prediction, so its row includes them.
The dense CRF loss takes an RGB image instead of the target (the target's
classes painted in random colours with noise, sxy=80, srgb=15): its row
includes building the batch's permutohedral lattice.
When MONAI is installed, its losses of the same definition are timed beside
ours (with ``to_onehot_y=True``; MONAI has no ignore_index).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import crfseg.losses as L


def blocky_targets(n: int, size: int, num_classes: int, seed: int = 0) -> torch.Tensor:
    """Rectangles of 5 random classes on a background, and an ignored band around each."""
    rng = np.random.default_rng(seed)
    target = np.zeros((n, size, size), dtype=np.int64)
    for image in target:
        for cls in rng.choice(np.arange(1, num_classes), size=5, replace=False):
            y, x = rng.integers(0, size - size // 8, size=2)
            h, w = rng.integers(size // 8, size // 2, size=2)
            image[y:y + h, x:x + w] = 255
            image[y + 2:y + h - 2, x + 2:x + w - 2] = cls
    return torch.from_numpy(target)


def painted_images(target: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``(N, 3, H, W)`` RGB in 0-255: one random colour per class, Gaussian noise of 10."""
    rng = np.random.default_rng(seed)
    colours = torch.from_numpy(rng.uniform(0, 255, size=(256, 3))).float().to(target.device)
    image = colours[target].permute(0, 3, 1, 2)
    noise = torch.from_numpy(rng.normal(0, 10, size=tuple(image.shape))).float()
    return (image + noise.to(target.device)).clamp(0, 255)


def best_time(step: Callable[[], None], repeats: int) -> float:
    start = time.perf_counter()
    step()  # warm-up; a step slower than 5 s is repeated once only, to bound the run time
    best = time.perf_counter() - start
    for _ in range(repeats if best < 5.0 else 1):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def forward_backward(loss: Callable[..., torch.Tensor], logits: torch.Tensor,
                     *args, **kwargs) -> Callable[[], None]:
    def step() -> None:
        logits.grad = None
        loss(logits, *args, **kwargs).backward()
        if logits.is_cuda:
            torch.cuda.synchronize()
    return step


def monai_peers(target: torch.Tensor) -> dict[str, Callable[[torch.Tensor], torch.Tensor]]:
    try:
        from monai import losses as M
    except ImportError:
        return {}
    onehot_y = torch.where(target == 255, 0, target)[:, None]
    softmax = {"softmax": True, "to_onehot_y": True, "batch": True}
    peers = {
        "dice_loss": M.DiceLoss(**softmax),
        "generalized_dice_loss": M.GeneralizedDiceLoss(**softmax),
        "tversky_loss": M.TverskyLoss(alpha=0.3, beta=0.7, **softmax),
        "focal_loss": M.FocalLoss(use_softmax=True, to_onehot_y=True, gamma=2.0),
        "hausdorff_dt_loss": M.HausdorffDTLoss(softmax=True, to_onehot_y=True),
        "ce_dice_loss": M.DiceCELoss(**softmax),
    }
    return {name: (lambda z, m=module: m(z, onehot_y)) for name, module in peers.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--classes", type=int, default=21)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-peers", action="store_true", help="skip the MONAI column")
    parser.add_argument("--only", help="comma-separated loss names: time just these rows")
    args = parser.parse_args()

    device = torch.device(args.device)
    torch.manual_seed(0)
    shape = (args.batch, args.classes, args.size, args.size)
    logits = torch.randn(shape, device=device, requires_grad=True)
    target = blocky_targets(args.batch, args.size, args.classes).to(device)
    c = args.classes

    map_start = time.perf_counter()
    inverted = L.inverted_distance_maps(target).float()
    inverted_s = time.perf_counter() - map_start
    map_start = time.perf_counter()
    signed = L.signed_distance_maps(target, c).float()
    signed_s = time.perf_counter() - map_start
    unsigned = signed.abs()

    rows: list[tuple[str, Callable[[], None], float | None]] = [
        ("cross_entropy", forward_backward(L.cross_entropy, logits, target), None),
        ("focal_loss", forward_backward(L.focal_loss, logits, target), None),
        ("distance_penalized_ce", forward_backward(
            L.distance_penalized_ce, logits, target, distance_maps=inverted), inverted_s),
        ("dice_loss", forward_backward(L.dice_loss, logits, target), None),
        ("generalized_dice_loss", forward_backward(L.generalized_dice_loss, logits, target),
         None),
        ("ce_dice_loss", forward_backward(L.ce_dice_loss, logits, target), None),
        ("jaccard_loss", forward_backward(L.jaccard_loss, logits, target), None),
        ("tversky_loss", forward_backward(L.tversky_loss, logits, target), None),
        ("focal_tversky_loss", forward_backward(L.focal_tversky_loss, logits, target), None),
        ("lovasz_softmax", forward_backward(L.lovasz_softmax, logits, target), None),
        ("lovasz_softmax per_image", forward_backward(L.lovasz_softmax, logits, target,
                                                      per_image=True), None),
        ("boundary_loss", forward_backward(L.boundary_loss, logits, target,
                                           distance_maps=signed), signed_s),
        ("hausdorff_dt_loss", forward_backward(L.hausdorff_dt_loss, logits, target,
                                               distance_maps=unsigned), signed_s),
        ("combo_loss", forward_backward(L.combo_loss, logits, target), None),
        ("exp_log_loss", forward_backward(L.exp_log_loss, logits, target), None),
        ("dense_crf_loss", forward_backward(L.dense_crf_loss, logits,
                                            painted_images(target)), None),
    ]
    if args.only:
        wanted = args.only.split(",")
        unknown = sorted(set(wanted) - {name for name, _, _ in rows})
        if unknown:
            parser.error(f"--only: unknown loss names {unknown}")
        rows = [row for row in rows if row[0] in wanted]
    peers = {} if args.no_peers else monai_peers(target)

    reference_step = forward_backward(F.cross_entropy, logits, target, ignore_index=255)
    print(f"# {args.batch} x {c} x {args.size}^2 float32 on {device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"best of {args.repeats}; F.cross_entropy is timed again before each row and the "
          "ratio uses that time")
    print()
    header = "| loss | fwd+bwd (ms) | F.cross_entropy (ms) | ratio | target maps (ms) |"
    rule = "|---|---:|---:|---:|---:|"
    if peers:
        header += " MONAI fwd+bwd (ms) |"
        rule += "---:|"
    print(header)
    print(rule)
    for name, step, map_s in rows:
        reference = best_time(reference_step, args.repeats)
        seconds = best_time(step, args.repeats)
        line = (f"| {name} | {seconds * 1e3:.0f} | {reference * 1e3:.0f} | "
                f"{seconds / reference:.2f} | {'' if map_s is None else f'{map_s * 1e3:.0f}'} |")
        if peers:
            peer = peers.get(name)
            line += f" {best_time(forward_backward(peer, logits), args.repeats) * 1e3:.0f} |" \
                if peer else " |"
        print(line, flush=True)


if __name__ == "__main__":
    main()
