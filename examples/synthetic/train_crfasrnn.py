"""Train only a CRFasRNN layer on coarse, noisy unaries of synthetic scenes (no download).

The unaries stand in for a CNN at output stride 8: each scene's exact labels
are averaged over 8x8 blocks, upsampled, blurred by the upsampling and given
Gaussian noise.  The layer starts from the standard dense-CRF settings and
learns its label compatibility and per-class kernel weights with Adam; mIoU
on held-out scenes is printed for the raw unaries, the untrained layer and
the trained one.

    .venv/bin/python examples/synthetic/train_crfasrnn.py [--steps 400] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from crfseg.datasets import SyntheticShapes
from crfseg.losses.functional import cross_entropy
from crfseg.metrics import iou_score
from crfseg.models import CRFasRNN


def scenes(num: int, seed: int, classes: int, size: int, factor: int = 8):
    """Images ``(N, 3, H, W)`` in 0-255, labels ``(N, H, W)`` and coarse noisy logits."""
    data = SyntheticShapes(num_images=num, size=size, num_classes=classes, seed=seed,
                           max_objects=4)
    images = torch.stack([data[i][0] for i in range(num)]).float()
    target = torch.stack([data[i][1] for i in range(num)]).long()
    onehot = F.one_hot(target, classes).permute(0, 3, 1, 2).float()
    coarse = F.interpolate(F.avg_pool2d(onehot, factor), size=(size, size), mode="bilinear",
                           align_corners=False)
    gen = torch.Generator().manual_seed(seed)
    logits = 3.0 * torch.log(coarse + 0.1) + torch.randn(coarse.shape, generator=gen)
    return images, target, logits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=0.05)
    parser.add_argument("--classes", type=int, default=4)
    parser.add_argument("--size", type=int, default=48)
    parser.add_argument("--train-images", type=int, default=64)
    parser.add_argument("--test-images", type=int, default=32)
    parser.add_argument("--learn-thetas", action="store_true",
                        help="also learn the kernel widths")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    device = torch.device(args.device)
    train = [t.to(device) for t in scenes(args.train_images, 0, args.classes, args.size)]
    test = [t.to(device) for t in scenes(args.test_images, 1, args.classes, args.size)]
    torch.manual_seed(args.seed)
    crf = CRFasRNN(args.classes, learn_thetas=args.learn_thetas).to(device)

    def test_miou(logits: torch.Tensor) -> float:
        return 100 * iou_score(logits.argmax(1), test[1], args.classes)

    with torch.no_grad():
        raw = test_miou(test[2])
        untrained = test_miou(crf.eval()(test[2], test[0]))
    optimizer = torch.optim.Adam(crf.parameters(), lr=args.lr)
    crf.train()
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = torch.randint(0, args.train_images, (args.batch_size,), device=device)
        loss = cross_entropy(crf(train[2][batch], train[0][batch]), train[1][batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % 100 == 0 or step == args.steps:
            print(f"step {step:4d}  loss {loss.item():.4f}  {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        trained = test_miou(crf.eval()(test[2], test[0]))
    print(f"\nheld-out mIoU: raw unaries {raw:.2f} %, untrained CRFasRNN {untrained:.2f} %, "
          f"trained CRFasRNN {trained:.2f} %")
    print("spatial weights  ", [round(w, 2) for w in crf.spatial_weights.tolist()])
    print("bilateral weights", [round(w, 2) for w in crf.bilateral_weights.tolist()])
    print(f"thetas: alpha {crf.theta_alpha:.1f}, beta {crf.theta_beta:.1f}, "
          f"gamma {crf.theta_gamma:.2f}")


if __name__ == "__main__":
    main()
