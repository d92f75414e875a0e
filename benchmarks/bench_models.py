"""Forward latency of every crfseg architecture: CPU at batch 1, GPU at batch 8 with AMP.

    .venv/bin/python benchmarks/bench_models.py [--size 512] [--repeats 2] [--threads N]
        [--models a,b]

Each model is built with 21 classes on its default backbone (random weights:
latency does not depend on their values), put in eval mode and run once to
warm up; the table gives the best of ``--repeats`` timed runs (one run for
models slower than 3 s; wall clock, ``torch.inference_mode``) with
``--threads`` CPU threads (on a machine shared with other work, one thread
gives the steadiest figures).
When CUDA is available the same models also run at batch 8 under
``torch.autocast(float16)``: forward (eval mode) and forward + backward
(train mode, mean of the logits as the loss), synchronised, best of the
repeats.  Without a GPU those columns say so.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from crfseg.models import get_model

MODELS = ("fcn8s", "unet", "segnet", "enet", "pspnet", "deeplabv3", "deeplabv3plus", "gcn",
          "upernet", "duc_hdc", "fc_densenet56", "fc_densenet67", "fc_densenet103",
          "torchvision:fcn_resnet50", "torchvision:deeplabv3_resnet50",
          "torchvision:deeplabv3_mobilenet_v3_large", "torchvision:lraspp_mobilenet_v3_large")


def best_time(run: Callable[[], None], repeats: int, sync: Callable[[], None]) -> float:
    """Best wall-clock seconds of ``repeats`` calls after one warm-up call.

    A model whose warm-up takes over 3 s is timed once more only, which keeps
    the whole table within a few minutes.
    """
    start = time.perf_counter()
    run()
    sync()
    if time.perf_counter() - start > 3.0:
        repeats = 1
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return min(times)


def cpu_forward(model: torch.nn.Module, size: int, repeats: int) -> float:
    x = torch.randn(1, 3, size, size)
    model.eval()

    def run() -> None:
        with torch.inference_mode():
            model(x)

    return best_time(run, repeats, lambda: None)


def gpu_times(model: torch.nn.Module, size: int, batch: int, repeats: int) -> tuple[float, float]:
    device = torch.device("cuda")
    model = model.to(device)
    x = torch.randn(batch, 3, size, size, device=device)

    def forward() -> None:
        model.eval()
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16):
            model(x)

    def forward_backward() -> None:
        model.train()
        model.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.float16):
            loss = model(x).float().mean()
        loss.backward()

    return (best_time(forward, repeats, torch.cuda.synchronize),
            best_time(forward_backward, repeats, torch.cuda.synchronize))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512, help="square input side (512)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs after warm-up (2)")
    parser.add_argument("--gpu-batch", type=int, default=8, help="GPU batch size (8)")
    parser.add_argument("--models", help="comma-separated subset of the models")
    parser.add_argument("--threads", type=int, help="CPU threads (torch's default when omitted)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    names = args.models.split(",") if args.models else MODELS
    gpu = torch.cuda.is_available()
    print(f"input {args.size}x{args.size}, CPU threads {torch.get_num_threads()}, "
          f"GPU: {torch.cuda.get_device_name() if gpu else 'none'}; best of {args.repeats}")
    print(f"| model | backbone | params (M) | CPU forward, batch 1 (ms) | GPU forward, batch "
          f"{args.gpu_batch}, AMP (ms) | GPU forward+backward, batch {args.gpu_batch}, AMP (ms) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        torch.manual_seed(0)
        model = get_model(name, 21)
        backbone = getattr(getattr(model, "backbone", None), "name", None)
        backbone = backbone or ("vgg16_bn" if name == "segnet" else
                                name.split("_", 1)[1] if name.startswith("torchvision:") else "-")
        params = sum(p.numel() for p in model.parameters()) / 1e6
        cpu = cpu_forward(model, args.size, args.repeats) * 1e3
        if gpu:
            fwd, fwd_bwd = gpu_times(model, args.size, args.gpu_batch, args.repeats)
            gpu_cells = f"{fwd * 1e3:.1f} | {fwd_bwd * 1e3:.1f}"
        else:
            gpu_cells = "not measured (no GPU) | not measured (no GPU)"
        print(f"| {name} | {backbone} | {params:.2f} | {cpu:.0f} | {gpu_cells} |", flush=True)
        del model


if __name__ == "__main__":
    main()
