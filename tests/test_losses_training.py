"""Training smoke test: every loss trains a tiny CNN on synthetic rectangles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import crfseg.losses as L
from crfseg.metrics import iou_score

NUM_CLASSES = 3
COLOURS = np.array([[0.2, 0.2, 0.2], [0.9, 0.1, 0.1], [0.1, 0.8, 0.2]])

LOSSES = {
    "cross_entropy": L.CrossEntropyLoss(),
    "focal": L.FocalLoss(),
    "distance_penalized_ce": L.DistancePenalizedCELoss(),
    "dice": L.DiceLoss(),
    "generalized_dice": L.GeneralizedDiceLoss(),
    "ce_dice": L.CEDiceLoss(),
    "jaccard": L.JaccardLoss(),
    "tversky": L.TverskyLoss(),
    "focal_tversky": L.FocalTverskyLoss(),
    "lovasz": L.LovaszSoftmaxLoss(),
    "combo": L.ComboLoss(),
    "exp_log": L.ExpLogLoss(),
}


# Alone, the boundary and Hausdorff losses drive this CNN to all-background within a few
# steps (the softmax saturates and their gradient p_c (phi_c - mean phi) vanishes), the
# failure Kervadec et al. and Karimi & Salcudean avoid by pairing them with a region loss.
# They are trained here as their papers prescribe: GDL + boundary, Dice + Hausdorff.
PAIRED = {
    "boundary": (L.BoundaryLoss(), L.GeneralizedDiceLoss()),
    "hausdorff_dt": (L.HausdorffDTLoss(), L.DiceLoss()),
}


def rectangles(n=8, size=32, seed=0):
    """Noisy images of coloured rectangles on a dark background, with an ignored border."""
    rng = np.random.default_rng(seed)
    labels = np.zeros((n, size, size), dtype=np.int64)
    for image in labels:
        for cls in (1, 2):
            for _ in range(2):
                y, x = rng.integers(0, size - 8, size=2)
                h, w = rng.integers(5, 14, size=2)
                image[y:y + h, x:x + w] = cls
    pixels = COLOURS[labels] + rng.normal(scale=0.15, size=labels.shape + (3,))
    labels[:, 0, :] = 255
    images = torch.tensor(pixels, dtype=torch.float32).permute(0, 3, 1, 2)
    return images, torch.from_numpy(labels)


def tiny_net():
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
        nn.Conv2d(16, NUM_CLASSES, 1),
    )


def miou(net, images, labels):
    with torch.no_grad():
        return iou_score(net(images).argmax(1), labels, NUM_CLASSES, ignore_index=255)


def train(loss_fn, steps=40, seed=0):
    """Loss and mIoU before and after ``steps`` Adam steps on the synthetic rectangles."""
    torch.manual_seed(seed)
    images, labels = rectangles()
    net = tiny_net()
    optimizer = torch.optim.Adam(net.parameters(), lr=0.02)
    with torch.no_grad():
        first_loss = loss_fn(net(images), labels).item()
    first_miou = miou(net, images, labels)
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(net(images), labels).backward()
        optimizer.step()
    with torch.no_grad():
        last_loss = loss_fn(net(images), labels).item()
    return first_loss, last_loss, first_miou, miou(net, images, labels), net


@pytest.mark.parametrize("name", list(LOSSES))
def test_training_lowers_the_loss_and_raises_miou(name):
    first_loss, last_loss, first_miou, last_miou, _ = train(LOSSES[name])
    assert last_loss < first_loss
    assert last_miou > first_miou + 0.2
    assert last_miou > 0.6


@pytest.mark.parametrize("name", list(PAIRED))
def test_boundary_losses_train_with_their_region_partner(name):
    boundary_term, region_term = PAIRED[name]
    first_loss, last_loss, first_miou, last_miou, net = train(
        lambda z, t: region_term(z, t) + 0.01 * boundary_term(z, t))
    assert last_loss < first_loss
    assert last_miou > first_miou + 0.2
    assert last_miou > 0.6
    images, labels = rectangles()
    with torch.no_grad():
        trained = boundary_term(net(images), labels)
        torch.manual_seed(0)
        untrained = boundary_term(tiny_net()(images), labels)
    assert trained < untrained
