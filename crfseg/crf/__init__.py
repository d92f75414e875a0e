"""Conditional random fields: the fully connected DenseCRF and pairwise grid CRFs."""

from crfseg.crf.dense import DenseCRF, labels_to_unary, scores_to_unary
from crfseg.crf.grid import GridCRF, GridCRFResult, maxflow
from crfseg.crf.lattice import PermutohedralLattice
from crfseg.crf.mean_field import grid_features, mean_field  # the function shadows its module
from crfseg.crf.pairwise import (
    Pairwise,
    contrast_weights,
    potts,
    truncated_linear,
    truncated_quadratic,
    volume_contrast_weights,
)
from crfseg.crf.tune import DenseCRFParams, TuneResult, fit_class_bias, tune_dense_crf

__all__ = [
    "DenseCRF",
    "grid_features",
    "labels_to_unary",
    "mean_field",
    "scores_to_unary",
    "GridCRF",
    "GridCRFResult",
    "PermutohedralLattice",
    "Pairwise",
    "contrast_weights",
    "maxflow",
    "potts",
    "truncated_linear",
    "truncated_quadratic",
    "volume_contrast_weights",
    "DenseCRFParams",
    "TuneResult",
    "tune_dense_crf",
    "fit_class_bias",
]
