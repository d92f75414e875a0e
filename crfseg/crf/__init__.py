"""Conditional random fields: the fully connected DenseCRF and pairwise grid CRFs."""

from crfseg.crf.dense import DenseCRF, scores_to_unary
from crfseg.crf.grid import GridCRF, GridCRFResult, maxflow
from crfseg.crf.lattice import PermutohedralLattice
from crfseg.crf.pairwise import (
    Pairwise,
    contrast_weights,
    potts,
    truncated_linear,
    truncated_quadratic,
)

__all__ = [
    "DenseCRF",
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
]
