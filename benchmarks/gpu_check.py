"""crfseg on a GPU in one table: speed, peak memory, agreement with pydensecrf, bf16, determinism.

    python benchmarks/gpu_check.py                      # what `make gpu-check` prints
    python benchmarks/gpu_check.py --device cpu --quick # the same checks, small, on the CPU

Rows (targets for an H100/H200 beside them):

- DenseCRF torch backend 512x512x21x5, forward (target <= 5 ms);
- CRFasRNN 512x512x21x5 forward, and forward + backward (<= 15 ms);
- DenseCRF 2048x1024x19x10 (<= 50 ms) and 4000x3000x2x5 (<= 100 ms, <= 8 GB);
- DenseCRF on a batch of 8 images of 512x512x21x5;
- each with its peak memory (CUDA: ``max_memory_allocated``; CPU: the
  process's peak resident size so far) and, for the DenseCRF rows, the label
  agreement and mean |ΔQ| against pydensecrf on the same inputs (the first
  image of the batch);
- one training step of a small CNN followed by CRFasRNN under bf16 autocast
  (the loss must be finite and every parameter must get a finite gradient);
- CRFasRNN forward + backward in deterministic mode run twice: bitwise equal.

Times are the best of ``--repeats`` runs after one warm-up, synchronised on
CUDA.  Inputs are real photos (scikit-image's astronaut, chelsea, coffee,
resized) and smooth random logits.  ``--quick`` shrinks every size (the
checks stay the same) so that the script itself can be tested on a CPU.
The exit status is 1 when a check (agreement, finiteness, bitwise equality)
fails; missed speed targets are shown, not fatal.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from crfseg.crf import DenseCRF
from crfseg.models import CRFasRNN

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_dense import photo, smooth_logits  # noqa: E402  (the same photos and logits)

AGREEMENT_MIN = 99.5  # percent of labels equal to pydensecrf's
DELTA_MAX = 1e-3  # mean |ΔQ|


@dataclass
class Case:
    """One DenseCRF size: width, height, classes, iterations, batch, photo, targets."""

    label: str
    width: int
    height: int
    classes: int
    n_iter: int
    batch: int = 1
    photo: str = "astronaut"
    target_ms: float | None = None
    target_gib: float | None = None


FULL = [
    Case("DenseCRF 512x512x21x5 forward", 512, 512, 21, 5, target_ms=5.0),
    Case("DenseCRF 2048x1024x19x10", 2048, 1024, 19, 10, photo="chelsea", target_ms=50.0),
    Case("DenseCRF 4000x3000x2x5", 4000, 3000, 2, 5, photo="coffee", target_ms=100.0,
         target_gib=8.0),
    Case("DenseCRF batch 8x512x512x21x5", 512, 512, 21, 5, batch=8),
]
QUICK = [
    Case("DenseCRF 48x48x21x5 forward", 48, 48, 21, 5),
    Case("DenseCRF 96x48x19x10", 96, 48, 19, 10, photo="chelsea"),
    Case("DenseCRF 120x90x2x5", 120, 90, 2, 5, photo="coffee"),
    Case("DenseCRF batch 2x48x48x21x5", 48, 48, 21, 5, batch=2),
]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_ms(function, device: torch.device, repeats: int) -> float:
    """Best wall time of ``repeats`` calls after one warm-up, in milliseconds."""
    function()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        function()
        _sync(device)
        best = min(best, (time.perf_counter() - start) * 1e3)
    return best


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_gib(device: torch.device) -> float:
    """Peak CUDA memory allocated since the last reset, or the process's peak RSS on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _target(value: float, target: float | None, unit: str) -> str:
    if target is None:
        return "–"
    verdict = "met" if value <= target else "missed"
    return f"≤ {target:g} {unit} ({verdict})"


def dense_row(case: Case, device: torch.device, repeats: int) -> tuple[list[str], bool]:
    """Time DenseCRF on ``case``; compare its first image with pydensecrf."""
    import pydensecrf.densecrf as dcrf

    image = photo(case.photo, case.height, case.width)
    logits = smooth_logits(case.classes, case.height, case.width)
    scores = torch.from_numpy(logits)[None].expand(case.batch, -1, -1, -1).contiguous()
    images = torch.from_numpy(image).permute(2, 0, 1)[None].expand(case.batch, -1, -1, -1)
    scores, images = scores.to(device), images.contiguous().to(device)
    crf = DenseCRF(n_iter=case.n_iter, backend="torch", device=device)
    probs = crf.refine(scores, images)
    reset_peak(device)
    ms = best_ms(lambda: crf.refine(scores, images), device, repeats)
    peak = peak_gib(device)
    ours = probs[0].float().cpu().numpy()

    unary = -torch.log_softmax(torch.from_numpy(logits), 0).numpy()
    ref_crf = dcrf.DenseCRF2D(case.width, case.height, case.classes)
    ref_crf.setUnaryEnergy(np.ascontiguousarray(unary.reshape(case.classes, -1)))
    ref_crf.addPairwiseGaussian(sxy=3.0, compat=3.0)
    ref_crf.addPairwiseBilateral(sxy=80.0, srgb=13.0, rgbim=image, compat=10.0)
    ref = np.asarray(ref_crf.inference(case.n_iter), np.float32).reshape(ours.shape)
    agree = float((ref.argmax(0) == ours.argmax(0)).mean() * 100)
    delta = float(np.abs(ref - ours).mean())
    ok = agree >= AGREEMENT_MIN and delta <= DELTA_MAX
    return [case.label, f"{ms:.1f}", _target(ms, case.target_ms, "ms"), f"{peak:.2f}",
            _target(peak, case.target_gib, "GiB"),
            f"{agree:.2f} %, |ΔQ| {delta:.1e} ({'ok' if ok else 'FAILED'})"], ok


def crf_as_rnn_rows(size: int, device: torch.device, repeats: int) -> list[list[str]]:
    """CRFasRNN forward, and forward + backward, at ``size`` x ``size`` x 21 x 5."""
    logits = torch.from_numpy(smooth_logits(21, size, size))[None].to(device)
    image = torch.from_numpy(photo("astronaut", size, size)).permute(2, 0, 1)[None]
    image = image.float().to(device)
    layer = CRFasRNN(21, n_iter=5).to(device)
    rows = []
    with torch.no_grad():
        reset_peak(device)
        ms = best_ms(lambda: layer(logits, image), device, repeats)
    rows.append([f"CRFasRNN {size}x{size}x21x5 forward", f"{ms:.1f}",
                 _target(ms, 5.0 if size == 512 else None, "ms"), f"{peak_gib(device):.2f}",
                 "–", "–"])
    x = logits.clone().requires_grad_()

    def step() -> None:
        layer.zero_grad(set_to_none=True)
        layer(x, image).square().mean().backward()

    reset_peak(device)
    ms = best_ms(step, device, repeats)
    rows.append([f"CRFasRNN {size}x{size}x21x5 forward+backward", f"{ms:.1f}",
                 _target(ms, 15.0 if size == 512 else None, "ms"), f"{peak_gib(device):.2f}",
                 "–", "–"])
    return rows


def bf16_training_row(size: int, device: torch.device) -> tuple[list[str], bool]:
    """One SGD step of a small CNN + CRFasRNN under bf16 autocast."""
    torch.manual_seed(0)
    cnn = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 21, 1))
    model = nn.ModuleDict({"cnn": cnn, "crf": CRFasRNN(21, n_iter=5)}).to(device)
    optimiser = torch.optim.SGD(model.parameters(), lr=1e-3)
    rgb = torch.from_numpy(photo("coffee", size, size)).permute(2, 0, 1)[None].float()
    rgb = rgb.to(device)
    target = torch.randint(0, 21, (1, size, size), device=device)
    reset_peak(device)
    _sync(device)
    start = time.perf_counter()
    with torch.autocast(device_type=device.type, dtype=torch.bfloat16):
        logits = model["cnn"](rgb / 255.0)
        refined = model["crf"](logits, rgb)
        loss = nn.functional.cross_entropy(refined.float(), target)
    loss.backward()
    optimiser.step()
    _sync(device)
    ms = (time.perf_counter() - start) * 1e3
    grads_ok = all(p.grad is not None and bool(torch.isfinite(p.grad).all())
                   for p in model.parameters() if p.requires_grad)
    ok = bool(torch.isfinite(loss)) and grads_ok
    verdict = "ok" if ok else "FAILED"
    return [f"CNN + CRFasRNN {size}x{size}x21x5 bf16-autocast training step", f"{ms:.1f}", "–",
            f"{peak_gib(device):.2f}", "–",
            f"loss {float(loss.detach()):.3f}, gradients finite: {grads_ok} ({verdict})"], ok


def deterministic_row(size: int, device: torch.device) -> tuple[list[str], bool]:
    """CRFasRNN forward + backward twice in deterministic mode: outputs and gradients equal."""
    logits = torch.from_numpy(smooth_logits(21, size, size))[None].to(device)
    image = torch.from_numpy(photo("chelsea", size, size)).permute(2, 0, 1)[None]
    image = image.float().to(device)
    layer = CRFasRNN(21, n_iter=5, deterministic=True).to(device)
    runs = []
    for _ in range(2):
        x = logits.clone().requires_grad_()
        layer.zero_grad(set_to_none=True)
        out = layer(x, image)
        out.square().mean().backward()
        runs.append((out.detach().clone(), x.grad.clone(), layer.compatibility.grad.clone()))
    equal = all(torch.equal(a, b) for a, b in zip(*runs))
    return [f"CRFasRNN {size}x{size}x21x5 deterministic, run twice", "–", "–", "–", "–",
            f"bitwise equal: {equal} ({'ok' if equal else 'FAILED'})"], equal


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes: a test of the script itself, not of the figures")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed runs per row, the best kept (default 10, --quick 1)")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device is visible to this Python (torch.cuda.is_available() "
              "is False); run it on a machine with an NVIDIA GPU, or pass --device cpu --quick",
              file=sys.stderr)
        return 2
    repeats = args.repeats or (1 if args.quick else 10)
    cases = QUICK if args.quick else FULL
    size = 48 if args.quick else 512
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"crfseg GPU check on {name}, torch {torch.__version__}, "
          f"{'quick sizes' if args.quick else 'full sizes'}, best of {repeats}\n")
    header = ["case", "ms", "time target", "peak GiB", "memory target", "check"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    all_ok = True

    def emit(row: list[str]) -> None:
        print("| " + " | ".join(row) + " |", flush=True)

    first, *others = cases
    row, ok = dense_row(first, device, repeats)
    emit(row)
    all_ok &= ok
    for row in crf_as_rnn_rows(size, device, repeats):
        emit(row)
    for case in others:
        row, ok = dense_row(case, device, repeats)
        emit(row)
        all_ok &= ok
    for check in (bf16_training_row, deterministic_row):
        row, ok = check(size, device)
        emit(row)
        all_ok &= ok
    print(f"\n{'all checks passed' if all_ok else 'SOME CHECKS FAILED'}"
          f"{'' if device.type == 'cuda' else ' (on the CPU: the speed targets are for a GPU)'}")
    return 0 if all_ok else 1


if __name__ == "__main__":
    sys.exit(main())
