"""Pure-NumPy oracles of the segmentation losses, written from the definitions.

Each oracle loops over images, classes and pixels in the plainest way, shares
no code with ``crfseg.losses`` and measures distances by brute force over all
pixel pairs, so it is only meant for tiny inputs.
"""

from __future__ import annotations

import itertools
import math

import numpy as np


def softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _pixels(target: np.ndarray, ignore_index: int):
    """Valid pixel coordinates ``(n, y, x)`` of a ``(N, H, W)`` target."""
    return [idx for idx in itertools.product(*map(range, target.shape))
            if target[idx] != ignore_index]


def cross_entropy(logits, target, weights=None, ignore_index=255, focal_gamma=None,
                  alpha=None):
    p = softmax(logits)
    total, norm = 0.0, 0.0
    for n, y, x in _pixels(target, ignore_index):
        t = target[n, y, x]
        w = 1.0 if weights is None else weights[t]
        term = -w * math.log(p[n, t, y, x])
        if focal_gamma is not None:
            a = 1.0 if alpha is None else alpha[t]
            term = -a * (1 - p[n, t, y, x]) ** focal_gamma * math.log(p[n, t, y, x])
            w = 1.0
        total += term
        norm += w
    return total / norm if norm else 0.0


def _class_sums(p, target, c, images, ignore_index):
    """(sum p g, sum p, sum p^2, sum g) of class c over the given images."""
    tp = sp = sp2 = sg = 0.0
    for n in images:
        for y in range(target.shape[1]):
            for x in range(target.shape[2]):
                if target[n, y, x] == ignore_index:
                    continue
                g = 1.0 if target[n, y, x] == c else 0.0
                q = p[n, c, y, x]
                tp += q * g
                sp += q
                sp2 += q * q
                sg += g
    return tp, sp, sp2, sg


def _region(logits, target, score, per_image, include_absent, ignore_index):
    """Mean over (images and) classes of ``score(tp, sp, sp2, sg) -> (loss, denominator)``."""
    p = softmax(logits)
    n_img, c_num = logits.shape[:2]
    groups = [[n] for n in range(n_img)] if per_image else [list(range(n_img))]
    group_means = []
    for images in groups:
        losses = []
        for c in range(c_num):
            tp, sp, sp2, sg = _class_sums(p, target, c, images, ignore_index)
            loss, den = score(tp, sp, sp2, sg)
            if sg > 0 or (include_absent and den > 0):
                losses.append(loss)
        if losses:
            group_means.append(sum(losses) / len(losses))
    return sum(group_means) / len(group_means) if group_means else 0.0


def dice(logits, target, smooth=0.0, squared=False, per_image=False, include_absent=False,
         ignore_index=255):
    def score(tp, sp, sp2, sg):
        den = (sp2 if squared else sp) + sg + smooth
        return 1 - (2 * tp + smooth) / den if den else 0.0, den
    return _region(logits, target, score, per_image, include_absent, ignore_index)


def jaccard(logits, target, smooth=0.0, per_image=False, include_absent=False,
            ignore_index=255):
    def score(tp, sp, sp2, sg):
        den = sp + sg - tp + smooth
        return 1 - (tp + smooth) / den if den else 0.0, den
    return _region(logits, target, score, per_image, include_absent, ignore_index)


def tversky(logits, target, alpha, beta, smooth=0.0, gamma=None, per_image=False,
            include_absent=False, ignore_index=255):
    def score(tp, sp, sp2, sg):
        fp, fn = sp - tp, sg - tp
        den = tp + alpha * fp + beta * fn + smooth
        loss = 1 - (tp + smooth) / den if den else 0.0
        if gamma is not None:
            loss = max(loss, 0.0) ** (1 / gamma)
        return loss, den
    return _region(logits, target, score, per_image, include_absent, ignore_index)


def generalized_dice(logits, target, per_image=False, include_absent=False, ignore_index=255):
    p = softmax(logits)
    n_img, c_num = logits.shape[:2]
    groups = [[n] for n in range(n_img)] if per_image else [list(range(n_img))]
    losses = []
    for images in groups:
        sums = [_class_sums(p, target, c, images, ignore_index) for c in range(c_num)]
        weights = [1 / s[3] ** 2 if s[3] > 0 else None for s in sums]
        present = [w for w in weights if w is not None]
        if not present:
            continue
        fill = max(present) if include_absent else 0.0
        weights = [fill if w is None else w for w in weights]
        num = sum(w * s[0] for w, s in zip(weights, sums))
        den = sum(w * (s[1] + s[3]) for w, s in zip(weights, sums))
        losses.append(1 - 2 * num / den)
    return sum(losses) / len(losses) if losses else 0.0


def _lovasz_class(errors, truth):
    """Lovasz extension of the Jaccard loss, from the set function directly."""
    order = sorted(range(len(errors)), key=lambda i: -errors[i])
    gt = {i for i, g in enumerate(truth) if g}

    def jaccard_loss(mistakes):
        union = gt | mistakes
        return 1 - len(gt - mistakes) / len(union) if union else 0.0

    total, previous, chosen = 0.0, 0.0, set()
    for i in order:
        chosen.add(i)
        current = jaccard_loss(chosen)
        total += errors[i] * (current - previous)
        previous = current
    return total


def lovasz(logits, target, classes="present", per_image=False, ignore_index=255):
    p = softmax(logits)
    n_img, c_num = logits.shape[:2]
    groups = [[n] for n in range(n_img)] if per_image else [list(range(n_img))]
    means = []
    for images in groups:
        pix = [(n, y, x) for n, y, x in _pixels(target, ignore_index) if n in images]
        if not pix:
            continue
        losses = []
        for c in range(c_num):
            truth = [target[i] == c for i in pix]
            if classes == "present" and not any(truth):
                continue
            if classes not in ("present", "all") and c not in classes:
                continue
            errors = [abs(float(g) - p[n, c, y, x]) for g, (n, y, x) in zip(truth, pix)]
            losses.append(_lovasz_class(errors, truth))
        if losses:
            means.append(sum(losses) / len(losses))
    return sum(means) / len(means) if means else 0.0


def signed_distance(labels: np.ndarray, c: int) -> np.ndarray:
    """Brute force: -(distance to the nearest non-c pixel - 0.5) inside, +(... - 0.5) outside."""
    inside = labels == c
    if inside.all() or not inside.any():
        return np.zeros(labels.shape)
    coords = list(itertools.product(*map(range, labels.shape)))
    out = np.zeros(labels.shape)
    for a in coords:
        other = [b for b in coords if inside[b] != inside[a]]
        d = min(math.dist(a, b) for b in other) - 0.5
        out[a] = -d if inside[a] else d
    return out


def inverted_distance(labels: np.ndarray) -> np.ndarray:
    """Brute force: boundary pixels have a 4-neighbour with another label; D = 1 - d / max d."""
    h, w = labels.shape
    coords = list(itertools.product(range(h), range(w)))
    boundary = [
        (y, x) for y, x in coords
        if any(0 <= y + dy < h and 0 <= x + dx < w and labels[y + dy, x + dx] != labels[y, x]
               for dy, dx in ((1, 0), (-1, 0), (0, 1), (0, -1)))
    ]
    if not boundary:
        return np.zeros(labels.shape)
    d = np.array([[min(math.dist(a, b) for b in boundary) for a in coords]]).reshape(h, w)
    return np.ones(labels.shape) if d.max() == 0 else 1 - d / d.max()


def _host_labels(target, ignore_index):
    return np.where(target == ignore_index, -1, target)


def boundary(logits, target, ignore_index=255):
    p = softmax(logits)
    labels = _host_labels(target, ignore_index)
    total, count = 0.0, 0
    for n in range(target.shape[0]):
        maps = [signed_distance(labels[n], c) for c in range(logits.shape[1])]
        for y, x in itertools.product(*map(range, target.shape[1:])):
            if target[n, y, x] == ignore_index:
                continue
            total += sum(p[n, c, y, x] * maps[c][y, x] for c in range(logits.shape[1]))
            count += 1
    return total / count if count else 0.0


def hausdorff_dt(logits, target, alpha=2.0, ignore_index=255):
    p = softmax(logits)
    labels = _host_labels(target, ignore_index)
    pred = logits.argmax(1)
    c_num = logits.shape[1]
    total, count = 0.0, 0
    for n in range(target.shape[0]):
        d_g = [np.abs(signed_distance(labels[n], c)) for c in range(c_num)]
        d_p = [np.abs(signed_distance(pred[n], c)) for c in range(c_num)]
        for y, x in itertools.product(*map(range, target.shape[1:])):
            if target[n, y, x] == ignore_index:
                continue
            terms = [(p[n, c, y, x] - (target[n, y, x] == c)) ** 2
                     * (d_p[c][y, x] ** alpha + d_g[c][y, x] ** alpha) for c in range(c_num)]
            total += sum(terms) / c_num
            count += 1
    return total / count if count else 0.0


def distance_penalized_ce(logits, target, ignore_index=255):
    p = softmax(logits)
    labels = _host_labels(target, ignore_index)
    total, count = 0.0, 0
    for n in range(target.shape[0]):
        d = inverted_distance(labels[n])
        for y, x in itertools.product(*map(range, target.shape[1:])):
            if target[n, y, x] == ignore_index:
                continue
            total += -(1 + d[y, x]) * math.log(p[n, target[n, y, x], y, x])
            count += 1
    return total / count if count else 0.0


def combo(logits, target, alpha=0.5, beta=0.5, ignore_index=255):
    p = softmax(logits)
    c_num = logits.shape[1]
    pix = _pixels(target, ignore_index)
    ce = 0.0
    for n, y, x in pix:
        for c in range(c_num):
            g = target[n, y, x] == c
            q = p[n, c, y, x]
            ce += -(beta * math.log(q) if g else (1 - beta) * math.log(1 - q)) / c_num
    ce = ce / len(pix) if pix else 0.0
    return alpha * ce + (1 - alpha) * dice(logits, target, ignore_index=ignore_index)


def exp_log(logits, target, gamma=0.3, dice_weight=0.8, ce_weight=0.2, smooth=1.0,
            class_weights=None, ignore_index=255):
    p = softmax(logits)
    c_num = logits.shape[1]
    pix = _pixels(target, ignore_index)
    dice_terms = []
    for c in range(c_num):
        tp, sp, _, sg = _class_sums(p, target, c, range(target.shape[0]), ignore_index)
        if sg > 0:
            dice_terms.append((-math.log((2 * tp + smooth) / (sp + sg + smooth))) ** gamma)
    counts = [sum(target[i] == c for i in pix) for c in range(c_num)]
    if class_weights is None:
        class_weights = [math.sqrt(sum(counts) / k) if k else 0.0 for k in counts]
    ce_terms = [class_weights[target[i]] * (-math.log(p[(i[0], target[i]) + i[1:]])) ** gamma
                for i in pix]
    dice_term = sum(dice_terms) / len(dice_terms) if dice_terms else 0.0
    ce_term = sum(ce_terms) / len(ce_terms) if ce_terms else 0.0
    return dice_weight * dice_term + ce_weight * ce_term
