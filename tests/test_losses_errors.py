"""Every bad input of crfseg.losses raises a clear error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import crfseg.losses as L

FUNCTIONS = [L.cross_entropy, L.focal_loss, L.distance_penalized_ce, L.dice_loss,
             L.generalized_dice_loss, L.ce_dice_loss, L.jaccard_loss, L.tversky_loss,
             L.focal_tversky_loss, L.lovasz_softmax, L.boundary_loss, L.hausdorff_dt_loss,
             L.combo_loss, L.exp_log_loss]
WITH_REDUCTION = [f for f in FUNCTIONS if f not in (L.ce_dice_loss, L.combo_loss,
                                                      L.exp_log_loss)]
IDS = [f.__name__ for f in FUNCTIONS]


def good():
    return torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long)


BAD_INPUTS = {
    "logits not a tensor": (lambda x, t: (x.numpy(), t), TypeError,
                            "logits must be a torch.Tensor, got ndarray"),
    "logits 3-D": (lambda x, t: (x[0], t), ValueError,
                   r"logits must be a 4-D tensor \(N, C, H, W\), got an array of shape"),
    "integer logits": (lambda x, t: (x.long(), t), TypeError,
                       "logits must be a floating-point array, got dtype torch.int64"),
    "one class": (lambda x, t: (x[:, :1], t), ValueError,
                  "logits must have at least 2 classes along dim 1, got C=1"),
    "target not a tensor": (lambda x, t: (x, t.numpy()), TypeError,
                            "target must be a torch.Tensor, got ndarray"),
    "float target": (lambda x, t: (x, t.float()), TypeError,
                     "target must hold integer class labels, got dtype torch.float32"),
    "target shape": (lambda x, t: (x, t[:, :3]), ValueError,
                     r"target must have shape \(N, H, W\) = \(2, 4, 4\) to match logits of "
                     r"shape \(2, 3, 4, 4\), got \(2, 3, 4\)"),
    "target device": (lambda x, t: (x, t.to("meta")), ValueError,
                      r"target must be on the device of logits \(cpu\), got meta"),
    "non-finite logits": (lambda x, t: (x.index_put((torch.tensor(0),), torch.tensor(np.nan)),
                                        t), ValueError,
                          r"logits contains 48 non-finite value\(s\)"),
    "label too large": (lambda x, t: (x, t.index_put((torch.tensor(1),), torch.tensor(3))),
                        ValueError,
                        r"target must hold class indices in \[0, 3\) or ignore_index=255; "
                        r"16 pixel\(s\) are outside, e.g. 3"),
    "negative label": (lambda x, t: (x, t.index_put((torch.tensor(0),), torch.tensor(-1))),
                       ValueError, r"target must hold class indices in \[0, 3\).*e.g. -1"),
}


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_logits_and_target(function, case):
    corrupt, error, message = BAD_INPUTS[case]
    logits, target = corrupt(*good())
    with pytest.raises(error, match=message):
        function(logits, target)


@pytest.mark.parametrize("function", FUNCTIONS, ids=IDS)
def test_bad_ignore_index(function):
    with pytest.raises(TypeError, match="ignore_index must be an integer, got float"):
        function(*good(), ignore_index=255.0)


@pytest.mark.parametrize("function", WITH_REDUCTION, ids=lambda f: f.__name__)
def test_bad_reduction(function):
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sum', 'none'; "
                                         "got 'average'"):
        function(*good(), reduction="average")


BAD_SETTINGS = [
    (L.cross_entropy, {"class_weights": "heavy"}, TypeError,
     "class_weights must be a 1-D sequence, numpy array or tensor of numbers, got str"),
    (L.cross_entropy, {"class_weights": [[1.0, 2.0, 3.0]]}, ValueError,
     "class_weights must be a 1-D vector with one value per class"),
    (L.cross_entropy, {"class_weights": [1.0, np.inf, 1.0]}, ValueError,
     r"class_weights contains 1 non-finite value\(s\)"),
    (L.cross_entropy, {"class_weights": [1.0, -2.0, 1.0]}, ValueError,
     "class_weights must be >= 0 for every class, got a minimum of -2.0"),
    (L.cross_entropy, {"class_weights": [1.0, 2.0]}, ValueError,
     "class_weights must have one value per class: 3 values for logits with C=3, got 2"),
    (L.distance_penalized_ce, {"class_weights": [1.0]}, ValueError,
     "class_weights must have one value per class"),
    (L.ce_dice_loss, {"class_weights": torch.ones(4)}, ValueError,
     "class_weights must have one value per class"),
    (L.exp_log_loss, {"class_weights": [-1.0, 1.0, 1.0]}, ValueError,
     "class_weights must be >= 0"),
    (L.focal_loss, {"alpha": [0.5, 1.5, 0.5]}, ValueError,
     "alpha must be <= 1.0 for every class, got a maximum of 1.5"),
    (L.focal_loss, {"alpha": [0.5, 0.5]}, ValueError, "alpha must have one value per class"),
    (L.focal_loss, {"gamma": -1.0}, ValueError, "gamma must be >= 0.0, got -1.0"),
    (L.focal_loss, {"gamma": "2"}, TypeError, "gamma must be a real number, got str"),
    (L.focal_tversky_loss, {"gamma": 0.0}, ValueError, "gamma must be > 0.0, got 0.0"),
    (L.exp_log_loss, {"gamma": -0.3}, ValueError, "gamma must be > 0.0, got -0.3"),
    (L.tversky_loss, {"alpha": 1.2}, ValueError, "alpha must be <= 1.0, got 1.2"),
    (L.tversky_loss, {"beta": -0.1}, ValueError, "beta must be >= 0.0, got -0.1"),
    (L.tversky_loss, {"alpha": 0.0, "beta": 0.0}, ValueError,
     "alpha and beta must not both be 0"),
    (L.focal_tversky_loss, {"beta": 2.0}, ValueError, "beta must be <= 1.0, got 2.0"),
    (L.combo_loss, {"alpha": 1.5}, ValueError, "alpha must be <= 1.0, got 1.5"),
    (L.combo_loss, {"beta": -0.5}, ValueError, "beta must be >= 0.0, got -0.5"),
    (L.hausdorff_dt_loss, {"alpha": 0.0}, ValueError, "alpha must be > 0.0, got 0.0"),
    (L.dice_loss, {"smooth": -1.0}, ValueError, "smooth must be >= 0.0, got -1.0"),
    (L.jaccard_loss, {"smooth": float("nan")}, ValueError, "smooth must be finite, got nan"),
    (L.dice_loss, {"squared": 1}, TypeError, "squared must be a bool, got int"),
    (L.dice_loss, {"per_image": "yes"}, TypeError, "per_image must be a bool, got str"),
    (L.tversky_loss, {"include_absent": None}, TypeError,
     "include_absent must be a bool, got NoneType"),
    (L.generalized_dice_loss, {"per_image": 0}, TypeError, "per_image must be a bool"),
    (L.ce_dice_loss, {"ce_weight": -1.0}, ValueError, "ce_weight must be >= 0.0, got -1.0"),
    (L.ce_dice_loss, {"dice_weight": -1.0}, ValueError, "dice_weight must be >= 0.0"),
    (L.exp_log_loss, {"dice_weight": -0.8}, ValueError, "dice_weight must be >= 0.0"),
    (L.exp_log_loss, {"ce_weight": -0.2}, ValueError, "ce_weight must be >= 0.0"),
    (L.exp_log_loss, {"smooth": -1.0}, ValueError, "smooth must be >= 0.0"),
    (L.combo_loss, {"include_absent": "no"}, TypeError, "include_absent must be a bool"),
    (L.lovasz_softmax, {"classes": "some"}, ValueError,
     "classes must be one of 'present', 'all'; got 'some'"),
    (L.lovasz_softmax, {"classes": []}, ValueError,
     "classes must be 'present', 'all' or a non-empty sequence of class indices, got"),
    (L.lovasz_softmax, {"classes": 2}, ValueError,
     "classes must be 'present', 'all' or a non-empty sequence"),
    (L.lovasz_softmax, {"classes": [0, 3]}, ValueError, "classes must be <= 2, got 3"),
    (L.lovasz_softmax, {"classes": [0.5]}, TypeError, "classes must be an integer, got float"),
    (L.lovasz_softmax, {"per_image": 1}, TypeError, "per_image must be a bool"),
]


@pytest.mark.parametrize(("function", "settings", "error", "message"), BAD_SETTINGS,
                         ids=[f"{f.__name__}-{list(s)[0]}" for f, s, _, _ in BAD_SETTINGS])
def test_bad_settings(function, settings, error, message):
    with pytest.raises(error, match=message):
        function(*good(), **settings)


MAP_LOSSES = {L.distance_penalized_ce: (2, 4, 4), L.boundary_loss: (2, 3, 4, 4),
              L.hausdorff_dt_loss: (2, 3, 4, 4)}


@pytest.mark.parametrize("function", list(MAP_LOSSES), ids=lambda f: f.__name__)
def test_bad_distance_maps(function):
    shape = MAP_LOSSES[function]
    with pytest.raises(TypeError, match="distance_maps must be a torch.Tensor, got ndarray"):
        function(*good(), distance_maps=np.zeros(shape))
    with pytest.raises(TypeError, match="distance_maps must be a floating-point array"):
        function(*good(), distance_maps=torch.zeros(shape, dtype=torch.long))
    with pytest.raises(ValueError, match=rf"distance_maps must have shape \({shape[0]}, "):
        function(*good(), distance_maps=torch.zeros(shape[:-1]))
    with pytest.raises(ValueError, match=r"distance_maps contains 1 non-finite value\(s\)"):
        bad = torch.zeros(shape)
        bad.view(-1)[0] = np.inf
        function(*good(), distance_maps=bad)
    with pytest.raises(ValueError, match=r"distance_maps must be on the device of logits"):
        function(*good(), distance_maps=torch.zeros(shape, device="meta"))


def test_class_weights_from_labels_errors():
    labels = np.zeros((2, 3), dtype=np.int64)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        L.class_weights_from_labels(labels, 0)
    with pytest.raises(TypeError, match="num_classes must be an integer, got float"):
        L.class_weights_from_labels(labels, 2.0)
    with pytest.raises(ValueError, match="method must be one of 'inverse', 'median', "
                                         "'inverse_sqrt'; got 'log'"):
        L.class_weights_from_labels(labels, 2, method="log")
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        L.class_weights_from_labels(labels, 2, ignore_index="255")
    with pytest.raises(TypeError, match="labels must hold integer class labels"):
        L.class_weights_from_labels(labels.astype(float), 2)
    with pytest.raises(ValueError, match=r"labels must be \(H, W\) or \(N, H, W\) labels"):
        L.class_weights_from_labels(labels[None, None], 2)
    with pytest.raises(ValueError, match=r"labels must hold class indices in \[0, 2\) or "
                                         r"ignore_index=255; 1 pixel\(s\) are outside, e.g. 7"):
        L.class_weights_from_labels([labels, np.array([[0, 7]])], 2)
    with pytest.raises(TypeError, match="labels must be a numpy array or torch tensor, got list"):
        L.class_weights_from_labels([[[0, 1]]], 2)
    with pytest.raises(TypeError, match="labels must be a numpy array or torch tensor, got int"):
        L.class_weights_from_labels(3, 2)


@pytest.mark.parametrize("maps", [L.signed_distance_maps, L.unsigned_distance_maps])
def test_distance_map_errors(maps):
    with pytest.raises(TypeError, match="target must be a numpy array or torch tensor, got list"):
        maps([[0, 1]], 2)
    with pytest.raises(ValueError, match=r"target must be \(H, W\) or \(N, H, W\) labels, got "
                                         r"an array of shape \(4,\)"):
        maps(np.zeros(4, dtype=int), 2)
    with pytest.raises(TypeError, match="target must hold integer class labels"):
        maps(np.zeros((2, 2)), 2)
    with pytest.raises(ValueError, match=r"target must hold class indices in \[0, 2\)"):
        maps(np.array([[0, 2]]), 2)
    with pytest.raises(ValueError, match="num_classes must be >= 1, got 0"):
        maps(np.zeros((2, 2), dtype=int), 0)
    with pytest.raises(TypeError, match="ignore_index must be an integer"):
        maps(np.zeros((2, 2), dtype=int), 2, ignore_index=None)


def test_inverted_distance_map_errors():
    with pytest.raises(ValueError, match="target must hold non-negative class indices or "
                                         "ignore_index=255, got -3"):
        L.inverted_distance_maps(np.array([[0, -3]]))
    with pytest.raises(TypeError, match="target must hold integer class labels"):
        L.inverted_distance_maps(torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"target must be \(H, W\) or \(N, H, W\) labels"):
        L.inverted_distance_maps(np.zeros((1, 1, 2, 2), dtype=int))


BAD_MODULES = [
    (L.CrossEntropyLoss, {"class_weights": [-1.0]}, ValueError, "class_weights must be >= 0"),
    (L.CrossEntropyLoss, {"reduction": "avg"}, ValueError, "reduction must be one of"),
    (L.FocalLoss, {"gamma": -2.0}, ValueError, "gamma must be >= 0.0"),
    (L.FocalLoss, {"alpha": [0.5, 2.0]}, ValueError, "alpha must be <= 1.0"),
    (L.DistancePenalizedCELoss, {"ignore_index": 1.5}, TypeError, "ignore_index must be an "),
    (L.DiceLoss, {"smooth": -1.0}, ValueError, "smooth must be >= 0.0"),
    (L.DiceLoss, {"squared": "yes"}, TypeError, "squared must be a bool"),
    (L.GeneralizedDiceLoss, {"per_image": "yes"}, TypeError, "per_image must be a bool"),
    (L.CEDiceLoss, {"ce_weight": -1.0}, ValueError, "ce_weight must be >= 0.0"),
    (L.CEDiceLoss, {"dice_weight": -1.0}, ValueError, "dice_weight must be >= 0.0"),
    (L.JaccardLoss, {"include_absent": 1}, TypeError, "include_absent must be a bool"),
    (L.TverskyLoss, {"alpha": 2.0}, ValueError, "alpha must be <= 1.0"),
    (L.TverskyLoss, {"alpha": 0.0, "beta": 0.0}, ValueError, "must not both be 0"),
    (L.FocalTverskyLoss, {"gamma": 0.0}, ValueError, "gamma must be > 0.0"),
    (L.LovaszSoftmaxLoss, {"classes": "most"}, ValueError, "classes must be one of"),
    (L.LovaszSoftmaxLoss, {"classes": [-1]}, ValueError, "classes must be >= 0, got -1"),
    (L.BoundaryLoss, {"reduction": None}, ValueError, "reduction must be one of"),
    (L.HausdorffDTLoss, {"alpha": -1.0}, ValueError, "alpha must be > 0.0"),
    (L.ComboLoss, {"beta": 2.0}, ValueError, "beta must be <= 1.0"),
    (L.ComboLoss, {"alpha": -1.0}, ValueError, "alpha must be >= 0.0"),
    (L.ExpLogLoss, {"gamma": 0.0}, ValueError, "gamma must be > 0.0"),
    (L.ExpLogLoss, {"class_weights": [np.nan]}, ValueError, "class_weights contains 1"),
]


@pytest.mark.parametrize(("cls", "settings", "error", "message"), BAD_MODULES,
                         ids=[f"{c.__name__}-{list(s)[0]}" for c, s, _, _ in BAD_MODULES])
def test_modules_check_settings_when_built(cls, settings, error, message):
    with pytest.raises(error, match=message):
        cls(**settings)


def test_module_reports_bad_input_at_call():
    loss = L.DiceLoss()
    with pytest.raises(ValueError, match=r"target must have shape \(N, H, W\)"):
        loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="alpha must have one value per class: 3 values"):
        L.FocalLoss(alpha=[0.5, 0.5])(*good())
