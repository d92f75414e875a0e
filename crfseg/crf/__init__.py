"""Conditional random fields: the fully connected DenseCRF and pairwise grid CRFs."""
