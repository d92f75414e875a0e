"""Conditional random fields: the fully connected DenseCRF and pairwise grid CRFs."""

from crfseg.crf.dense import DenseCRF, scores_to_unary

__all__ = ["DenseCRF", "scores_to_unary"]
