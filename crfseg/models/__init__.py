"""Segmentation networks, the CRFasRNN layer and the model registry."""
