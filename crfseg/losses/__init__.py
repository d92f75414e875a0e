"""Segmentation losses: stateless functions and the ``nn.Module`` wrappers that hold their settings.

Every loss takes ``logits (N, C, H, W)`` and ``target (N, H, W)`` int64 labels
with ``ignore_index=255``; ignored pixels contribute nothing to the value and
get zero gradient.  See :mod:`crfseg.losses.functional` for the definitions
and the rules for absent classes.

========================  ==========================  =============================
function                  module                      reference
========================  ==========================  =============================
cross_entropy             CrossEntropyLoss            Long et al. 2015
focal_loss                FocalLoss                   Lin et al. 2017
distance_penalized_ce     DistancePenalizedCELoss     Caliva et al. 2019
dice_loss                 DiceLoss                    Milletari et al. 2016
generalized_dice_loss     GeneralizedDiceLoss         Sudre et al. 2017
ce_dice_loss              CEDiceLoss                  Isensee et al. 2021
jaccard_loss              JaccardLoss                 Rahman & Wang 2016
tversky_loss              TverskyLoss                 Salehi et al. 2017
focal_tversky_loss        FocalTverskyLoss            Abraham & Khan 2019
lovasz_softmax            LovaszSoftmaxLoss           Berman et al. 2018
boundary_loss             BoundaryLoss                Kervadec et al. 2019
hausdorff_dt_loss         HausdorffDTLoss             Karimi & Salcudean 2019
combo_loss                ComboLoss                   Taghanaki et al. 2019
exp_log_loss              ExpLogLoss                  Wong et al. 2018
dense_crf_loss            DenseCRFLoss                Tang et al. 2018
========================  ==========================  =============================

Helpers: ``class_weights_from_labels`` (inverse, median-frequency and
inverse-sqrt class weights) and the distance maps the boundary-aware losses
use, ``signed_distance_maps``, ``unsigned_distance_maps`` and
``inverted_distance_maps``, to precompute them in a data loader.
"""

from crfseg.losses import functional, modules
from crfseg.losses.functional import (
    boundary_loss,
    ce_dice_loss,
    class_weights_from_labels,
    combo_loss,
    cross_entropy,
    dense_crf_loss,
    dice_loss,
    distance_penalized_ce,
    exp_log_loss,
    focal_loss,
    focal_tversky_loss,
    generalized_dice_loss,
    hausdorff_dt_loss,
    inverted_distance_maps,
    jaccard_loss,
    lovasz_softmax,
    signed_distance_maps,
    tversky_loss,
    unsigned_distance_maps,
)
from crfseg.losses.modules import (
    BoundaryLoss,
    CEDiceLoss,
    ComboLoss,
    CrossEntropyLoss,
    DenseCRFLoss,
    DiceLoss,
    DistancePenalizedCELoss,
    ExpLogLoss,
    FocalLoss,
    FocalTverskyLoss,
    GeneralizedDiceLoss,
    HausdorffDTLoss,
    JaccardLoss,
    LovaszSoftmaxLoss,
    TverskyLoss,
)

__all__ = [
    "functional",
    "modules",
    "cross_entropy",
    "class_weights_from_labels",
    "focal_loss",
    "distance_penalized_ce",
    "dice_loss",
    "generalized_dice_loss",
    "ce_dice_loss",
    "jaccard_loss",
    "tversky_loss",
    "focal_tversky_loss",
    "lovasz_softmax",
    "boundary_loss",
    "hausdorff_dt_loss",
    "combo_loss",
    "exp_log_loss",
    "dense_crf_loss",
    "signed_distance_maps",
    "unsigned_distance_maps",
    "inverted_distance_maps",
    "CrossEntropyLoss",
    "FocalLoss",
    "DistancePenalizedCELoss",
    "DiceLoss",
    "GeneralizedDiceLoss",
    "CEDiceLoss",
    "JaccardLoss",
    "TverskyLoss",
    "FocalTverskyLoss",
    "LovaszSoftmaxLoss",
    "BoundaryLoss",
    "HausdorffDTLoss",
    "ComboLoss",
    "ExpLogLoss",
    "DenseCRFLoss",
]
